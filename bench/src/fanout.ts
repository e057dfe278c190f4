/**
 * Chunked fan-out/fan-in end to end: count the primes in [1, 10^10] as 200 jobs of 5*10^7,
 * with one prime-filter process, then with two (one worker thread each), through the real
 * broker. The same run measures both, so the ratio is the scaling.
 *
 * The services are long-running: a process starts its worker thread (and compiles the sieve)
 * with its first large range, once. So each configuration is started, warmed up with a small
 * batch of large ranges (every process gets some), then timed over ROUNDS batches; the median
 * round is reported, the cold first batch in the note.
 *
 * With BEAM_PID (the local broker's beam.smp) the note also gives the broker's CPU per job.
 *
 * For reference the same run also times the bare compute of the same 200 ranges in this
 * process, on one worker thread and then on two (no broker): that ratio is what two cores of
 * this machine give on this work, the ceiling for the two-process figure.
 */
import { PrimePool } from '@amqp-pipeline/prime-filter/dist/pool.js';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, rangeJobs } from '@amqp-pipeline/producer';
import { createLogger, loadConfig, type Config } from '@amqp-pipeline/shared';
import { cpuSeconds, median } from './proc.js';
import type { Row } from './table.js';
import { withVhost } from './vhost.js';

const TO = Number(process.env.BENCH_FANOUT_TO ?? 1e10);
const CHUNK = Number(process.env.BENCH_FANOUT_CHUNK ?? 5e7);
const ROUNDS = Number(process.env.BENCH_FANOUT_ROUNDS ?? 3);
/** pi(10^10), for checking the answer. */
const PI_1E10 = 455_052_511;

/** CPU seconds used so far by the broker (BEAM_PID: the local broker's beam.smp), or NaN. */
const brokerCpuSeconds = () => cpuSeconds(Number(process.env.BEAM_PID) || 0);

/** One batch counting [from, to] in CHUNK-wide jobs; seconds and the combined count. */
async function countBatch(client: PipelineClient, from: number, to: number): Promise<{ secs: number; count: number }> {
  let count = -1;
  const started = performance.now();
  const outcome = await client.submit(rangeJobs('primes', { from, to, count: true }, CHUNK), {
    wait: true,
    output: 'combine',
    request: { from, to },
    timeoutMs: 1_800_000,
    onResult: (r) => {
      if (r.type === 'combined' && r.result.ok && 'summary' in r.result) count = r.result.summary.count;
    },
  });
  const secs = (performance.now() - started) / 1000;
  if (!outcome.complete || outcome.failed) throw new Error('fan-out bench batch did not complete');
  return { secs, count };
}

interface Timing {
  /** Median of the warm rounds, seconds. */
  secs: number;
  /** The first batch after the processes started (worker threads not yet started). */
  coldSecs: number;
  /** Broker CPU per job over the timed rounds, ms (NaN without BEAM_PID). */
  brokerMsPerJob: number;
  counts: number[];
}

async function countWith(config: Config, processes: number): Promise<Timing> {
  const procs = Array.from(
    { length: processes },
    () => new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL, WORKERS: '1', PREFETCH: '2', WORK_QUEUE_TYPE: config.WORK_QUEUE_TYPE } }),
  );
  try {
    await Promise.all(procs.map((p) => p.ready));
    const client = await PipelineClient.connect(config, createLogger('bench', { level: 'error' }, 2));
    try {
      // Cold: the first jobs start each process's worker thread. Four jobs per process, so
      // every process (prefetch 2) gets some.
      const cold = await countBatch(client, 1, CHUNK * 4 * processes);
      const rounds: number[] = [];
      const counts: number[] = [];
      const cpu0 = brokerCpuSeconds();
      for (let i = 0; i < ROUNDS; i++) {
        const r = await countBatch(client, 1, TO);
        rounds.push(r.secs);
        counts.push(r.count);
      }
      const brokerMsPerJob = ((brokerCpuSeconds() - cpu0) * 1000) / (ROUNDS * Math.ceil(TO / CHUNK));
      return { secs: median(rounds), coldSecs: cold.secs, counts, brokerMsPerJob };
    } finally {
      await client.close();
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

/** The same ranges counted in this process on `threads` worker threads, no broker: seconds. */
async function computeOnly(threads: number): Promise<number> {
  const pool = new PrimePool({ threads });
  try {
    const ranges: Array<[number, number]> = [];
    for (let from = 1; from <= TO; from += CHUNK) ranges.push([from, Math.min(TO, from + CHUNK - 1)]);
    await Promise.all(ranges.slice(0, 2 * threads).map(([a, b]) => pool.summary(a, b)));
    const rounds: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const started = performance.now();
      await Promise.all(ranges.map(([a, b]) => pool.summary(a, b)));
      rounds.push((performance.now() - started) / 1000);
    }
    return median(rounds);
  } finally {
    await pool.close();
  }
}

export async function run(): Promise<Row[]> {
  const config = loadConfig(process.env);
  const bare1 = await computeOnly(1);
  const bare2 = await computeOnly(2);
  const one = await countWith(config, 1);
  const two = await countWith(config, 2);
  const jobs = Math.ceil(TO / CHUNK);
  const allCounts = [...one.counts, ...two.counts];
  const check =
    TO === 1e10
      ? allCounts.every((c) => c === PI_1E10)
        ? `every count ${PI_1E10} = pi(10^10)`
        : `WRONG counts ${allCounts.join('/')}`
      : `counts ${allCounts.join('/')}`;
  // The same with classic work queues (a vhost of their own): at this rate (a job or two in
  // flight per process) a classic queue costs the broker less per job than a quorum queue.
  const classicRows: Row[] = [];
  if (process.env.BENCH_FANOUT_CLASSIC !== 'false') {
    const classic = await withVhost(config.AMQP_URL, 'amqp-pipeline-bench-fanout-classic', async (v) => {
      const c = loadConfig({ ...process.env, AMQP_URL: v.url, WORK_QUEUE_TYPE: 'classic' });
      return { one: await countWith(c, 1), two: await countWith(c, 2) };
    });
    if (classic.value) {
      const { one: c1, two: c2 } = classic.value;
      const ok = [...c1.counts, ...c2.counts].every((c) => TO !== 1e10 || c === PI_1E10);
      classicRows.push({
        suite: 'fan-out',
        case: `the same, WORK_QUEUE_TYPE=classic: 2 prime-filter processes vs 1`,
        ours: c2.secs,
        baseline: c1.secs,
        baselineName: '1 process, classic',
        unit: 's',
        higherIsBetter: false,
        note:
          `${(c1.secs / c2.secs).toFixed(2)}x faster (${((c1.secs / c2.secs) / (bare1 / bare2) * 100).toFixed(0)}% of the bare 2-thread scaling); ` +
          (Number.isNaN(c2.brokerMsPerJob) ? '' : `broker CPU per job ${c1.brokerMsPerJob.toFixed(2)} / ${c2.brokerMsPerJob.toFixed(2)} ms; `) +
          (ok ? 'every count right' : `WRONG counts ${[...c1.counts, ...c2.counts].join('/')}`),
      });
    } else {
      classicRows.push({ suite: 'fan-out', case: 'WORK_QUEUE_TYPE=classic row', ours: NaN, unit: '-', higherIsBetter: false, note: `skipped: ${classic.skipped}` });
    }
  }
  return [
    {
      suite: 'fan-out',
      case: `bare compute of the same ${jobs} ranges in one process: 2 worker threads vs 1 (no broker; what 2 cores give here)`,
      ours: bare2,
      baseline: bare1,
      baselineName: '1 thread',
      unit: 's',
      higherIsBetter: false,
      note: `${(bare1 / bare2).toFixed(2)}x faster; median of ${ROUNDS}`,
    },
    {
      suite: 'fan-out',
      case: `count primes in [1, ${TO.toExponential()}] as ${jobs} jobs: 2 prime-filter processes vs 1`,
      ours: two.secs,
      baseline: one.secs,
      baselineName: '1 process',
      unit: 's',
      higherIsBetter: false,
      target: '2 processes >= 1.7x faster (ratio <= 0.59)',
      met: one.secs / two.secs >= 1.7,
      note:
        `${(one.secs / two.secs).toFixed(2)}x faster (${((one.secs / two.secs) / (bare1 / bare2) * 100).toFixed(0)}% of the bare 2-thread scaling); ` +
        `warm processes, median of ${ROUNDS} batches; ` +
        (Number.isNaN(two.brokerMsPerJob) ? '' : `broker CPU per job ${one.brokerMsPerJob.toFixed(2)} / ${two.brokerMsPerJob.toFixed(2)} ms; `) +
        `first batch after start: ${one.coldSecs.toFixed(2)} s / ${two.coldSecs.toFixed(2)} s for ${4} / ${8} jobs; ${check}`,
    },
    ...classicRows,
  ];
}
