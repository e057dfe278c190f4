// Where the tail of one-job-at-a-time latency comes from: a bare requester against
//   echo/plain     a bare echo on a plain quorum queue (default exchange),
//   echo/topology  the same echo on a quorum queue declared like pipeline.primes (delivery
//                  limit, dead-letter exchange) behind a topic exchange, like the pipeline's,
//   prime-filter   our service (run it yourself beside this probe: PF_RUNNING=1, else started here),
//   session        our PipelineSession.call to our service.
// The echo (bench/dist/echo.js: npm run build) runs in a process of its own, like a service. ROUNDS rounds of 100 each, taking
// turns; p50 / p90 / p99 / max in ms.
// BATCH=1 adds one-job batches (client.submit) to the rotation.
// node bench/probes/latency-tail.mjs
import { randomUUID } from 'node:crypto';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { fork } from 'node:child_process';
import { PipelineClient, rangeJob } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import { bareRequester } from './requester.mjs';
const config = loadConfig(process.env);
const url = config.AMQP_URL;
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const tag = randomUUID().slice(0, 8);
const plainQ = `probe.plain.${tag}`, topoQ = `probe.topo.${tag}`, topoX = `probe.x.${tag}`, replyQ = `probe.replies.${tag}`;
const proc = process.env.PF_RUNNING ? undefined : new ServiceProcess('prime-filter', { env: { AMQP_URL: url } });
await proc?.ready;
const rq = await bareRequester(url, replyQ);
const ec = rq.ch;
await ec.assertQueue(plainQ, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
await ec.assertExchange(topoX, 'topic', { durable: false, autoDelete: true });
await ec.assertQueue(topoQ, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 5, 'x-dead-letter-exchange': 'pipeline.dead-letter' } });
await ec.bindQueue(topoQ, topoX, 'range.primes');
const echo = fork(new URL('../dist/echo.js', import.meta.url).pathname, [plainQ, topoQ], { env: { ...process.env, AMQP_URL: url } });
await new Promise((r) => echo.once('message', r));
const client = await PipelineClient.connect(config, createLogger('probe', { level: 'error' }, 2));
const session = await client.session();
const call = (exchange, key) => rq.call(exchange, key, { messageId: randomUUID(), type: 'pipeline.range-job.v1', mandatory: true });
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
await ec.deleteQueue(plainQ); await ec.deleteQueue(topoQ); await rq.close();
await proc?.stop();
