// CPU of our prime-filter per job when jobs come one at a time (what single-job latency pays),
// against a bare amqplib echo in its own process doing the same round trip (bench/dist/echo.js:
// npm run build).
// node bench/probes/service-cpu.mjs   (AMQP_URL, default the local broker; N jobs, default 2000)
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fork } from 'node:child_process';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { loadConfig } from '@amqp-pipeline/shared';
import { bareRequester } from './requester.mjs';
const config = loadConfig(process.env);
const url = config.AMQP_URL;
const N = Number(process.env.N ?? 2000);
const cpuOf = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10; }; // ms
const tag = randomUUID().slice(0, 8);
const echoQ = `probe.echo.${tag}`;
const replyQ = `probe.replies.${tag}`;
const rq = await bareRequester(url, replyQ);
await rq.ch.assertQueue(echoQ, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
const call = (exchange, key) => rq.call(exchange, key);
const echo = fork(new URL('../dist/echo.js', import.meta.url).pathname, [echoQ], { env: { ...process.env, AMQP_URL: url } });
await new Promise((r) => echo.once('message', r));
const proc = new ServiceProcess('prime-filter', { env: { AMQP_URL: url } });
await proc.ready;
const measure = async (name, pid, exchange, key) => {
  for (let i = 0; i < 200; i++) await call(exchange, key);
  const c0 = cpuOf(pid); const t0 = performance.now();
  for (let i = 0; i < N; i++) await call(exchange, key);
  const c1 = cpuOf(pid); const wall = performance.now() - t0;
  console.log(`${name.padEnd(14)} ${(wall / N).toFixed(2)} ms a round trip, ${((c1 - c0) * 1000 / N).toFixed(0)} µs CPU a job`);
};
for (let r = 0; r < 2; r++) {
  await measure('bare echo', echo.pid, '', echoQ);
  await measure('prime-filter', proc.pid, 'pipeline.ranges', 'range.primes');
}
echo.kill(); await proc.stop();
await rq.ch.deleteQueue(echoQ); await rq.close();
