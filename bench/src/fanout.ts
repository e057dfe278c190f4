/**
 * Chunked fan-out/fan-in end to end: count the primes in [1, 10^10] with one prime-filter
 * process, then with two (one worker thread each), through the real broker. The same run
 * measures both, so the ratio is the scaling. Two chunkings:
 *
 *  - what `pipeline primes 1 1e10 --count` does with no --chunk (countJobs: 15 jobs, 7 of 10^9,
 *    then shorter and shorter);
 *    the target row;
 *  - the example, `--chunk 5e7` (200 jobs of ~8 ms of sieving each): information,
 *    it shows what a job costs besides its work.
 *
 * The services are long-running: a process starts and warms its worker threads as it starts
 * (PrimePool.warm; the cold-start suite measures what is left of a first range's cost), but its
 * own code still runs cold on its first jobs. So each configuration is started, warmed up with a small
 * batch of large ranges (every process gets some), then timed over rounds; the median round
 * is reported, the cold first batch in the note.
 *
 * When the broker runs on this machine (proc.ts brokerPid) the note also gives the broker's CPU per job.
 *
 * For reference the same run also times the bare compute of the same ranges in this
 * process, on one worker thread and then on two (no broker): that ratio is what two cores of
 * this machine give on this work, the ceiling for the two-process figure.
 */
import { PrimePool } from '@amqp-pipeline/prime-filter/dist/pool.js';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, countJobs, rangeJobs, type JobSpec } from '@amqp-pipeline/producer';
import { createLogger, loadConfig, type Config } from '@amqp-pipeline/shared';
import { brokerPid, cpuSeconds, median } from './proc.js';
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

/** CPU seconds used so far by the broker (brokerPid: the local broker), or NaN. */
const brokerCpuSeconds = () => cpuSeconds(brokerPid());

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

/** Timed batches of one configuration, and what they cost. */
interface Timing {
  /** Seconds of each timed round. */
  rounds: number[];
  /** Median of the rounds, seconds. */
  secs: number;
  /** The first batch after the processes started (worker threads not yet started). */
  coldSecs: number;
  /** Broker CPU per job over the timed rounds, ms (NaN when the broker is not local). */
  brokerMsPerJob: number;
  /** The services' CPU per job (all their threads, the sieve included), ms. */
  serviceMsPerJob: number;
  /** This process's (the producer's) CPU per job, ms. */
  producerMsPerJob: number;
  counts: number[];
}

/**
 * `processes` prime-filter processes (one worker thread, prefetch 2 each: the least the
 * adaptive prefetch goes to) and a producer, on `config`'s broker and vhost, warmed up; then
 * timed batches one at a time, each with what it cost.
 */
class Fleet {
  private readonly rounds: number[] = [];
  private readonly counts: number[] = [];
  private cpu = { broker: 0, service: 0, producer: 0, jobs: 0 };

  private constructor(
    private readonly procs: ServiceProcess[],
    private readonly client: PipelineClient,
    private readonly coldSecs: number,
  ) {}

  static async start(config: Config, processes: number): Promise<Fleet> {
    const procs = Array.from(
      { length: processes },
      () => new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL, WORKERS: '1', PREFETCH: '2', WORK_QUEUE_TYPE: config.WORK_QUEUE_TYPE } }),
    );
    try {
      await Promise.all(procs.map((p) => p.ready));
      const client = await PipelineClient.connect(config, createLogger('bench', { level: 'error' }, 2));
      // Cold: the first jobs start each process's worker thread. Four jobs per process, so
      // every process (prefetch 2) gets some.
      const to = SMALL_CHUNK * 4 * processes;
      const cold = await countBatch(client, rangeJobs('primes', { from: 1, to, count: true }, SMALL_CHUNK), 1, to);
      return new Fleet(procs, client, cold.secs);
    } catch (err) {
      await Promise.all(procs.map((p) => p.stop()));
      throw err;
    }
  }

  /** One timed batch counting [1, TO] in `jobs`; seconds. */
  async round(jobs: JobSpec[]): Promise<number> {
    const serviceCpu = () => this.procs.reduce((sum, p) => sum + cpuSeconds(p.pid ?? 0), 0);
    const broker0 = brokerCpuSeconds();
    const service0 = serviceCpu();
    const producer0 = process.cpuUsage();
    const r = await countBatch(this.client, jobs, 1, TO);
    const used = process.cpuUsage(producer0);
    this.cpu.broker += brokerCpuSeconds() - broker0;
    this.cpu.service += serviceCpu() - service0;
    this.cpu.producer += (used.user + used.system) / 1e6;
    this.cpu.jobs += jobs.length;
    this.rounds.push(r.secs);
    this.counts.push(r.count);
    return r.secs;
  }

  timing(): Timing {
    const perJob = (secs: number) => (secs * 1000) / this.cpu.jobs;
    return {
      rounds: this.rounds,
      secs: median(this.rounds),
      coldSecs: this.coldSecs,
      counts: this.counts,
      brokerMsPerJob: perJob(this.cpu.broker),
      serviceMsPerJob: perJob(this.cpu.service),
      producerMsPerJob: perJob(this.cpu.producer),
    };
  }

  async stop(): Promise<void> {
    await this.client.close().catch(() => {});
    await Promise.all(this.procs.map((p) => p.stop()));
  }
}

/** Times `rounds` batches on a fleet started for the purpose, then stops it. */
async function countWith(config: Config, processes: number, chunking: Chunking): Promise<Timing> {
  const fleet = await Fleet.start(config, processes);
  try {
    const jobs = chunking.jobs(1, TO);
    for (let i = 0; i < chunking.rounds; i++) await fleet.round(jobs);
    return fleet.timing();
  } finally {
    await fleet.stop();
  }
}

/** Worker pools of 1 and 2 threads in this process, no broker: the same ranges, timed. */
class BareCompute {
  private constructor(
    private readonly pools: [PrimePool, PrimePool],
    private readonly ranges: Array<[number, number]>,
  ) {}

  static async start(chunking: Chunking): Promise<BareCompute> {
    const pools: [PrimePool, PrimePool] = [new PrimePool({ threads: 1 }), new PrimePool({ threads: 2 })];
    const ranges = chunking.jobs(1, TO).map((j) => [j.body.from, j.body.to] as [number, number]);
    for (const [t, pool] of pools.entries()) await Promise.all(ranges.slice(0, 2 * (t + 1)).map(([a, b]) => pool.summary(a, b)));
    return new BareCompute(pools, ranges);
  }

  /** Seconds to count every range on 1 or 2 threads. */
  async round(threads: 1 | 2): Promise<number> {
    const pool = threads === 1 ? this.pools[0] : this.pools[1];
    const started = performance.now();
    await Promise.all(this.ranges.map(([a, b]) => pool.summary(a, b)));
    return (performance.now() - started) / 1000;
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.close()));
  }
}

interface Scaling {
  one: Timing;
  two: Timing;
  bare1: number[];
  bare2: number[];
  /** Whether the four took turns round by round (else each ran its rounds alone, in order). */
  paired: boolean;
}

/**
 * The four measurements of one chunking: bare compute on 1 and 2 threads, the pipeline with
 * 1 and 2 processes. They take turns round by round, so a slow spell of the machine (a
 * virtual machine here loses a core for seconds at a time) lands on all four alike and the
 * per-round ratios stay fair: the one-process fleet lives in a vhost of its own beside the
 * two-process one. Without the management API (no vhost), each runs its rounds in turn.
 */
async function measureScaling(config: Config, chunking: Chunking): Promise<Scaling> {
  const jobs = chunking.jobs(1, TO);
  const bare = await BareCompute.start(chunking);
  try {
    const side = await withVhost(config.AMQP_URL, 'amqp-pipeline-bench-fanout-one', async (v) => {
      const oneFleet = await Fleet.start(loadConfig({ ...process.env, AMQP_URL: v.url, WORK_QUEUE_TYPE: config.WORK_QUEUE_TYPE }), 1);
      try {
        const twoFleet = await Fleet.start(config, 2);
        try {
          const bare1: number[] = [];
          const bare2: number[] = [];
          for (let i = 0; i < chunking.rounds; i++) {
            bare1.push(await bare.round(1));
            await oneFleet.round(jobs);
            bare2.push(await bare.round(2));
            await twoFleet.round(jobs);
          }
          return { one: oneFleet.timing(), two: twoFleet.timing(), bare1, bare2, paired: true };
        } finally {
          await twoFleet.stop();
        }
      } finally {
        await oneFleet.stop();
      }
    });
    if (side.value) return side.value;
    const bare1: number[] = [];
    const bare2: number[] = [];
    for (let i = 0; i < chunking.rounds; i++) bare1.push(await bare.round(1));
    for (let i = 0; i < chunking.rounds; i++) bare2.push(await bare.round(2));
    return { one: await countWith(config, 1, chunking), two: await countWith(config, 2, chunking), bare1, bare2, paired: false };
  } finally {
    await bare.close();
  }
}

/** Per-round speed-ups a[i] / b[i], their median. */
const medianRatio = (a: number[], b: number[]) => median(a.map((x, i) => x / b[i]!));

const countCheck = (counts: number[]): string =>
  TO === 1e10 ? (counts.every((c) => c === PI_1E10) ? `every count ${PI_1E10} = pi(10^10)` : `WRONG counts ${counts.join('/')}`) : `counts ${counts.join('/')}`;

/** The rows of one chunking: the bare 2-vs-1-thread compute, and 2 processes vs 1. */
async function chunkingRows(config: Config, chunking: Chunking, target: boolean): Promise<Row[]> {
  const { one, two, bare1, bare2, paired } = await measureScaling(config, chunking);
  const jobs = chunking.jobs(1, TO).length;
  const speedup = paired ? medianRatio(one.rounds, two.rounds) : one.secs / two.secs;
  const bareSpeedup = paired ? medianRatio(bare1, bare2) : median(bare1) / median(bare2);
  const how = paired
    ? `median of ${chunking.rounds} rounds, the four measurements of this chunking taking turns round by round (ratios per round)`
    : `median of ${chunking.rounds} rounds each, one after the other (no management API for a second vhost: not paired)`;
  return [
    {
      suite: 'fan-out',
      case: `bare compute of the same ${jobs} ranges in one process: 2 worker threads vs 1 (no broker; what 2 cores give here)`,
      ours: median(bare2),
      baseline: median(bare1),
      baselineName: '1 thread',
      unit: 's',
      higherIsBetter: false,
      note: `${bareSpeedup.toFixed(2)}x faster; ${how}`,
    },
    {
      suite: 'fan-out',
      case: `count primes in [1, ${TO.toExponential()}], ${chunking.name}: ${jobs} jobs, 2 prime-filter processes vs 1`,
      ours: two.secs,
      baseline: one.secs,
      baselineName: '1 process',
      unit: 's',
      higherIsBetter: false,
      ...(target ? { target: '2 processes >= 1.7x faster', met: speedup >= 1.7 } : {}),
      note:
        `${speedup.toFixed(2)}x faster (${((speedup / bareSpeedup) * 100).toFixed(0)}% of the bare 2-thread scaling; per round ${one.rounds.map((x, i) => (x / two.rounds[i]!).toFixed(2)).join(' ')}); ` +
        `warm processes, ${how}; ` +
        (Number.isNaN(two.brokerMsPerJob) ? '' : `broker CPU per job ${one.brokerMsPerJob.toFixed(2)} / ${two.brokerMsPerJob.toFixed(2)} ms; `) +
        `CPU per job: services ${one.serviceMsPerJob.toFixed(1)} / ${two.serviceMsPerJob.toFixed(1)} ms (the sieve alone ${((median(bare1) * 1000) / jobs).toFixed(1)}), ` +
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
