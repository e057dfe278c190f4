import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { bareRequester } from './requester.mjs';
const url = 'amqp://guest:guest@127.0.0.1:5672';
const tag = randomUUID().slice(0, 8);
const conn = await amqp.connect(url, { noDelay: true });
const ec = await conn.createConfirmChannel();
const qs = {
  plain: { 'x-queue-type': 'quorum' },
  workargs: { 'x-queue-type': 'quorum', 'x-delivery-limit': 20, 'x-dead-letter-exchange': 'pipeline.dead-letter' },
  classic: { 'x-queue-type': 'classic' },
};
const answer = Buffer.from('{"ok":true,"kind":"primes","primes":[2,3,5,7]}');
for (const [k, args] of Object.entries(qs)) {
  const q = `probe.q.${k}.${tag}`;
  await ec.assertQueue(q, { durable: true, arguments: args });
  await ec.prefetch(10);
  await ec.consume(q, (m) => m && ec.publish('', m.properties.replyTo, answer, { correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json' }, (err) => { if (!err) ec.ack(m); }));
}
const rq = await bareRequester(url, `probe.replies.${tag}`);
const times = Object.fromEntries(Object.keys(qs).map((k) => [k, []]));
for (let round = 0; round < 8; round++) for (const k of Object.keys(qs)) for (let i = 0; i < 100; i++) { const s = performance.now(); await rq.call('', `probe.q.${k}.${tag}`); if (round) times[k].push(performance.now() - s); }
for (const [k, t] of Object.entries(times)) { t.sort((a, b) => a - b); console.log(k.padEnd(10), 'p50', t[t.length >> 1].toFixed(2), 'p90', t[Math.floor(t.length * 0.9)].toFixed(2)); }
for (const k of Object.keys(qs)) await ec.deleteQueue(`probe.q.${k}.${tag}`);
await rq.close(); await conn.close();
