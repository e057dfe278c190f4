/**
 * Batches at every size of the scale matrix (test/scale-matrix.test.ts), timed: lists, counts
 * and squares of 1, 100, 2,000, 5,000 and 20,000 jobs of 100 numbers each, through the real
 * broker at AMQP_URL, with two prime-filters and two square-mappers started for the suite.
 * Every answer is checked (counts against a sieve, lists whole and in order); a wrong or
 * incomplete answer fails the suite rather than printing a rate.
 *
 * The target row is issue 18's: 20,000 count jobs at least as fast as the same 20,000 jobs as
 * lists. The two take turns for BENCH_ROUNDS rounds (default 5), so a slow spell of the machine
 * hits both alike; the medians are reported, and the target reads the median of the per-round
 * ratios.
 */
import { startServices, stopServices } from '@amqp-pipeline/devtools';
import { PipelineClient, rangeJobs, type BatchOutcome, type Emitted } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import { median } from './proc.js';
import type { Row } from './table.js';

const SUITE = 'scale';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SIZES = [1, 100, 2000, 5000, 20_000];
const CHUNK = 100;
const LIMIT = 20_000 * CHUNK;

type Mode = 'lists' | 'counts' | 'squares';

const composite = new Uint8Array(LIMIT + 1);
composite[0] = composite[1] = 1;
for (let p = 2; p * p <= LIMIT; p++) if (!composite[p]) for (let m = p * p; m <= LIMIT; m += p) composite[m] = 1;
const piUpTo = (to: number) => {
  let n = 0;
  for (let i = 2; i <= to; i++) if (!composite[i]) n++;
  return n;
};

interface Timed {
  secs: number;
  outcome: BatchOutcome;
}

async function runBatch(client: PipelineClient, mode: Mode, jobs: number): Promise<Timed> {
  const to = jobs * CHUNK;
  const range = { from: 1, to, ...(mode === 'counts' ? { count: true } : {}) };
  let values = 0;
  let previous = 0;
  let inOrder = true;
  let count = -1;
  const onResult = (r: Emitted) => {
    if (r.type === 'combined') {
      if (r.result.ok && 'summary' in r.result) count = r.result.summary.count;
      return;
    }
    if (!r.result.ok) return;
    const list = 'primes' in r.result ? r.result.primes : 'squares' in r.result ? r.result.squares : [];
    for (const item of list) {
      const v = Number(item); // squares past 2^53 come as digit strings; these stay below it
      if (v <= previous) inOrder = false;
      previous = v;
      values++;
    }
  };
  const started = performance.now();
  const outcome = await client.submit(rangeJobs(mode === 'squares' ? 'squares' : 'primes', range, CHUNK), {
    wait: true,
    timeoutMs: 120_000,
    output: mode === 'counts' ? 'combine' : 'ordered',
    request: { from: 1, to },
    onResult,
  });
  const secs = (performance.now() - started) / 1000;
  const expected = mode === 'squares' ? to : piUpTo(to);
  const got = mode === 'counts' ? count : values;
  if (!outcome.complete || outcome.failed || got !== expected || !inOrder) {
    throw new Error(`${mode} x ${jobs}: complete ${outcome.complete}, failed ${outcome.failed}, ${got} values where ${expected} are owed, in order ${inOrder}`);
  }
  return { secs, outcome };
}

export async function run(): Promise<Row[]> {
  const config = loadConfig(process.env);
  const env = { AMQP_URL: config.AMQP_URL }; // info: readiness is read from the services' logs
  const services = await startServices(['prime-filter', 'prime-filter', 'square-mapper', 'square-mapper'], { env });
  const client = await PipelineClient.connect(config, createLogger('bench-scale', { level: 'warn' }, 2));
  const rows: Row[] = [];
  try {
    // Warm-up: every service's code compiled, the broker's queues touched.
    for (const mode of ['lists', 'counts', 'squares'] as const) await runBatch(client, mode, 2000);

    for (const mode of ['lists', 'counts', 'squares'] as const) {
      for (const jobs of SIZES) {
        const { secs, outcome } = await runBatch(client, mode, jobs);
        rows.push({
          suite: SUITE,
          case: `${mode}, ${jobs} jobs of ${CHUNK} numbers (2 replicas)`,
          ours: jobs / secs,
          unit: 'jobs/s',
          higherIsBetter: true,
          note: `${secs.toFixed(2)} s, exact; ${outcome.window.spilled} replies sent round, ${outcome.stats.duplicates} duplicates dropped`,
        });
      }
    }

    const counts: number[] = [];
    const lists: number[] = [];
    const ratios: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const c = await runBatch(client, 'counts', 20_000);
      const l = await runBatch(client, 'lists', 20_000);
      counts.push(20_000 / c.secs);
      lists.push(20_000 / l.secs);
      ratios.push(l.secs / c.secs);
    }
    const ratio = median(ratios);
    rows.push({
      suite: SUITE,
      case: '20,000 count jobs against the same 20,000 as lists (primes 1..2e6, --chunk 100)',
      ours: median(counts),
      baseline: median(lists),
      baselineName: 'the same jobs as ordered lists',
      unit: 'jobs/s',
      higherIsBetter: true,
      target: '>= 1x the lists',
      met: ratio >= 1,
      note: `median of ${ROUNDS} rounds taking turns; per-round ratios ${ratios.map((x) => x.toFixed(2)).join(', ')}`,
    });
  } finally {
    await client.close();
    await stopServices(services);
  }
  return rows;
}
