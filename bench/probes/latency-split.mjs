// Which side adds latency to one job at a time: our service vs a bare echo, our session vs a
// bare requester, p50 / p99 of 300 after 50 to warm up. (Our session does not take the bare
// echo's answers: they do not fit its job, fit.ts, so that pairing is left out.)
// node bench/probes/latency-split.mjs   (AMQP_URL, default the local broker)
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, rangeJob } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import { bareRequester } from './requester.mjs';
const config = loadConfig(process.env);
const url = config.AMQP_URL;
const N = 300;
const tag = randomUUID().slice(0, 8);
const echoQ = `probe.echo.${tag}`;
const replyQ = `probe.replies.${tag}`;
const proc = new ServiceProcess('prime-filter', { env: { AMQP_URL: url } });
await proc.ready;
const echoConn = await amqp.connect(url, { noDelay: true });
const ec = await echoConn.createConfirmChannel();
await ec.assertQueue(echoQ, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
await ec.prefetch(10);
const answer = Buffer.from('{"ok":true,"kind":"primes","primes":[2,3,5,7]}');
await ec.consume(echoQ, (m) => m && ec.publish('', m.properties.replyTo, answer, { correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json' }, (err) => { if (!err) ec.ack(m); }));
const rq = await bareRequester(url, replyQ);
const bareCall = (exchange, key) => rq.call(exchange, key);
const client = await PipelineClient.connect(config, createLogger('probe', { level: 'error' }, 2));
const session = await client.session();
const variants = {
  'bare requester -> bare echo': () => bareCall('', echoQ),
  'bare requester -> our prime-filter': () => bareCall('pipeline.ranges', 'range.primes'),
  'our session -> our prime-filter': () => session.call(rangeJob('primes', { from: 1, to: 100 })),
};
const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let round = 0; round < 7; round++) {
  for (const [name, fn] of Object.entries(variants)) {
    for (let i = 0; i < 50; i++) { const s = performance.now(); await fn(); if (round > 0) times[name].push(performance.now() - s); }
  }
}
for (const [name, xs] of Object.entries(times)) { xs.sort((a, b) => a - b); console.log(name.padEnd(40), 'p50', xs[Math.floor(xs.length / 2)].toFixed(2), 'p90', xs[Math.floor(xs.length * 0.9)].toFixed(2), 'p99', xs[Math.floor(xs.length * 0.99)].toFixed(2)); }
await session.close(); await client.close();
await ec.deleteQueue(echoQ); await rq.close();
await echoConn.close(); await proc.stop();
