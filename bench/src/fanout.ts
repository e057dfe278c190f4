/**
 * Chunked fan-out/fan-in end to end: count the primes in [1, 10^10] with one prime-filter
 * process, then with two (one worker thread each), through the real broker. The same run
 * measures both, so the ratio is the scaling. Two chunkings:
 *
 *  - what `pipeline primes 1 1e10 --count` does with no --chunk (countJobs: 10 jobs of 10^9);
 *    the target row;
 *  - the example, `--chunk 5e7` (200 jobs of ~8 ms of sieving each): information,
 *    it shows what a job costs besides its work.
 *
 * The services are long-running: a process starts its worker thread (and compiles the sieve)
 * with its first large range, once. So each configuration is started, warmed up with a small
 * batch of large ranges (every process gets some), then timed over rounds; the median round
 * is reported, the cold first batch in the note.
 *
 * With BEAM_PID (the local broker's beam.smp) the note also gives the broker's CPU per job.
 *
 * For reference the same run also times the bare compute of the same ranges in this
 * process, on one worker thread and then on two (no broker): that ratio is what two cores of
 * this machine give on this work, the ceiling for the two-process figure.
 */
import { PrimePool } from '@amqp-pipeline/prime-filter/dist/pool.js';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, countJobs, rangeJobs, type JobSpec } from '@amqp-pipeline/producer';
import { createLogger, loadConfig, type Config } from '@amqp-pipeline/shared';
import { cpuSeconds, median } from './proc.js';
import type { Row } from './table.js';
import { withVhost } from './vhost.js';

const TO = Number(process.env.BENCH_FANOUT_TO ?? 1e10);
/** The example chunk (information row); BENCH_FANOUT_CHUNK changes it. */
const SMALL_CHUNK = Number(process.env.BENCH_FANOUT_CHUNK ?? 5e7);
/** Timed rounds: the target row's batches are short (10 jobs), so it gets more. */
const ROUNDS = Number(process.env.BENCH_FANOUT_ROUNDS ?? 3);
const DEFAULT_ROUNDS = Number(process.env.BENCH_FANOUT_ROUNDS ?? 9);

/** How a count over [from, to] is split into jobs. */
interface Chunking {
  name: string;
  jobs(from: number, to: number): JobSpec[];
  rounds: number;
}
/** What the CLI does with `--count` and no --chunk. */
const CLI_DEFAULT: Chunking = { name: 'the CLI default (no --chunk)', jobs: (from, to) => countJobs('primes', { from, to }), rounds: DEFAULT_ROUNDS };
const SMALL: Chunking = {
  name: `--chunk ${SMALL_CHUNK.toExponential()}`,
  jobs: (from, to) => rangeJobs('primes', { from, to, count: true }, SMALL_CHUNK),
  rounds: ROUNDS,
};
/** pi(10^10), for checking the answer. */
const PI_1E10 = 455_052_511;

/** CPU seconds used so far by the broker (BEAM_PID: the local broker's beam.smp), or NaN. */
const brokerCpuSeconds = () => cpuSeconds(Number(process.env.BEAM_PID) || 0);

/** One batch counting [from, to] in `jobs`; seconds and the combined count. */
async function countBatch(client: PipelineClient, jobs: JobSpec[], from: number, to: number): Promise<{ secs: number; count: number }> {
  let count = -1;
  const started = performance.now();
  const outcome = await client.submit(jobs, {
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
  /** The services' CPU per job (all their threads, the sieve included), ms. */
  serviceMsPerJob: number;
  /** This process's (the producer's) CPU per job, ms. */
  producerMsPerJob: number;
  counts: number[];
}

async function countWith(config: Config, processes: number, chunking: Chunking): Promise<Timing> {
  const procs = Array.from(
    { length: processes },
    () => new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL, WORKERS: '1', PREFETCH: process.env.BENCH_FANOUT_PREFETCH ?? '2', WORK_QUEUE_TYPE: config.WORK_QUEUE_TYPE } }),
  );
  try {
    await Promise.all(procs.map((p) => p.ready));
    const client = await PipelineClient.connect(config, createLogger('bench', { level: 'error' }, 2));
    try {
      // Cold: the first jobs start each process's worker thread. Four jobs per process, so
      // every process (prefetch 2) gets some.
      const cold = await countBatch(client, rangeJobs('primes', { from: 1, to: SMALL_CHUNK * 4 * processes, count: true }, SMALL_CHUNK), 1, SMALL_CHUNK * 4 * processes);
      const jobs = chunking.jobs(1, TO);
      const rounds: number[] = [];
      const counts: number[] = [];
      const cpu0 = brokerCpuSeconds();
      const serviceCpu = () => procs.reduce((sum, p) => sum + cpuSeconds(p.pid ?? 0), 0);
      const service0 = serviceCpu();
      const producer0 = process.cpuUsage();
      for (let i = 0; i < chunking.rounds; i++) {
        const r = await countBatch(client, jobs, 1, TO);
        rounds.push(r.secs);
        counts.push(r.count);
      }
      const timedJobs = chunking.rounds * jobs.length;
      const brokerMsPerJob = ((brokerCpuSeconds() - cpu0) * 1000) / timedJobs;
      const serviceMsPerJob = ((serviceCpu() - service0) * 1000) / timedJobs;
      const used = process.cpuUsage(producer0);
      const producerMsPerJob = (used.user + used.system) / 1000 / timedJobs;
      return { secs: median(rounds), coldSecs: cold.secs, counts, brokerMsPerJob, serviceMsPerJob, producerMsPerJob };
    } finally {
      await client.close();
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

/** The same ranges counted in this process on `threads` worker threads, no broker: seconds. */
async function computeOnly(threads: number, chunking: Chunking): Promise<number> {
  const pool = new PrimePool({ threads });
  try {
    const ranges = chunking.jobs(1, TO).map((j) => [j.body.from, j.body.to] as [number, number]);
    await Promise.all(ranges.slice(0, 2 * threads).map(([a, b]) => pool.summary(a, b)));
    const rounds: number[] = [];
    for (let i = 0; i < chunking.rounds; i++) {
      const started = performance.now();
      await Promise.all(ranges.map(([a, b]) => pool.summary(a, b)));
      rounds.push((performance.now() - started) / 1000);
    }
    return median(rounds);
  } finally {
    await pool.close();
  }
}

const countCheck = (counts: number[]): string =>
  TO === 1e10 ? (counts.every((c) => c === PI_1E10) ? `every count ${PI_1E10} = pi(10^10)` : `WRONG counts ${counts.join('/')}`) : `counts ${counts.join('/')}`;

/** The rows of one chunking: the bare 2-vs-1-thread compute, and 2 processes vs 1. */
async function chunkingRows(config: Config, chunking: Chunking, target: boolean): Promise<Row[]> {
  const bare1 = await computeOnly(1, chunking);
  const bare2 = await computeOnly(2, chunking);
  const one = await countWith(config, 1, chunking);
  const two = await countWith(config, 2, chunking);
  const jobs = chunking.jobs(1, TO).length;
  const speedup = one.secs / two.secs;
  const cpuNote = (t: Timing) => `${t.serviceMsPerJob.toFixed(1)}`;
  return [
    {
      suite: 'fan-out',
      case: `bare compute of the same ${jobs} ranges in one process: 2 worker threads vs 1 (no broker; what 2 cores give here)`,
      ours: bare2,
      baseline: bare1,
      baselineName: '1 thread',
      unit: 's',
      higherIsBetter: false,
      note: `${(bare1 / bare2).toFixed(2)}x faster; median of ${chunking.rounds}`,
    },
    {
      suite: 'fan-out',
      case: `count primes in [1, ${TO.toExponential()}], ${chunking.name}: ${jobs} jobs, 2 prime-filter processes vs 1`,
      ours: two.secs,
      baseline: one.secs,
      baselineName: '1 process',
      unit: 's',
      higherIsBetter: false,
      ...(target ? { target: '2 processes >= 1.7x faster (ratio <= 0.59)', met: speedup >= 1.7 } : {}),
      note:
        `${speedup.toFixed(2)}x faster (${((speedup / (bare1 / bare2)) * 100).toFixed(0)}% of the bare 2-thread scaling); ` +
        `warm processes, median of ${chunking.rounds} batches; ` +
        (Number.isNaN(two.brokerMsPerJob) ? '' : `broker CPU per job ${one.brokerMsPerJob.toFixed(2)} / ${two.brokerMsPerJob.toFixed(2)} ms; `) +
        `CPU per job: services ${cpuNote(one)} / ${cpuNote(two)} ms (the sieve alone ${((bare1 * 1000) / jobs).toFixed(1)}), ` +
        `producer ${one.producerMsPerJob.toFixed(2)} / ${two.producerMsPerJob.toFixed(2)} ms; ` +
        `first batch after start: ${one.coldSecs.toFixed(2)} s / ${two.coldSecs.toFixed(2)} s for 4 / 8 jobs; ${countCheck([...one.counts, ...two.counts])}`,
    },
  ];
}

export async function run(): Promise<Row[]> {
  const config = loadConfig(process.env);
  const rows = [...(await chunkingRows(config, CLI_DEFAULT, true)), ...(await chunkingRows(config, SMALL, false))];
  // The CLI default again with classic work queues (a vhost of their own): at this rate (a job
  // or two in flight per process) a classic queue costs the broker less per job than a quorum queue.
  if (process.env.BENCH_FANOUT_CLASSIC !== 'false') {
    const classic = await withVhost(config.AMQP_URL, 'amqp-pipeline-bench-fanout-classic', async (v) => {
      const c = loadConfig({ ...process.env, AMQP_URL: v.url, WORK_QUEUE_TYPE: 'classic' });
      return { one: await countWith(c, 1, CLI_DEFAULT), two: await countWith(c, 2, CLI_DEFAULT) };
    });
    if (classic.value) {
      const { one: c1, two: c2 } = classic.value;
      rows.push({
        suite: 'fan-out',
        case: `the same, ${CLI_DEFAULT.name}, WORK_QUEUE_TYPE=classic: 2 prime-filter processes vs 1`,
        ours: c2.secs,
        baseline: c1.secs,
        baselineName: '1 process, classic',
        unit: 's',
        higherIsBetter: false,
        note:
          `${(c1.secs / c2.secs).toFixed(2)}x faster; ` +
          (Number.isNaN(c2.brokerMsPerJob) ? '' : `broker CPU per job ${c1.brokerMsPerJob.toFixed(2)} / ${c2.brokerMsPerJob.toFixed(2)} ms; `) +
          countCheck([...c1.counts, ...c2.counts]),
      });
    } else {
      rows.push({ suite: 'fan-out', case: 'WORK_QUEUE_TYPE=classic row', ours: NaN, unit: '-', higherIsBetter: false, note: `skipped: ${classic.skipped}` });
    }
  }
  return rows;
}
