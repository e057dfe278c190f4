// What a batch's own queues cost since they are bound to the producer's exchange: a batch's
// reply, manifest and progress queues declared the way submit declares them (the three at
// once), the manifest written into its queue, then the three deleted; with the producer's
// exchange (declared, each queue bound to it, the manifest through it) and without (the
// default exchange, as before), taking turns in blocks of 20, N rounds (default 400). Prints
// the whole cycle and the time until the reply queue is ready (when submit sends the first job).
// node bench/probes/owned-queues.mjs   (AMQP_URL: the local broker by default)
import amqp from 'amqplib';
import { randomUUID } from 'node:crypto';
import { declareReplyQueues, manifestQueueName, progressQueueName, replyQueueName, producerExchangeName } from '@amqp-pipeline/shared';
const url = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const N = Number(process.env.N ?? 400);
const conn = await amqp.connect(url, { noDelay: true });
const ch = await conn.createConfirmChannel();
const exchange = producerExchangeName(`bench-${randomUUID().slice(0, 8)}`);
const times = { owned: [], plain: [] };
const ready = { owned: [], plain: [] };
const once = async (owned, i) => {
  const id = `bench.${randomUUID().slice(0, 8)}.${i}`;
  const t0 = performance.now();
  const d = declareReplyQueues(ch, id, 60_000, 'classic', owned ? exchange : undefined);
  await d.reply;
  ready[owned ? 'owned' : 'plain'].push(performance.now() - t0);
  await Promise.all([d.manifest, d.progress]);
  await new Promise((resolve, reject) =>
    ch.publish(owned ? exchange : '', manifestQueueName(id), Buffer.from('{}'), { persistent: true, mandatory: true }, (err) => (err ? reject(err) : resolve())),
  );
  await Promise.all([replyQueueName(id), manifestQueueName(id), progressQueueName(id)].map((q) => ch.deleteQueue(q)));
  times[owned ? 'owned' : 'plain'].push(performance.now() - t0);
};
for (let i = 0; i < 20; i++) await once(i % 2 === 0, i); // warm-up, not counted
times.owned.length = times.plain.length = ready.owned.length = ready.plain.length = 0;
for (let i = 0; i < N; i++) await once(Math.floor(i / 20) % 2 === 0, i);
await ch.deleteExchange(exchange);
await conn.close();
const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
for (const k of ['plain', 'owned']) console.log(`${k.padEnd(6)} n=${times[k].length} whole cycle p50 ${q(times[k], 0.5).toFixed(2)} ms  p99 ${q(times[k], 0.99).toFixed(2)} ms; reply queue ready (the first job may go) p50 ${q(ready[k], 0.5).toFixed(2)} ms  p99 ${q(ready[k], 0.99).toFixed(2)} ms`);
console.log(`ready owned/plain p50 ${(q(ready.owned, 0.5) / q(ready.plain, 0.5)).toFixed(2)}x`);
console.log(`cycle owned/plain p50 ${(q(times.owned, 0.5) / q(times.plain, 0.5)).toFixed(2)}x  p99 ${(q(times.owned, 0.99) / q(times.plain, 0.99)).toFixed(2)}x`);
