// Quick probe: BullMQ on the local Redis, N small prime jobs, one worker process.
import { fork } from 'node:child_process';
import { Queue, QueueEvents, Worker } from 'bullmq';
const connection = { host: '127.0.0.1', port: 6379 };
if (process.argv[2] === 'worker') {
  const { smallPrimesBetween } = await import('../../consumers/prime-filter/dist/small-range.js');
  const w = new Worker('peer-probe', async (job) => Array.from(smallPrimesBetween(job.data.from, job.data.to)), { connection, concurrency: Number(process.env.C ?? 50) });
  await w.waitUntilReady();
  process.send('ready');
} else {
  const N = Number(process.env.N ?? 20000);
  const q = new Queue('peer-probe', { connection });
  await q.obliterate({ force: true });
  const ev = new QueueEvents('peer-probe', { connection });
  await ev.waitUntilReady();
  const child = fork(new URL(import.meta.url).pathname, ['worker']);
  await new Promise((r) => child.once('message', r));
  for (let round = 0; round < 4; round++) {
    let done = 0;
    const finished = new Promise((r) => ev.on('completed', function f() { if (++done === N) { ev.off('completed', f); r(); } }));
    const t0 = performance.now();
    for (let i = 0; i < N; i += 1000) await q.addBulk(Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({ name: 'p', data: { from: (i + k) * 100, to: (i + k) * 100 + 99 }, opts: { removeOnComplete: true } })));
    await finished;
    console.log(`round ${round}: ${Math.round(N / ((performance.now() - t0) / 1000))} jobs/s`);
  }
  // one at a time
  const lat = [];
  for (let i = 0; i < 600; i++) {
    const t0 = performance.now();
    const job = await q.add('p', { from: i * 100, to: i * 100 + 99 }, { removeOnComplete: 100 });
    await job.waitUntilFinished(ev);
    if (i >= 100) lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);
  console.log(`one at a time p50 ${lat[250].toFixed(2)} p99 ${lat[495].toFixed(2)} ms`);
  child.kill();
  await q.close(); await ev.close();
}
