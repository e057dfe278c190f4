// CPU of our prime-filter per job when jobs come one at a time (what single-job latency pays),
// against a bare amqplib echo in its own process doing the same round trip.
// node bench/probes/service-cpu.mjs   (AMQP_URL, default the local broker; N jobs, default 2000)
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fork } from 'node:child_process';
import amqp from 'amqplib';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { loadConfig } from '@amqp-pipeline/shared';
const config = loadConfig(process.env);
const url = config.AMQP_URL;
const N = Number(process.env.N ?? 2000);
const cpuOf = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10; }; // ms
const tag = randomUUID().slice(0, 8);
const echoQ = `probe.echo.${tag}`;
const replyQ = `probe.replies.${tag}`;
if (process.argv[2] === 'echo') {
  const c = await amqp.connect(url, { noDelay: true });
  const ec = await c.createConfirmChannel();
  await ec.prefetch(10);
  const answer = Buffer.from('{"ok":true,"kind":"primes","primes":[2,3,5,7]}');
  await ec.consume(process.argv[3], (m) => m && ec.publish('', m.properties.replyTo, answer, { correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json' }, (err) => { if (!err) ec.ack(m); }));
  process.send('ready');
} else {
  const rqConn = await amqp.connect(url, { noDelay: true });
  const rq = await rqConn.createConfirmChannel();
  await rq.assertQueue(echoQ, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await rq.assertQueue(replyQ, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-expires': 600000 } });
  let waiting;
  await rq.consume(replyQ, (m) => { if (!m) return; rq.ack(m); waiting?.(m.properties.correlationId); });
  const call = (exchange, key) => {
    const id = randomUUID();
    const p = new Promise((r) => (waiting = (got) => got === id && r()));
    rq.publish(exchange, key, Buffer.from('{"from":1,"to":100}'), { correlationId: id, replyTo: replyQ, persistent: true, contentType: 'application/json' }, () => {});
    return p;
  };
  const echo = fork(new URL(import.meta.url).pathname, ['echo', echoQ]);
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
  await rq.deleteQueue(echoQ); await rq.deleteQueue(replyQ); await rqConn.close();
}
