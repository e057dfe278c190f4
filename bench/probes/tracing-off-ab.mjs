// Does the tracing code cost anything when tracing is off? Two builds of the pipeline side by
// side, each with its own vhost, prime-filter process and producer process: BEFORE (a checkout
// of the commit before tracing, built: git clone . /work/pre && cd /work/pre && git checkout
// f54172c && npm ci) and AFTER (this tree, built). No OTEL_* set for either. ROUNDS rounds of
// JOBS small jobs (100-wide prime ranges) each, taking turns, the order swapped every round;
// prints each round's after/before ratio and their median.
//   node bench/probes/tracing-off-ab.mjs /work/pre [JOBS=20000 ROUNDS=8; AFTER=/work/pre for an A/A run: the noise]
import { fork, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { withVhost } from '../dist/vhost.js';

const [role, root] = process.argv.slice(2);

if (role === 'producer') {
  // A producer of the build at `root`, driven by the parent: {n, offset} -> {secs}.
  const { PipelineClient, rangeJob } = await import(`${root}/producer/dist/index.js`);
  const { createLogger, loadConfig } = await import(`${root}/shared/dist/index.js`);
  const client = await PipelineClient.connect(loadConfig(process.env), createLogger('probe', { level: 'warn' }, 2));
  process.on('message', async ({ n, offset }) => {
    const jobs = Array.from({ length: n }, (_, i) => rangeJob('primes', { from: (offset + i) * 100, to: (offset + i) * 100 + 99 }));
    const started = performance.now();
    const outcome = await client.submit(jobs, { wait: true, output: 'independent', timeoutMs: 600_000 });
    if (!outcome.complete || outcome.failed) throw new Error('incomplete batch');
    process.send({ secs: (performance.now() - started) / 1000 });
  });
  process.once('disconnect', () => void client.close().finally(() => process.exit(0)));
  process.send('ready');
} else {
  const before = process.argv[2];
  const after = process.env.AFTER ?? fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
  if (!before) throw new Error('usage: node bench/probes/tracing-off-ab.mjs BEFORE_ROOT');
  const JOBS = Number(process.env.JOBS ?? 20_000);
  const ROUNDS = Number(process.env.ROUNDS ?? 8);
  const url = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
  for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];

  const start = async (rootDir, vhostUrl) => {
    const env = { ...process.env, AMQP_URL: vhostUrl, LOG_LEVEL: 'info', WORK_QUEUE_TYPE: 'quorum' };
    const service = spawn(process.execPath, [`${rootDir}/consumers/prime-filter/dist/main.js`], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve, reject) => {
      service.stdout.on('data', (d) => String(d).includes('"msg":"consuming"') && resolve());
      service.once('exit', (code) => reject(new Error(`prime-filter of ${rootDir} exited (${code})`)));
    });
    service.stdout.resume();
    const producer = fork(fileURLToPath(import.meta.url), ['producer', rootDir], { env: { ...env, LOG_LEVEL: 'warn' } });
    await new Promise((resolve) => producer.once('message', resolve));
    const rates = [];
    const batch = (n, offset) =>
      new Promise((resolve) => {
        producer.once('message', (m) => resolve(n / m.secs));
        producer.send({ n, offset });
      });
    return {
      rates,
      batch,
      async stop() {
        const gone = new Promise((r) => producer.once('exit', r));
        producer.disconnect();
        await gone;
        service.kill('SIGTERM');
        await new Promise((r) => service.once('exit', r));
      },
    };
  };

  await withVhost(url, 'amqp-pipeline-probe-before', (b) =>
    withVhost(url, 'amqp-pipeline-probe-after', async (a) => {
      const old = await start(before, b.url);
      const now = await start(after, a.url);
      try {
        await old.batch(2000, 0);
        await now.batch(2000, 0);
        for (let i = 0; i < ROUNDS; i++) {
          const offset = 2000 + i * JOBS;
          for (const v of i % 2 ? [now, old] : [old, now]) v.rates.push(await v.batch(JOBS, offset));
          process.stderr.write(`round ${i + 1}: before ${Math.round(old.rates[i])} after ${Math.round(now.rates[i])} jobs/s, ratio ${(now.rates[i] / old.rates[i]).toFixed(3)}\n`);
        }
      } finally {
        await old.stop();
        await now.stop();
      }
      const med = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
      const ratios = now.rates.map((r, i) => r / old.rates[i]);
      console.log(`before (${before}): median ${Math.round(med(old.rates))} jobs/s; after (${after}): median ${Math.round(med(now.rates))} jobs/s`);
      console.log(`after/before per round: ${ratios.map((x) => x.toFixed(3)).join(' ')}; median ${med(ratios).toFixed(3)}`);
    }),
  );
}
