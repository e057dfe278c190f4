// Titles end to end, in isolation: the page server of the titles suite (a worker thread), a
// title-fetcher service, and the producer library submitting 2,000 URLs a batch. Rounds take
// turns between our title-fetcher service and the titles suite's bare service (amqplib
// consumer, prefetch 100, undici request + whole body + regex, reply published then the job
// acked: the least a service can do for these jobs), both fed by the same PipelineClient. Prints pages/s and
// the CPU per page of each party; BEAM_PID adds the broker.
//
// node bench/probes/titles-e2e.mjs   (npm run build first)
// ROUNDS (default 5), PAGES (2000), ONLY=ours|bare, SERVICE_NODE_ARGS passes to our service,
// COPIES=N runs N copies of ours splitting the 100 in flight between them.
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, urlJob } from '@amqp-pipeline/producer';
import { Queues, createLogger, loadConfig } from '@amqp-pipeline/shared';
import { BARE_SERVICE_SOURCE, startPageServer } from '../dist/titles.js';

const config = loadConfig(process.env);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const PAGES = Number(process.env.PAGES ?? 2000);
const BEAM = Number(process.env.BEAM_PID) || 0;
const ONLY = process.env.ONLY;
const cpuMs = (pid) => {
  if (!pid) return 0;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
};

const server = await startPageServer();
const urls = Array.from({ length: PAGES }, (_, i) => `${server.base}/page/${i}`);

async function startOurs() {
  const copies = Number(process.env.COPIES ?? 1);
  if (copies > 1) {
    const each = String(Math.round(100 / copies));
    const procs = Array.from({ length: copies }, () => new ServiceProcess('title-fetcher', {
      env: { AMQP_URL: config.AMQP_URL, PREFETCH: each, FETCH_PER_HOST_CONCURRENCY: each, FETCH_ALLOW_PRIVATE: 'true' },
    }));
    await Promise.all(procs.map((p) => p.ready));
    return { pid: procs[0].pid, pids: procs.map((p) => p.pid), stop: () => Promise.all(procs.map((p) => p.stop())) };
  }
  const proc = new ServiceProcess('title-fetcher', {
    env: { AMQP_URL: config.AMQP_URL, PREFETCH: process.env.SVC_PREFETCH ?? '100', FETCH_PER_HOST_CONCURRENCY: '100', FETCH_ALLOW_PRIVATE: 'true' },
    onLine: (line) => { if (process.env.SHOW_SERVICE_LINES && !line.startsWith('{')) console.error(line); },
  });
  await proc.ready;
  return { pid: proc.pid, stop: () => proc.stop() };
}
async function startBare() {
  const child = spawn(process.execPath, ['--input-type=module', '-e', BARE_SERVICE_SOURCE], {
    env: { ...process.env, AMQP_URL: config.AMQP_URL, PREFETCH: '100', QUEUE: Queues.titles.name }, cwd: new URL('..', import.meta.url).pathname, stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise((r) => child.stdout.once('data', r));
  return { pid: child.pid, stop: async () => { const done = new Promise((r) => child.once('exit', r)); child.stdin.end(); await done; } };
}

const client = await PipelineClient.connect(config, createLogger('probe', { level: 'error' }, 2));
async function batch(list) {
  const t0 = performance.now();
  const outcome = await client.submit(list.map(urlJob), { wait: true, output: 'independent', timeoutMs: 600_000 });
  if (!outcome.complete || outcome.failed) throw new Error(`batch: ${outcome.failed} failed, complete ${outcome.complete}`);
  return list.length / ((performance.now() - t0) / 1000);
}

const variants = [
  { name: 'ours', start: startOurs },
  { name: 'bare', start: startBare },
].filter((v) => !ONLY || v.name === ONLY);
const acc = new Map(variants.map((v) => [v.name, { rates: [], svc: 0, here: 0, broker: 0, pages: 0 }]));
// With one variant its service stays up for all rounds (so that it can be traced); with two
// they cannot both consume the queue, so each round starts and warms up its own.
const kept = variants.length === 1 ? await variants[0].start() : undefined;
if (kept) await batch(urls);
for (let r = 0; r < ROUNDS; r++) {
  for (const v of variants) {
    const svc = kept ?? (await v.start());
    try {
      if (!kept) {
        await batch(urls.slice(0, 200));
        await batch(urls);
      }
      const a = acc.get(v.name);
      const svcCpu = () => (svc.pids ?? [svc.pid]).reduce((t, pid) => t + cpuMs(pid), 0);
      const s0 = svcCpu(), b0 = cpuMs(BEAM), h0 = process.cpuUsage();
      a.rates.push(await batch(urls));
      const h = process.cpuUsage(h0);
      a.svc += svcCpu() - s0; a.broker += cpuMs(BEAM) - b0; a.here += (h.user + h.system) / 1000; a.pages += urls.length;
    } finally {
      if (!kept) await svc.stop();
    }
  }
}
await kept?.stop();
for (const [name, a] of acc) {
  const med = [...a.rates].sort((x, y) => x - y)[a.rates.length >> 1];
  const us = (ms) => Math.round((ms * 1000) / a.pages);
  console.log(`${name.padEnd(5)} ${Math.round(med)} pages/s (rounds ${a.rates.map(Math.round).join(' ')}); CPU µs/page: service ${us(a.svc)}, producer+server ${us(a.here)}${BEAM ? `, broker ${us(a.broker)}` : ''}`);
}
await client.close();
await server.stop();
