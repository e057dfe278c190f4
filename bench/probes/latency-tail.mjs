// Where the tail of one-job-at-a-time latency comes from: a bare requester against
//   echo/plain     a bare echo on a plain quorum queue (default exchange),
//   echo/topology  the same echo on a quorum queue declared like pipeline.primes (delivery
//                  limit, dead-letter exchange) behind a topic exchange, like the pipeline's,
//   prime-filter   our service (run it yourself beside this probe: PF_RUNNING=1, else started here),
//   session        our PipelineSession.call to our service.
// The echo runs in a process of its own, like a service. ROUNDS rounds of 100 each, taking
// turns; p50 / p90 / p99 / max in ms.
// BATCH=1 adds one-job batches (client.submit) to the rotation.
// node bench/probes/latency-tail.mjs
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { fork } from 'node:child_process';
import { PipelineClient, rangeJob } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
const config = loadConfig(process.env);
const url = config.AMQP_URL;
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const tag = randomUUID().slice(0, 8);
const plainQ = `probe.plain.${tag}`, topoQ = `probe.topo.${tag}`, topoX = `probe.x.${tag}`, replyQ = `probe.replies.${tag}`;
if (process.argv[2] === 'echo') {
  const [plainQ, topoQ] = process.argv.slice(3);
  const echoConn = await amqp.connect(url, { noDelay: true });
  const ec = await echoConn.createConfirmChannel();
  await ec.prefetch(10);
  const answer = Buffer.from('{"ok":true,"kind":"primes","primes":[2,3,5,7]}');
  const onJob = (m) => m && ec.publish('', m.properties.replyTo, answer, { correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json', type: 'pipeline.result.v1', appId: 'echo', timestamp: Math.floor(Date.now() / 1000) }, (err) => { if (!err) ec.ack(m); });
  await ec.consume(plainQ, onJob);
  await ec.consume(topoQ, onJob);
  process.send('ready');
  await new Promise(() => {});
}
const proc = process.env.PF_RUNNING ? undefined : new ServiceProcess('prime-filter', { env: { AMQP_URL: url } });
await proc?.ready;
const echoConn = await amqp.connect(url, { noDelay: true });
const ec = await echoConn.createConfirmChannel();
await ec.assertQueue(plainQ, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
await ec.assertExchange(topoX, 'topic', { durable: false, autoDelete: true });
await ec.assertQueue(topoQ, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 5, 'x-dead-letter-exchange': 'pipeline.dead-letter' } });
await ec.bindQueue(topoQ, topoX, 'range.primes');
const echo = fork(new URL(import.meta.url).pathname, ['echo', plainQ, topoQ]);
await new Promise((r) => echo.once('message', r));
const client = await PipelineClient.connect(config, createLogger('probe', { level: 'error' }, 2));
const session = await client.session();
const rqConn = await amqp.connect(url, { noDelay: true });
const rq = await rqConn.createConfirmChannel();
await rq.assertQueue(replyQ, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-expires': 600000 } });
let waiting;
await rq.consume(replyQ, (m) => { if (!m) return; rq.ack(m); waiting?.(m.properties.correlationId); });
const call = (exchange, key) => {
  const id = randomUUID();
  const p = new Promise((r) => (waiting = (got) => got === id && r()));
  rq.publish(exchange, key, Buffer.from('{"from":1,"to":100}'), { correlationId: id, messageId: randomUUID(), replyTo: replyQ, persistent: true, contentType: 'application/json', type: 'pipeline.range-job.v1', mandatory: true }, () => {});
  return p;
};
const variants = { 'echo/plain': () => call('', plainQ), 'echo/topology': () => call(topoX, 'range.primes'), 'prime-filter': () => call('pipeline.ranges', 'range.primes'), session: () => session.call(rangeJob('primes', { from: 1, to: 100 })) };
// BATCH=1 adds one-job batches (client.submit) to the rotation, as the bench's latency rows had them.
if (process.env.BATCH) variants['one-job batch'] = () => client.submit([rangeJob('primes', { from: 1, to: 100 })], { wait: true, output: 'independent', timeoutMs: 10_000 });
const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let round = 0; round <= ROUNDS; round++) {
  for (const [name, fn] of Object.entries(variants)) {
    for (let i = 0; i < 100; i++) { const s = performance.now(); await fn(); if (round > 0) times[name].push(performance.now() - s); }
  }
}
const q = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))].toFixed(2);
for (const [name, xs] of Object.entries(times)) { xs.sort((a, b) => a - b); console.log(name.padEnd(16), 'p50', q(xs, 0.5), 'p90', q(xs, 0.9), 'p99', q(xs, 0.99), 'max', xs.at(-1).toFixed(2)); }
echo.kill(); await session.close(); await client.close();
await ec.deleteQueue(plainQ); await ec.deleteQueue(topoQ); await rq.deleteQueue(replyQ);
await echoConn.close(); await rqConn.close(); await proc?.stop();
