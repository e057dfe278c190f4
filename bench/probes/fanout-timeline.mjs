// Where a fan-out batch's time goes: 2 prime-filter processes (1 worker, prefetch 2), a prime
// count in the CLI's default chunks, 5 batches; prints per job which process ran it and when
// it was done (ms from the batch's start), then the batch's wall time.
// node bench/probes/fanout-timeline.mjs   (AMQP_URL, default the local broker)
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, countJobs } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import { readFileSync, readdirSync } from 'node:fs';
/** CPU ms of each thread of a process: name/tid -> ms. */
const threads = (pid) => Object.fromEntries(readdirSync(`/proc/${pid}/task`).map((tid) => {
  const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return [`${name}/${tid}`, (Number(f[11]) + Number(f[12])) * 10];
}));
const diff = (a, b) => Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)]).filter(([, v]) => v > 0).map(([k, v]) => `${k.split('/')[0]}:${v}`).join(' ');
const config = loadConfig(process.env);
const TO = Number(process.env.TO ?? 1e10);
let t0 = 0;
const done = [];
const procs = [0, 1].map((n) => new ServiceProcess('prime-filter', {
  env: { AMQP_URL: config.AMQP_URL, WORKERS: '1', PREFETCH: process.env.PREFETCH ?? '2', LOG_LEVEL: 'debug' },
  onLine: (line) => { if (line.includes('"job done"')) { const j = JSON.parse(line); done.push({ p: n, id: j.correlationId.split('.').pop(), ms: j.ms, at: Math.round(performance.now() - t0) }); } },
}));
await Promise.all(procs.map((p) => p.ready));
const client = await PipelineClient.connect(config, createLogger('probe', { level: 'error' }, 2));
for (let round = 0; round < 6; round++) {
  done.length = 0;
  const before = procs.map((p) => threads(p.pid));
  t0 = performance.now();
  await client.submit(countJobs('primes', { from: 1, to: TO }), { wait: true, output: 'combine', request: { from: 1, to: TO }, timeoutMs: 600000 });
  const wall = Math.round(performance.now() - t0);
  console.log(`round ${round}: ${wall} ms;`, done.map((d) => `p${d.p}#${d.id} ${d.ms}ms`).join(' '));
  procs.forEach((p, i) => console.log(`  p${i} threads (ms):`, diff(before[i], threads(p.pid))));
}
await client.close();
await Promise.all(procs.map((p) => p.stop()));
