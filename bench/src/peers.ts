/**
 * Side by side with the peers users compare us with, on the same jobs, in the same run:
 *
 * - BullMQ (Node, Redis): a Queue and a QueueEvents in this process, a Worker in a process of
 *   its own (dist/bullmq-worker.js), jobs added with `addBulk`, results read from the queue's
 *   event stream (the `completed` event carries the job's return value).
 * - Celery (Python, RabbitMQ): Debian's python3-celery, a prefork worker of 2 processes and a
 *   producer sending a `group` and reading it back through the `rpc://` result backend
 *   (bench/peers/celery_peer.py), in a vhost of its own on our broker.
 * - Ours: one prime-filter service and the producer library (`submit` of a list of jobs;
 *   `session.call` one at a time).
 *
 * The jobs are the pipeline suite's small jobs: 20,000 ranges 100 wide, each answered with the
 * primes in it, every result returned to the producer and awaited; each round checks that every
 * job was answered and that the primes add up. The three take turns round by round (a batch
 * each), after a warm-up batch each, and the ratios are medians of per-round ratios. Then one
 * job at a time, in blocks of 100 taking turns. Then titles: the titles suite's 2,000 local
 * pages, 100 in flight, through our pipeline, through BullMQ with an undici worker, and with
 * aiohttp (a bare client, no queue), taking turns.
 *
 * Redis: REDIS_URL, else 127.0.0.1:6379, else a redis-server the suite starts on a spare port;
 * without any, the BullMQ rows say so. Traffic stays on 127.0.0.1 (or the given URLs).
 */
import { fork, spawn, spawnSync, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, rangeJob, type PipelineSession } from '@amqp-pipeline/producer';
import { smallPrimesBetween } from '@amqp-pipeline/prime-filter/dist/small-range.js';
import { createLogger, loadConfig, type Config } from '@amqp-pipeline/shared';
import { BareRoundTrip } from './pipeline.js';
import { median } from './proc.js';
import type { Row } from './table.js';
import { AiohttpRounds, aiohttpAvailable, startPageServer, throughPipeline } from './titles.js';
import { withVhost } from './vhost.js';

const SUITE = 'peers';
const JOBS = Number(process.env.BENCH_PEERS_JOBS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARMUP_JOBS = 2_000;
/** One-at-a-time calls of each, in blocks of 100 taking turns. */
const CALLS = Number(process.env.BENCH_PEERS_CALLS ?? 1000);
/** BullMQ worker concurrencies tried; the fastest runs the rounds. */
const BULL_CONCURRENCIES = (process.env.BENCH_BULLMQ_CONCURRENCY ?? '10,50,100,200,500,1000').split(',').map(Number);
const PAGES = 2000;
const IN_FLIGHT = 100;
const PYTHON = '/usr/bin/python3';
const CELERY_SCRIPT = fileURLToPath(new URL('../peers/celery_peer.py', import.meta.url));
const BULL_WORKER = fileURLToPath(new URL('./bullmq-worker.js', import.meta.url));

/** The jobs every peer runs: [i*100, i*100 + 99] for i < n. */
const range = (i: number) => ({ from: i * 100, to: i * 100 + 99 });

/** Primes in the first n jobs' ranges, counted here: what every peer's answers must add up to. */
function expectedPrimes(n: number): number {
  let found = 0;
  for (let i = 0; i < n; i++) found += smallPrimesBetween(range(i).from, range(i).to).length;
  return found;
}

const pct = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const ms = (xs: readonly number[]) => `p50 ${pct(xs, 50).toFixed(2)}, p95 ${pct(xs, 95).toFixed(2)}, p99 ${pct(xs, 99).toFixed(2)} ms`;

// --- Redis -------------------------------------------------------------------------------------

async function pings(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

async function sparePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A Redis to run BullMQ on: REDIS_URL, the machine's, or one started here; else why not. */
async function findRedis(): Promise<{ url: string; how: string; stop: () => Promise<void> } | { skipped: string }> {
  const given = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (await pings(given)) return { url: given, how: process.env.REDIS_URL ? 'REDIS_URL' : 'the machine\'s Redis', stop: async () => {} };
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    return { skipped: `no Redis answers at ${given} and redis-server is not installed (apt-get install redis-server, or REDIS_URL=redis://HOST:PORT)` };
  }
  const port = await sparePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50 && !(await pings(url)); i++) await new Promise((r) => setTimeout(r, 100));
  const stop = async () => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill();
    if (child.exitCode === null) await exited;
  };
  if (!(await pings(url))) {
    await stop();
    return { skipped: `no Redis answers at ${given}, and a redis-server started on port ${port} did not answer either` };
  }
  return { url, how: `a redis-server started on port ${port}`, stop };
}

function redisVersion(url: string): Promise<string> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  return r
    .info('server')
    .then((info) => /redis_version:(\S+)/.exec(info)?.[1] ?? '?')
    .finally(() => r.disconnect());
}

// --- BullMQ ------------------------------------------------------------------------------------

/** A BullMQ queue on `redisUrl` with its worker process; batches and single jobs. */
class BullPeer {
  private constructor(
    private readonly queue: Queue,
    private readonly events: QueueEvents,
    private readonly worker: ChildProcess,
    private readonly connections: Redis[],
  ) {}

  static async start(redisUrl: string, kind: 'primes' | 'titles', concurrency: number): Promise<BullPeer> {
    const name = `amqp-pipeline-bench-${kind}-${randomUUID().slice(0, 8)}`;
    const queueConn = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const eventsConn = new Redis(redisUrl, { maxRetriesPerRequest: null });
    // Results are read off the event stream, so it must hold a whole batch's events (its default
    // cap is 10,000); completed jobs are removed, as a deployment that reads results this way would.
    const queue = new Queue(name, {
      connection: queueConn,
      streams: { events: { maxLen: 4 * JOBS } },
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
    });
    const events = new QueueEvents(name, { connection: eventsConn });
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    const worker = fork(BULL_WORKER, [], {
      env: { ...process.env, REDIS_URL: redisUrl, QUEUE: name, KIND: kind, CONCURRENCY: String(concurrency) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('exit', (code) => reject(new Error(`the BullMQ worker exited (code ${code}) before it was ready`)));
    });
    return new BullPeer(queue, events, worker, [queueConn, eventsConn]);
  }

  get pid(): number {
    return this.worker.pid ?? 0;
  }

  /**
   * Adds `data` (addBulk, 1,000 jobs a call, so the worker starts on the first thousand) and
   * waits for every job's `completed` event; `value` sees each return value. Jobs a second.
   */
  async batch<T>(data: readonly T[], value: (returned: unknown) => void): Promise<number> {
    let done = 0;
    let failure: string | undefined;
    const finished = new Promise<void>((resolve, reject) => {
      const completed = ({ returnvalue }: { returnvalue: unknown }) => {
        value(typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue);
        if (++done === data.length) settle();
      };
      const failed = ({ failedReason }: { failedReason: string }) => {
        failure = failedReason;
        settle();
      };
      const settle = () => {
        this.events.off('completed', completed);
        this.events.off('failed', failed);
        if (failure) reject(new Error(`a BullMQ job failed: ${failure}`));
        else resolve();
      };
      this.events.on('completed', completed);
      this.events.on('failed', failed);
    });
    const started = performance.now();
    for (let i = 0; i < data.length; i += 1000) {
      await this.queue.addBulk(data.slice(i, i + 1000).map((d) => ({ name: 'job', data: d })));
    }
    await finished;
    return data.length / ((performance.now() - started) / 1000);
  }

  /** One job, its result awaited (`waitUntilFinished`); milliseconds. */
  async one<T>(data: T): Promise<number> {
    const started = performance.now();
    // Kept a while after completing: waitUntilFinished looks the job up once it has subscribed.
    const job = await this.queue.add('job', data, { removeOnComplete: 1000 });
    await job.waitUntilFinished(this.events, 10_000);
    return performance.now() - started;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.worker.once('exit', resolve));
    if (this.worker.connected) this.worker.disconnect();
    if (this.worker.exitCode === null) await exited;
    await this.queue.obliterate({ force: true }).catch(() => {});
    await this.events.close();
    await this.queue.close();
    for (const c of this.connections) c.disconnect();
  }
}

/** Each concurrency on a fresh worker: a warm-up batch, then one timed batch; the fastest. */
async function tuneBull(redisUrl: string, expected: number): Promise<{ best: number; tried: string }> {
  const tried: { c: number; rate: number }[] = [];
  for (const c of BULL_CONCURRENCIES) {
    const peer = await BullPeer.start(redisUrl, 'primes', c);
    try {
      await peer.batch(Array.from({ length: WARMUP_JOBS }, (_, i) => range(i)), () => {});
      let found = 0;
      const rate = await peer.batch(Array.from({ length: JOBS }, (_, i) => range(i)), (v) => (found += (v as number[]).length));
      if (found !== expected) throw new Error(`BullMQ (concurrency ${c}) found ${found} primes, not ${expected}`);
      tried.push({ c, rate });
    } finally {
      await peer.stop();
    }
  }
  const best = tried.reduce((a, b) => (b.rate > a.rate ? b : a));
  return { best: best.c, tried: tried.map((t) => `${t.c}: ${Math.round(t.rate)}`).join(', ') };
}

// --- Celery ------------------------------------------------------------------------------------

function celeryVersion(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import celery, kombu; print(celery.__version__, kombu.__version__)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Celery's prefork worker (2 processes) and a producer process driven over stdin. */
class CeleryPeer {
  private stderr = '';
  private readonly lines: AsyncIterator<string>;

  private constructor(
    private readonly worker: ChildProcess,
    private readonly driver: ChildProcessWithoutNullStreams,
  ) {
    driver.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-4000)));
    this.lines = createInterface({ input: driver.stdout })[Symbol.asyncIterator]();
  }

  static async start(brokerUrl: string): Promise<CeleryPeer> {
    const env = { ...process.env, CELERY_BROKER_URL: brokerUrl, CELERY_CONCURRENCY: '2', PYTHONDONTWRITEBYTECODE: '1', PYTHONWARNINGS: 'ignore' };
    const worker = spawn(PYTHON, [CELERY_SCRIPT, 'worker'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    const driver = spawn(PYTHON, [CELERY_SCRIPT, 'driver'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const peer = new CeleryPeer(worker, driver);
    await peer.answer<{ ready: boolean }>('start');
    return peer;
  }

  get pid(): number {
    return this.worker.pid ?? 0;
  }

  private async answer<T>(what: string): Promise<T> {
    const { value, done } = await this.lines.next();
    if (done) throw new Error(`the Celery producer ended before ${what}: ${this.stderr.trim()}`);
    return JSON.parse(value) as T;
  }

  async batch(n: number): Promise<{ rate: number; primes: number }> {
    this.driver.stdin.write(`batch ${n} 0\n`);
    return this.answer('a batch');
  }

  async one(n: number): Promise<number[]> {
    this.driver.stdin.write(`one ${n} 0\n`);
    return (await this.answer<{ ms: number[] }>('single jobs')).ms;
  }

  async stop(): Promise<void> {
    const ended = (c: ChildProcess) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((resolve) => c.once('exit', resolve)));
    this.driver.stdin.end();
    await ended(this.driver);
    this.worker.kill('SIGTERM'); // Celery's warm shutdown
    const timer = setTimeout(() => this.worker.kill('SIGKILL'), 10_000);
    await ended(this.worker);
    clearTimeout(timer);
  }
}

// --- Ours --------------------------------------------------------------------------------------

class OursPeer {
  private constructor(
    private readonly proc: ServiceProcess,
    private readonly client: PipelineClient,
    private readonly session: PipelineSession,
  ) {}

  static async start(config: Config): Promise<OursPeer> {
    const proc = new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL, LOG_LEVEL: 'info', WORK_QUEUE_TYPE: config.WORK_QUEUE_TYPE } });
    await proc.ready;
    const client = await PipelineClient.connect(config, createLogger('bench', { level: 'error' }, 2));
    const session = await client.session({ timeoutMs: 10_000 });
    return new OursPeer(proc, client, session);
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  async batch(n: number): Promise<{ rate: number; primes: number }> {
    let primes = 0;
    const started = performance.now();
    const outcome = await this.client.submit(
      Array.from({ length: n }, (_, i) => rangeJob('primes', range(i))),
      {
        wait: true,
        output: 'independent',
        timeoutMs: 600_000,
        onResult: (r) => {
          if (r.type === 'result') primes += ((r.result as { primes?: unknown[] }).primes ?? []).length;
        },
      },
    );
    const rate = n / ((performance.now() - started) / 1000);
    if (!outcome.complete || outcome.failed > 0) throw new Error(`our batch incomplete: ${JSON.stringify(outcome.stats)}, failed ${outcome.failed}`);
    return { rate, primes };
  }

  async one(i: number): Promise<number> {
    const started = performance.now();
    const result = await this.session.call(rangeJob('primes', range(i)));
    if (!result.ok) throw new Error(`a session call failed: ${JSON.stringify(result)}`);
    return performance.now() - started;
  }

  async stop(): Promise<void> {
    await this.session.close();
    await this.client.close();
    await this.proc.stop();
  }
}

// --- The suite ---------------------------------------------------------------------------------

interface SmallJobs {
  ours: number[];
  bull?: number[] | undefined;
  celery?: number[] | undefined;
  oneOurs: number[];
  oneBull?: number[] | undefined;
  oneCelery?: number[] | undefined;
  /** Ours again, its work queues classic (WORK_QUEUE_TYPE=classic, in a vhost of its own). */
  oneClassic?: number[] | undefined;
  /** The broker alone in our shape (quorum request, durable confirmed reply, a bare echo). */
  oneFloor: number[];
}

async function smallJobs(
  config: Config,
  redisUrl: string | undefined,
  celeryUrl: string | undefined,
  bullConcurrency: number,
  expected: number,
  classicConfig: Config | undefined,
): Promise<SmallJobs> {
  const ours = await OursPeer.start(config);
  const classic = classicConfig ? await OursPeer.start(classicConfig) : undefined;
  const bull = redisUrl ? await BullPeer.start(redisUrl, 'primes', bullConcurrency) : undefined;
  const celery = celeryUrl ? await CeleryPeer.start(celeryUrl) : undefined;
  const floor = await BareRoundTrip.start(config.AMQP_URL);
  try {
    const jobs = Array.from({ length: JOBS }, (_, i) => range(i));
    const check = (who: string, found: number) => {
      if (found !== expected) throw new Error(`${who} answered ${found} primes over the ${JOBS} jobs, not ${expected}`);
    };
    await ours.batch(WARMUP_JOBS);
    await bull?.batch(jobs.slice(0, WARMUP_JOBS), () => {});
    await celery?.batch(WARMUP_JOBS);
    const out: SmallJobs = { ours: [], bull: bull && [], celery: celery && [], oneOurs: [], oneBull: bull && [], oneCelery: celery && [], oneClassic: classic && [], oneFloor: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const o = await ours.batch(JOBS);
      check('ours', o.primes);
      out.ours.push(o.rate);
      if (bull) {
        let found = 0;
        out.bull!.push(await bull.batch(jobs, (v) => (found += (v as number[]).length)));
        check('BullMQ', found);
      }
      if (celery) {
        const c = await celery.batch(JOBS);
        check('Celery', c.primes);
        out.celery!.push(c.rate);
      }
      process.stderr.write(
        `bench: peers round ${round + 1}/${ROUNDS}: ours ${Math.round(o.rate)}` +
          `${bull ? `, BullMQ ${Math.round(out.bull!.at(-1)!)}` : ''}${celery ? `, Celery ${Math.round(out.celery!.at(-1)!)}` : ''} jobs/s\n`,
      );
    }
    // One job at a time: 20 of each to warm up, then blocks of 100 taking turns.
    const timed = async (call: () => Promise<void>) => {
      const started = performance.now();
      await call();
      return performance.now() - started;
    };
    for (let i = 0; i < 20; i++) await ours.one(i), await bull?.one(range(i)), await classic?.one(i), await floor.call();
    await celery?.one(20);
    for (let done = 0; done < CALLS; done += 100) {
      const n = Math.min(100, CALLS - done);
      for (let i = 0; i < n; i++) out.oneOurs.push(await ours.one(done + i));
      if (classic) for (let i = 0; i < n; i++) out.oneClassic!.push(await classic.one(done + i));
      if (bull) for (let i = 0; i < n; i++) out.oneBull!.push(await bull.one(range(done + i)));
      for (let i = 0; i < n; i++) out.oneFloor.push(await timed(() => floor.call()));
      if (celery) out.oneCelery!.push(...(await celery.one(n)));
    }
    for (const xs of [out.oneOurs, out.oneBull, out.oneCelery, out.oneClassic, out.oneFloor]) xs?.sort((a, b) => a - b);
    return out;
  } finally {
    await ours.stop();
    await classic?.stop();
    await bull?.stop();
    await celery?.stop();
    await floor.stop();
  }
}

/** Titles: our pipeline's batches taking turns with BullMQ's (undici worker) and aiohttp's passes. */
async function titles(redisUrl: string | undefined): Promise<{ ours: number[]; bull?: number[]; aiohttp?: number[]; found: { bull: number; aiohttp: number } }> {
  const server = await startPageServer();
  try {
    const urls = Array.from({ length: PAGES }, (_, i) => `${server.base}/page/${i}`);
    const python = aiohttpAvailable() ? await AiohttpRounds.start(urls) : undefined;
    const bull = redisUrl ? await BullPeer.start(redisUrl, 'titles', IN_FLIGHT) : undefined;
    const bullRates: number[] = [];
    let bullFound = Number.POSITIVE_INFINITY;
    const bullRound = async (timed: boolean) => {
      let found = 0;
      const rate = await bull!.batch(
        urls.map((url) => ({ url })),
        (v) => (found += (v as { title: string }).title ? 1 : 0),
      );
      if (timed) bullRates.push(rate), (bullFound = Math.min(bullFound, found));
    };
    try {
      if (bull) await bullRound(false), await bullRound(false);
      const pipeline = await throughPipeline(urls, {
        warmup: 200,
        rounds: ROUNDS,
        beforeRound: async () => {
          await python?.round();
          if (bull) await bullRound(true);
        },
      });
      return {
        ours: pipeline.rates,
        ...(bull ? { bull: bullRates } : {}),
        ...(python ? { aiohttp: python.rates } : {}),
        found: { bull: bullFound, aiohttp: python?.found ?? 0 },
      };
    } finally {
      await python?.close();
      await bull?.stop();
    }
  } finally {
    await server.stop();
  }
}

/** BENCH_PEERS_PARTS=small,titles picks parts (both by default). */
const PARTS = new Set((process.env.BENCH_PEERS_PARTS ?? 'small,titles').split(','));

export async function run(): Promise<Row[]> {
  const config = loadConfig(process.env);
  const rows: Row[] = [];
  const redis = await findRedis();
  const redisUrl = 'url' in redis ? redis.url : undefined;
  const bullmqVersion = packageVersion('bullmq');
  const celery = celeryVersion();
  try {
    const versions =
      `BullMQ ${bullmqVersion ?? '?'} on Redis ${redisUrl ? await redisVersion(redisUrl) : '-'} (${'how' in redis ? redis.how : 'none'}); ` +
      `Celery/kombu ${celery ?? '-'}`;
    process.stderr.write(`bench: peers: ${versions}\n`);
    if (!redisUrl) rows.push({ suite: SUITE, case: 'BullMQ rows', ours: NaN, unit: '-', higherIsBetter: true, note: `skipped: ${(redis as { skipped: string }).skipped}` });
    if (!celery) rows.push({ suite: SUITE, case: 'Celery rows', ours: NaN, unit: '-', higherIsBetter: true, note: `skipped: ${PYTHON} has no celery (apt-get install python3-celery)` });

    if (PARTS.has('small')) {
      const expected = expectedPrimes(JOBS);
      const tuned = redisUrl ? await tuneBull(redisUrl, expected) : undefined;
      if (tuned) process.stderr.write(`bench: peers: BullMQ concurrency tried (jobs/s) ${tuned.tried}; rounds run at ${tuned.best}\n`);
      // One job at a time is also measured with classic work queues (they deliver before the disk
      // write a quorum queue waits for), in a vhost of their own: for information.
      const run = async (celeryUrl: string | undefined) => {
        const inVhost = await withVhost(config.AMQP_URL, 'amqp-pipeline-bench-peers-classic', (v) =>
          smallJobs(config, redisUrl, celeryUrl, tuned?.best ?? 50, expected, loadConfig({ ...process.env, AMQP_URL: v.url, WORK_QUEUE_TYPE: 'classic' })),
        );
        return inVhost.value ?? smallJobs(config, redisUrl, celeryUrl, tuned?.best ?? 50, expected, undefined);
      };
      // Celery declares its own exchanges and queues: in a vhost of its own when one can be made.
      let small: SmallJobs;
      let celeryWhere = '';
      if (celery) {
        const inVhost = await withVhost(config.AMQP_URL, 'amqp-pipeline-bench-celery', (v) => run(v.url));
        if (inVhost.value) (small = inVhost.value), (celeryWhere = 'vhost amqp-pipeline-bench-celery');
        else (small = await run(celeryBrokerUrl(config.AMQP_URL))), (celeryWhere = `the default vhost (${inVhost.skipped})`);
      } else small = await run(undefined);

      const what = `${JOBS} small jobs (100-wide prime ranges), results returned and awaited`;
      const perRound = (peer: number[]) => small.ours.map((r, i) => r / peer[i]!);
      const rounds = (xs: number[]) => `median of per-round ratios ${median(xs).toFixed(2)}x (rounds: ${xs.map((x) => x.toFixed(2)).join(' ')})`;
      rows.push({
        suite: SUITE,
        case: `${what}: ours, 1 prime-filter`,
        ours: median(small.ours),
        unit: 'jobs/s',
        higherIsBetter: true,
        note: `median of ${ROUNDS} batches (submit, durable replies, confirmed publishes, ack after the result is confirmed), taking turns with the peers' batches`,
      });
      if (small.bull && tuned) {
        const r = perRound(small.bull);
        rows.push({
          suite: SUITE,
          case: `${what}: ours against BullMQ, 1 worker process`,
          ours: median(small.ours),
          baseline: median(small.bull),
          baselineName: `BullMQ, concurrency ${tuned.best}, addBulk`,
          unit: 'jobs/s',
          higherIsBetter: true,
          target: '>= 1.0x',
          met: median(r) >= 1.0,
          note: `${rounds(r)}; BullMQ concurrency tried (jobs/s, one batch each) ${tuned.tried}; results read from the queue's event stream, completed jobs removed`,
        });
      }
      if (small.celery) {
        const r = perRound(small.celery);
        rows.push({
          suite: SUITE,
          case: `${what}: ours against Celery, prefork worker of 2`,
          ours: median(small.ours),
          baseline: median(small.celery),
          baselineName: 'Celery, rpc:// backend, group',
          unit: 'jobs/s',
          higherIsBetter: true,
          target: '>= 10x',
          met: median(r) >= 10,
          note: `${rounds(r)}; on our RabbitMQ, ${celeryWhere}; the task is the same sieve in Python`,
        });
      }
      const p50 = pct(small.oneOurs, 50);
      rows.push({
        suite: SUITE,
        case: 'one job at a time: ours on a session (PipelineSession.call), p50',
        ours: p50,
        unit: 'ms',
        higherIsBetter: false,
        note: `${small.oneOurs.length} calls in blocks of 100 taking turns with the peers'; ${ms(small.oneOurs)}`,
      });
      if (small.oneBull) {
        rows.push({
          suite: SUITE,
          case: 'one job at a time: ours against BullMQ (add + waitUntilFinished), p50',
          ours: p50,
          baseline: pct(small.oneBull, 50),
          baselineName: 'BullMQ p50',
          unit: 'ms',
          higherIsBetter: false,
          target: '<= 1.0x',
          met: p50 <= pct(small.oneBull, 50),
          note: `BullMQ ${ms(small.oneBull)}`,
        });
      }
      if (small.oneClassic) {
        const c50 = pct(small.oneClassic, 50);
        rows.push({
          suite: SUITE,
          case: 'one job at a time: ours with WORK_QUEUE_TYPE=classic (one node), against BullMQ, p50',
          ours: c50,
          ...(small.oneBull ? { baseline: pct(small.oneBull, 50), baselineName: 'BullMQ p50' } : {}),
          unit: 'ms',
          higherIsBetter: false,
          note: `information: classic work queues deliver a job before it is on disk, a quorum queue after (it is confirmed to the producer after, in both); ${ms(small.oneClassic)}`,
        });
      }
      rows.push({
        suite: SUITE,
        case: 'one job at a time: the broker alone in our shape (bare requester and echo), against BullMQ, p50',
        ours: pct(small.oneFloor, 50),
        ...(small.oneBull ? { baseline: pct(small.oneBull, 50), baselineName: 'BullMQ p50' } : {}),
        unit: 'ms',
        higherIsBetter: false,
        note: `information: the least any pipeline on this broker can take with our guarantees (a persistent request confirmed into a quorum queue, a persistent confirmed reply into a durable queue); ours p50 is ${(p50 / pct(small.oneFloor, 50)).toFixed(2)}x this; ${ms(small.oneFloor)}`,
      });
      if (small.oneCelery) {
        rows.push({
          suite: SUITE,
          case: 'one job at a time: ours against Celery (apply_async().get()), p50',
          ours: p50,
          baseline: pct(small.oneCelery, 50),
          baselineName: 'Celery p50',
          unit: 'ms',
          higherIsBetter: false,
          note: `Celery ${ms(small.oneCelery)}`,
        });
      }
    }

    if (PARTS.has('titles')) {
      const t = await titles(redisUrl);
      const what = `${PAGES} local 10 KB pages, ${IN_FLIGHT} in flight`;
      rows.push({ suite: SUITE, case: `titles, ${what}: ours through the pipeline`, ours: median(t.ours), unit: 'pages/s', higherIsBetter: true, note: `median of ${ROUNDS} batches, taking turns with the peers'` });
      const against = (name: string, peer: number[] | undefined, note: string) => {
        if (!peer) return;
        const r = t.ours.map((x, i) => x / peer[i]!);
        rows.push({
          suite: SUITE,
          case: `titles: ours against ${name}`,
          ours: median(t.ours),
          baseline: median(peer),
          baselineName: name,
          unit: 'pages/s',
          higherIsBetter: true,
          target: '> 1.0x',
          met: median(r) > 1.0,
          note: `median of per-round ratios ${median(r).toFixed(2)}x (rounds: ${r.map((x) => x.toFixed(2)).join(' ')}); ${note}`,
        });
      };
      against('BullMQ, undici worker', t.bull, `concurrency ${IN_FLIGHT}, request + whole body + regex${t.found.bull === PAGES ? '' : `; only ${t.found.bull}/${PAGES} titles found`}`);
      against('aiohttp', t.aiohttp, `a bare client (no queue), semaphore ${IN_FLIGHT}${t.found.aiohttp === PAGES ? '' : `; only ${t.found.aiohttp}/${PAGES} titles found`}`);
      if (!t.aiohttp) rows.push({ suite: SUITE, case: 'titles: aiohttp row', ours: NaN, unit: '-', higherIsBetter: true, note: `skipped: ${PYTHON} has no aiohttp (apt-get install python3-aiohttp)` });
    }
    rows.push({ suite: SUITE, case: 'versions', ours: NaN, unit: '-', higherIsBetter: true, note: versions });
    return rows;
  } finally {
    if ('stop' in redis) await redis.stop();
  }
}

/** The version of an installed package, read from its package.json (found above its entry point). */
function packageVersion(name: string): string | undefined {
  try {
    let dir = dirname(createRequire(import.meta.url).resolve(name));
    for (let i = 0; i < 6; i++, dir = dirname(dir)) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name) return pkg.version;
      } catch {
        // no package.json here: one folder up
      }
    }
  } catch {
    // not installed
  }
  return undefined;
}

/** AMQP_URL as kombu spells the default vhost ("//"). */
function celeryBrokerUrl(amqpUrl: string): string {
  const u = new URL(amqpUrl.split(',')[0]!);
  return `amqp://${u.username || 'guest'}:${u.password || 'guest'}@${u.hostname}:${u.port || 5672}/${u.pathname.length > 1 ? u.pathname.slice(1) : '/'}`;
}
