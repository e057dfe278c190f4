// CPU per job of a serving process under load: a bare requester keeps WINDOW requests in
// flight (default 1000) against (a) a bare amqplib echo in its own process (prefetch 128, acks
// each request once its reply is confirmed) and (b) our prime-filter service, rounds taking
// turns. Prints jobs/s and the server's CPU per job; with BEAM_PID, the broker's too.
// node bench/probes/service-load.mjs   (npm run build first; N jobs a round, default 20000; ROUNDS, default 3)
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import amqp from 'amqplib';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { loadConfig } from '@amqp-pipeline/shared';

const config = loadConfig(process.env);
const url = config.AMQP_URL;
const N = Number(process.env.N ?? 20000);
const WINDOW = Number(process.env.WINDOW ?? 1000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const BEAM = Number(process.env.BEAM_PID) || 0;
const cpuOf = (pid) => { if (!pid) return 0; const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10; }; // ms
const tag = randomUUID().slice(0, 8);
const echoQ = `probe.echo.${tag}`;
const replyQ = `probe.replies.${tag}`;

const conn = await amqp.connect(url, { noDelay: true });
const ch = await conn.createConfirmChannel();
await ch.assertQueue(replyQ, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-expires': 600000 } });
await ch.assertQueue(echoQ, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
await ch.prefetch(256);
let onReply = () => {};
await ch.consume(replyQ, (m) => { if (m) { ch.ack(m); onReply(); } });

const ECHO = `
import amqp from 'amqplib';
const conn = await amqp.connect(process.env.AMQP_URL, { noDelay: true });
const ch = await conn.createConfirmChannel();
await ch.prefetch(128);
for (const q of process.argv.slice(1)) await ch.consume(q, (m) => {
  if (!m) return;
  ch.publish('', m.properties.replyTo, m.content, { correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json' }, (err) => { if (!err) ch.ack(m); });
});
console.log('ready');
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
`;
// ECHO_ALSO=pipeline.primes: the echo also consumes the service's own work queue (stop the
// service for that: SERVICE=none), to tell the queue's cost from the service's.
const echo = spawn(process.execPath, ['--input-type=module', '-e', ECHO, echoQ, ...(process.env.ECHO_ALSO ? [process.env.ECHO_ALSO] : [])], { env: { ...process.env, AMQP_URL: url }, cwd: new URL('..', import.meta.url).pathname, stdio: ['pipe', 'pipe', 'inherit'] });
await new Promise((r) => echo.stdout.once('data', r));
const filter = process.env.SERVICE === 'none' ? { pid: echo.pid, stop: async () => {} } : new ServiceProcess('prime-filter', { env: { AMQP_URL: url, ...(process.env.SERVICE_PREFETCH ? { PREFETCH: process.env.SERVICE_PREFETCH } : {}) } });
await filter.ready;

async function run(n, exchange, key, offset) {
  let sent = 0, got = 0;
  return new Promise((resolve) => {
    const t0 = performance.now();
    const send = () => {
      const i = offset + sent++;
      ch.publish(exchange, key, Buffer.from(`{"from":${i * 100},"to":${i * 100 + 99}}`), { correlationId: `${tag}.${i}`, replyTo: replyQ, persistent: true, contentType: 'application/json', messageId: `${tag}.${i}` }, () => {});
    };
    onReply = () => { got++; if (sent < n) send(); if (got === n) resolve(n / ((performance.now() - t0) / 1000)); };
    for (let k = 0; k < Math.min(WINDOW, n); k++) send();
  });
}
const targets = [
  { name: 'bare echo', pid: echo.pid, ex: '', key: echoQ },
  { name: process.env.SERVICE === 'none' ? 'echo on work q' : 'prime-filter', pid: filter.pid, ex: 'pipeline.ranges', key: 'range.primes' },
];
const acc = new Map(targets.map((t) => [t.name, { rates: [], cpu: 0, broker: 0, jobs: 0 }]));
for (const t of targets) await run(2000, t.ex, t.key, 0);
for (let r = 0; r < ROUNDS; r++) {
  for (const t of targets) {
    const a = acc.get(t.name);
    const c0 = cpuOf(t.pid), b0 = cpuOf(BEAM), m0 = process.cpuUsage();
    a.rates.push(await run(N, t.ex, t.key, (r + 1) * N));
    a.cpu += cpuOf(t.pid) - c0; a.broker += cpuOf(BEAM) - b0; a.jobs += N;
    const m = process.cpuUsage(m0); a.req = (a.req ?? 0) + (m.user + m.system) / 1000;
  }
}
for (const [name, a] of acc) {
  const med = [...a.rates].sort((x, y) => x - y)[a.rates.length >> 1];
  console.log(`${name.padEnd(13)} ${Math.round(med)} jobs/s (rounds ${a.rates.map(Math.round).join(' ')}); CPU µs/job: server ${Math.round(a.cpu * 1000 / a.jobs)}, requester ${Math.round(a.req * 1000 / a.jobs)}${BEAM ? `, broker ${Math.round(a.broker * 1000 / a.jobs)}` : ''}`);
}
echo.stdin.end(); await filter.stop();
await ch.deleteQueue(echoQ); await ch.deleteQueue(replyQ); await conn.close();
