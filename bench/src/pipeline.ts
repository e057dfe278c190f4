/**
 * Throughput, latency and memory of the pipeline itself, each beside the broker's own
 * ceiling measured in the same run: a bare amqplib request/reply loop doing the same
 * broker work (confirmed persistent request to a quorum queue, an echo consumer that
 * publishes a confirmed reply and then acks, the requester counting replies).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient } from '@amqp-pipeline/producer';
import { createLogger, loadConfig, type Config } from '@amqp-pipeline/shared';
import amqp, { type ConsumeMessage } from 'amqplib';
import { smallJobs } from './jobs.js';
import { brokerPid, cpuSeconds, median, rssMb } from './proc.js';
import type { Row } from './table.js';
import { tracingCost } from './tracing-cost.js';
import { withVhost } from './vhost.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 100_000);
/** Timed rounds per figure (the median is reported), after one warm-up run of WARMUP_JOBS. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARMUP_JOBS = 2_000;
const WINDOW = 1000;
/** Calls on a session and bare round trips, each, for the latency rows; then one-job batches. */
const LATENCY_SAMPLES = 1000;
const BATCH_SAMPLES = 300;
const SERVICE_PREFETCH = process.env.BENCH_PREFETCH;


/** Samples the peak RSS of some processes while `work` runs. */
async function peakRss<T>(pids: () => number[], work: () => Promise<T>): Promise<{ value: T; peak: Map<number, number> }> {
  const peak = new Map<number, number>();
  const sample = () => {
    for (const pid of pids()) peak.set(pid, Math.max(peak.get(pid) ?? 0, rssMb(pid)));
  };
  const timer = setInterval(sample, 100);
  try {
    const value = await work();
    sample();
    return { value, peak };
  } finally {
    clearInterval(timer);
  }
}

/**
 * The ceiling: bare amqplib request/reply with `window` requests outstanding. The replies go
 * to an exclusive (transient) queue, or with `durableReplies` to a durable classic queue, as
 * the pipeline's do (results must outlive the producer): the broker then writes every
 * persistent reply to disk before confirming it.
 */
async function bareRequestReply(url: string, jobs: number, window: number, prefetch: number, durableReplies = false): Promise<number> {
  const tag = randomUUID().slice(0, 8);
  const requests = `bench.requests.${tag}`;
  const requester = await amqp.connect(url, { noDelay: true });
  const echo = await amqp.connect(url, { noDelay: true });
  try {
    const rq = await requester.createConfirmChannel();
    await rq.assertQueue(requests, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    const { queue: replies } = durableReplies
      ? await rq.assertQueue(`bench.replies.${tag}`, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-expires': 600_000 } })
      : await rq.assertQueue('', { exclusive: true });
    const ec = await echo.createConfirmChannel();
    await ec.prefetch(prefetch);
    await ec.consume(requests, (m: ConsumeMessage | null) => {
      if (!m) return;
      ec.publish('', m.properties.replyTo as string, m.content, { correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json' }, (err) => {
        if (!err) ec.ack(m);
      });
    });
    const body = Buffer.from('{"from":1,"to":100}');
    let sent = 0;
    let received = 0;
    const send = () => {
      const id = String(sent++);
      rq.publish('', requests, body, { correlationId: id, replyTo: replies, persistent: true, contentType: 'application/json' }, () => {});
    };
    const started = performance.now();
    const done = new Promise<void>((resolve) => {
      void rq.consume(replies, (m) => {
        if (!m) return;
        rq.ack(m);
        received++;
        if (sent < jobs) send();
        if (received === jobs) resolve();
      });
    });
    for (let i = 0; i < Math.min(window, jobs); i++) send();
    await done;
    const secs = (performance.now() - started) / 1000;
    await rq.deleteQueue(requests);
    if (durableReplies) await rq.deleteQueue(replies);
    return jobs / secs;
  } finally {
    await requester.close().catch(() => {});
    await echo.close().catch(() => {});
  }
}

/**
 * Our pipeline: `filters` prime-filter processes, the producer library in this process. A
 * warm-up batch first (the services are long-running; their first jobs run before the JIT has
 * compiled anything), then ROUNDS timed batches of `jobs`; the median rate is reported.
 */
async function ourThroughput(
  config: Config,
  filters: number,
  jobs: number,
  beforeRound?: () => Promise<void>,
): Promise<{ rate: number; rates: number[]; producerMb: number; consumerMb: number; cpuNote: string }> {
  const env: Record<string, string> = { AMQP_URL: config.AMQP_URL, LOG_LEVEL: 'info', WORK_QUEUE_TYPE: config.WORK_QUEUE_TYPE };
  if (SERVICE_PREFETCH) env.PREFETCH = SERVICE_PREFETCH;
  const procs = Array.from({ length: filters }, () => new ServiceProcess('prime-filter', { env }));
  try {
    await Promise.all(procs.map((p) => p.ready));
    const client = await PipelineClient.connect(config, createLogger('bench', { level: 'error' }, 2));
    const batch = async (n: number, offset: number): Promise<number> => {
      const started = performance.now();
      const outcome = await client.submit(smallJobs(n, offset), { wait: true, output: 'independent', timeoutMs: 600_000 });
      const secs = (performance.now() - started) / 1000;
      if (!outcome.complete || outcome.failed > 0) throw new Error(`bench batch incomplete: ${JSON.stringify(outcome.stats)}, failed ${outcome.failed}`);
      return n / secs;
    };
    try {
      await batch(WARMUP_JOBS, 0);
      // CPU per job of each party over the timed batches (not the rounds run between them).
      const beam = brokerPid();
      const spent = { producer: 0, consumers: 0, broker: 0 };
      const consumersCpu = () => procs.reduce((sum, p) => sum + cpuSeconds(p.pid ?? 0), 0);
      const { value: rates, peak } = await peakRss(
        () => [process.pid, ...procs.map((p) => p.pid ?? 0)],
        async () => {
          const rates: number[] = [];
          for (let i = 0; i < ROUNDS; i++) {
            await beforeRound?.();
            const producer0 = process.cpuUsage();
            const consumers0 = consumersCpu();
            const broker0 = cpuSeconds(beam);
            rates.push(await batch(jobs, WARMUP_JOBS + i * jobs));
            const producer = process.cpuUsage(producer0);
            spent.producer += (producer.user + producer.system) / 1e6;
            spent.consumers += consumersCpu() - consumers0;
            spent.broker += cpuSeconds(beam) - broker0;
          }
          return rates;
        },
      );
      const perJob = (secs: number) => `${Math.round((secs * 1e6) / (ROUNDS * jobs))} µs`;
      const cpuNote =
        `CPU per job: producer ${perJob(spent.producer)}, ` +
        `prime-filter${filters > 1 ? 's' : ''} ${perJob(spent.consumers)}` +
        (beam ? `, broker ${perJob(spent.broker)}` : ' (broker not found on this machine: BEAM_PID=<beam.smp pid> adds it)');
      const consumerMb = Math.max(...procs.map((p) => peak.get(p.pid ?? 0) ?? 0));
      return { rate: median(rates), rates, producerMb: peak.get(process.pid) ?? 0, consumerMb, cpuNote };
    } finally {
      await client.close();
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

/** The bare loop measured like ours: a warm-up run, then the median of ROUNDS runs. */
export async function ceilingOf(url: string, window: number, prefetch: number, durableReplies: boolean): Promise<number> {
  return (await measuredCeiling(url, window, prefetch, durableReplies)).rate;
}

/**
 * ceilingOf, with the CPU per job of the loop's process and (when it runs here) of the broker:
 * as a note, and as a sum of both in µs (undefined when the broker's is not known).
 */
export async function measuredCeiling(
  url: string,
  window: number,
  prefetch: number,
  durableReplies: boolean,
): Promise<{ rate: number; cpuNote: string; cpuPerJobUs: number | undefined }> {
  const loop = new CeilingLoop(url, window, prefetch, durableReplies);
  await loop.warmUp();
  for (let i = 0; i < ROUNDS; i++) await loop.round();
  return { rate: loop.rate, cpuNote: loop.cpuNote(), cpuPerJobUs: loop.cpuPerJobUs() };
}

/**
 * The bare loop measured round by round (so its rounds can take turns with ours), adding up
 * the CPU its rounds cost: this process's (requester and echo) and, when it runs here, the broker's.
 */
class CeilingLoop {
  readonly rates: number[] = [];
  private here = 0;
  private broker = 0;

  constructor(
    private readonly url: string,
    private readonly window: number,
    private readonly prefetch: number,
    private readonly durableReplies: boolean,
  ) {}

  async warmUp(): Promise<void> {
    await bareRequestReply(this.url, WARMUP_JOBS, this.window, this.prefetch, this.durableReplies);
  }

  async round(): Promise<void> {
    const beam = brokerPid();
    const here0 = process.cpuUsage();
    const broker0 = cpuSeconds(beam);
    this.rates.push(await bareRequestReply(this.url, JOBS, this.window, this.prefetch, this.durableReplies));
    const here = process.cpuUsage(here0);
    this.here += (here.user + here.system) / 1e6;
    this.broker += cpuSeconds(beam) - broker0;
  }

  get rate(): number {
    return median(this.rates);
  }

  /** CPU per job of all parties (requester, echo, broker), µs; undefined without the broker's. */
  cpuPerJobUs(): number | undefined {
    return brokerPid() ? ((this.here + this.broker) * 1e6) / (this.rates.length * JOBS) : undefined;
  }

  cpuNote(): string {
    const perJob = (secs: number) => `${Math.round((secs * 1e6) / (this.rates.length * JOBS))} µs`;
    return `CPU per job: requester + echo ${perJob(this.here)}` + (brokerPid() ? `, broker ${perJob(this.broker)}` : '');
  }
}

interface Latencies {
  /** The broker's own round trip: a bare requester here, a bare echo in a process of its own. */
  bare: number[];
  /** Each job a call on one long-lived session (`PipelineSession.call`). */
  session: number[];
  /** Each job a batch of its own (`submit`): reply queue declared, consumed, deleted around it. */
  batch: number[];
}

/**
 * One job at a time, end to end, sorted milliseconds. First calls on a session to a warm
 * prime-filter process and the broker's own round trip (a bare requester here, a bare echo in
 * a process of its own, like a service: a persistent request confirmed into a quorum queue, a
 * persistent confirmed reply into a durable queue), LATENCY_SAMPLES of each after 50 of each
 * to warm up, in blocks of 100 taking turns so a slow spell of the machine hits both alike.
 * Then BATCH_SAMPLES one-job batches on their own: a batch deletes its queues after `submit`
 * returns, and that clean-up in the broker landed on the calls measured next (session p99
 * 8.0-9.3 ms with batches in the rotation, 6.7-7.6 without, bench/probes/latency-tail.mjs).
 */
async function latency(config: Config): Promise<Latencies> {
  const proc = new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL, WORK_QUEUE_TYPE: config.WORK_QUEUE_TYPE } });
  const bare = await BareRoundTrip.start(config.AMQP_URL);
  try {
    await proc.ready;
    const client = await PipelineClient.connect(config, createLogger('bench', { level: 'error' }, 2));
    try {
      const session = await client.session({ timeoutMs: 10_000 });
      const times: Latencies = { bare: [], session: [], batch: [] };
      let job = 0;
      const timed = async (into: number[] | undefined, n: number, call: () => Promise<unknown>) => {
        for (let i = 0; i < n; i++) {
          const started = performance.now();
          await call();
          into?.push(performance.now() - started);
        }
      };
      const sessionCall = async () => {
        const result = await session.call(smallJobs(1, job++)[0]!);
        if (!result.ok) throw new Error(`latency call failed: ${JSON.stringify(result)}`);
      };
      await timed(undefined, 50, sessionCall);
      await timed(undefined, 50, () => bare.call());
      for (let done = 0; done < LATENCY_SAMPLES; done += 100) {
        const n = Math.min(100, LATENCY_SAMPLES - done);
        await timed(times.session, n, sessionCall);
        await timed(times.bare, n, () => bare.call());
      }
      await session.close();
      await timed(undefined, 20, () => client.submit(smallJobs(1, job++), { wait: true, output: 'independent', timeoutMs: 10_000 }));
      await timed(times.batch, BATCH_SAMPLES, async () => {
        const outcome = await client.submit(smallJobs(1, job++), { wait: true, output: 'independent', timeoutMs: 10_000 });
        if (!outcome.complete) throw new Error('latency job did not complete');
      });
      for (const xs of [times.bare, times.session, times.batch]) xs.sort((a, b) => a - b);
      return times;
    } finally {
      await client.close();
    }
  } finally {
    await proc.stop();
    await bare.stop();
  }
}

/**
 * The broker's own round trip, one request at a time, in the pipeline's shape: a persistent
 * request confirmed into a quorum queue, answered by a bare echo in another process
 * (dist/echo.js) with a persistent, confirmed reply into a durable queue, read here.
 */
export class BareRoundTrip {
  private waiting: ((id: string) => void) | undefined;
  private next = 0;
  private readonly body = Buffer.from('{"from":1,"to":100}');

  private constructor(
    private readonly conn: amqp.ChannelModel,
    private readonly ch: amqp.ConfirmChannel,
    private readonly echo: ChildProcess,
    private readonly requests: string,
    private readonly replies: string,
  ) {}

  static async start(url: string): Promise<BareRoundTrip> {
    const tag = randomUUID().slice(0, 8);
    const requests = `bench.latency.requests.${tag}`;
    const replies = `bench.latency.replies.${tag}`;
    const conn = await amqp.connect(url, { noDelay: true });
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(requests, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.assertQueue(replies, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-expires': 600_000 } });
    const echo = fork(fileURLToPath(new URL('./echo.js', import.meta.url)), [requests], { env: { ...process.env, AMQP_URL: url } });
    await new Promise<void>((resolve, reject) => {
      echo.once('message', () => resolve());
      echo.once('exit', (code) => reject(new Error(`the bare echo exited (${code}) before it was ready`)));
    });
    const trip = new BareRoundTrip(conn, ch, echo, requests, replies);
    await ch.consume(replies, (m) => {
      if (!m) return;
      ch.ack(m);
      trip.waiting?.(String(m.properties.correlationId));
    });
    return trip;
  }

  call(): Promise<void> {
    const id = String(this.next++);
    const replied = new Promise<void>((resolve) => (this.waiting = (got) => got === id && resolve()));
    this.ch.publish('', this.requests, this.body, { correlationId: id, replyTo: this.replies, persistent: true, contentType: 'application/json' }, () => {});
    return replied;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.echo.once('exit', resolve));
    if (this.echo.exitCode === null) this.echo.disconnect();
    await exited;
    await this.ch.deleteQueue(this.requests).catch(() => {});
    await this.ch.deleteQueue(this.replies).catch(() => {});
    await this.conn.close().catch(() => {});
  }
}

/** Consumer RSS while it works through a backlog of `n` jobs that were waiting in its queue. */
/** The RSS of a prime-filter that has started (its sieve threads warm) and has nothing to do. */
async function idleRss(config: Config): Promise<number> {
  const proc = new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL } });
  try {
    await proc.ready;
    await new Promise((r) => setTimeout(r, 1000));
    return rssMb(proc.pid ?? 0);
  } finally {
    await proc.stop();
  }
}

async function backlogRss(config: Config, n: number): Promise<{ consumerMb: number; idleMb: number; drained: number; secs: number }> {
  const idleMb = await idleRss(config);
  const conn = await amqp.connect(config.AMQP_URL, { noDelay: true });
  try {
    const ch = await conn.createConfirmChannel();
    const replies = `bench.backlog.${randomUUID().slice(0, 8)}`;
    await ch.assertQueue(replies, { durable: false, autoDelete: false, arguments: { 'x-expires': 600_000 } });
    for (let i = 0; i < n; i++) {
      const ok = ch.publish('pipeline.ranges', 'range.primes', Buffer.from(`{"from":${i * 100},"to":${i * 100 + 99}}`), {
        correlationId: String(i),
        replyTo: replies,
        persistent: true,
      });
      if (!ok) await new Promise((r) => ch.once('drain', r));
    }
    await ch.waitForConfirms();
    const proc = new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL } });
    try {
      const started = performance.now();
      const { peak, value } = await peakRss(
        () => [proc.pid ?? 0],
        async () => {
          await proc.ready;
          for (let i = 0; i < 6000; i++) {
            const { messageCount } = await ch.checkQueue(replies);
            if (messageCount >= n) return messageCount;
            await new Promise((r) => setTimeout(r, 100));
          }
          return (await ch.checkQueue(replies)).messageCount;
        },
      );
      return { consumerMb: peak.get(proc.pid ?? 0) ?? 0, idleMb, drained: value, secs: (performance.now() - started) / 1000 };
    } finally {
      await proc.stop();
      await ch.deleteQueue(replies).catch(() => {});
    }
  } finally {
    await conn.close().catch(() => {});
  }
}

/**
 * What quorum reply queues cost on one node (a cluster's default, REPLY_QUEUE_TYPE=quorum)
 * against classic ones (one node's default). One prime-filter serves two producers that differ
 * only in REPLY_QUEUE_TYPE; they take turns, a batch of `jobs` each per round, then one-job
 * batches (where declaring and deleting the batch's reply, manifest and progress queues is most
 * of the cost) in blocks of 20. The services and work queues are the same for both.
 */
async function replyQueueCost(config: Config, jobs: number): Promise<{ classic: number[]; quorum: number[]; classicOne: number[]; quorumOne: number[] }> {
  const proc = new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL, LOG_LEVEL: 'info', WORK_QUEUE_TYPE: config.WORK_QUEUE_TYPE } });
  try {
    await proc.ready;
    const logger = createLogger('bench', { level: 'error' }, 2);
    const classic = await PipelineClient.connect({ ...config, REPLY_QUEUE_TYPE: 'classic' }, logger);
    const quorum = await PipelineClient.connect({ ...config, REPLY_QUEUE_TYPE: 'quorum' }, logger);
    try {
      let offset = 0;
      const batch = async (client: PipelineClient, n: number): Promise<number> => {
        const started = performance.now();
        const outcome = await client.submit(smallJobs(n, offset), { wait: true, output: 'independent', timeoutMs: 600_000 });
        offset += n;
        if (!outcome.complete || outcome.failed > 0) throw new Error(`bench batch incomplete: ${JSON.stringify(outcome.stats)}`);
        return performance.now() - started;
      };
      await batch(classic, WARMUP_JOBS);
      await batch(quorum, WARMUP_JOBS);
      const out = { classic: [] as number[], quorum: [] as number[], classicOne: [] as number[], quorumOne: [] as number[] };
      for (let i = 0; i < ROUNDS; i++) {
        out.classic.push(jobs / ((await batch(classic, jobs)) / 1000));
        out.quorum.push(jobs / ((await batch(quorum, jobs)) / 1000));
      }
      for (let i = 0; i < 10; i++) await batch(classic, 1), await batch(quorum, 1);
      for (let done = 0; done < BATCH_SAMPLES; done += 20) {
        for (let i = 0; i < 20; i++) out.classicOne.push(await batch(classic, 1));
        for (let i = 0; i < 20; i++) out.quorumOne.push(await batch(quorum, 1));
      }
      out.classicOne.sort((a, b) => a - b);
      out.quorumOne.sort((a, b) => a - b);
      return out;
    } finally {
      await classic.close();
      await quorum.close();
    }
  } finally {
    await proc.stop();
  }
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** BENCH_PARTS=ceiling,one,two,latency,backlog,classic,replyq,tracing picks parts of the suite (all by default). */
const PARTS = new Set((process.env.BENCH_PARTS ?? 'ceiling,one,two,latency,backlog,classic,replyq,tracing').split(','));

export async function run(): Promise<Row[]> {
  const config = loadConfig(process.env);
  // The same window the prime-filter service can use: its default PREFETCH is 128 (the most it
  // holds; on small jobs its adaptive prefetch goes up to it).
  const prefetch = Number(SERVICE_PREFETCH ?? config.PREFETCH ?? 128);
  const suite = 'pipeline';
  const rows: Row[] = [];
  // Two yardsticks: the issue's loop (transient replies), and the same loop doing the broker work
  // the pipeline must do (replies persisted in a durable queue, so they outlive the producer).
  // The two loops and our one-prime-filter batches take turns round by round (this VM's speed
  // drifts by 20-40% within minutes: measured one after the other, a ratio compared different
  // spells of the machine), and the target reads the median of the per-round ratios.
  const transientLoop = new CeilingLoop(config.AMQP_URL, WINDOW, prefetch, false);
  const durableLoop = new CeilingLoop(config.AMQP_URL, WINDOW, prefetch, true);
  const ceilingRound = async () => {
    await transientLoop.round();
    await durableLoop.round();
  };
  let one: Awaited<ReturnType<typeof ourThroughput>> | undefined;
  if (PARTS.has('ceiling')) {
    await transientLoop.warmUp();
    await durableLoop.warmUp();
  }
  if (PARTS.has('one')) one = await ourThroughput(config, 1, JOBS, PARTS.has('ceiling') ? ceilingRound : undefined);
  else if (PARTS.has('ceiling')) for (let i = 0; i < ROUNDS; i++) await ceilingRound();
  const ceilingRun = PARTS.has('ceiling') ? { rate: transientLoop.rate, cpuNote: transientLoop.cpuNote() } : { rate: NaN, cpuNote: '' };
  const durableRun = PARTS.has('ceiling') ? { rate: durableLoop.rate, cpuNote: durableLoop.cpuNote() } : { rate: NaN, cpuNote: '' };
  const ceiling = ceilingRun.rate;
  const durable = durableRun.rate;
  const base = { suite, baseline: ceiling, baselineName: `bare req/reply, transient replies, prefetch ${prefetch}`, unit: 'jobs/s', higherIsBetter: true };
  const same = { suite, baseline: durable, baselineName: `bare req/reply, durable replies, prefetch ${prefetch}`, unit: 'jobs/s', higherIsBetter: true };
  rows.push(
    { ...base, case: `ceiling: bare request/reply, ${JOBS} jobs, ${WINDOW} in flight, transient reply queue`, ours: ceiling, note: `the issue's yardstick; ${ceilingRun.cpuNote}` },
    { ...same, case: `ceiling: the same with a durable reply queue (as the pipeline's)`, ours: durable, note: `the same broker work as ours; ${durableRun.cpuNote}` },
  );
  let two: Awaited<ReturnType<typeof ourThroughput>> | undefined;
  if (one) {
    const paired = PARTS.has('ceiling');
    const perRound = (loop: CeilingLoop) => one!.rates.map((r, i) => r / loop.rates[i]!);
    const vs = (loop: CeilingLoop, limit: number) => {
      if (!paired) return { met: one!.rate >= limit * loop.rate, note: '' };
      const ratios = perRound(loop);
      return { met: median(ratios) >= limit, note: `median of per-round ratios ${median(ratios).toFixed(2)}x (rounds: ${ratios.map((x) => x.toFixed(2)).join(' ')}); ` };
    };
    const againstTransient = vs(transientLoop, 0.7);
    const againstDurable = vs(durableLoop, 0.7);
    const how = paired ? `median of ${ROUNDS} batches, each after a round of both bare loops; ` : '';
    rows.push(
      { ...base, case: `${JOBS} small jobs (100-wide primes), 1 prime-filter`, ours: one.rate, target: '>= 0.7x ceiling', met: againstTransient.met, note: `${how}${againstTransient.note}${one.cpuNote}` },
      { ...same, case: `${JOBS} small jobs, 1 prime-filter, against the durable-reply loop`, ours: one.rate, target: '>= 0.7x', met: againstDurable.met, note: againstDurable.note },
    );
  }
  if (PARTS.has('two')) {
    two = await ourThroughput(config, 2, JOBS);
    rows.push({ ...base, case: `${JOBS} small jobs, 2 prime-filters`, ours: two.rate, note: two.cpuNote }, { ...same, case: `${JOBS} small jobs, 2 prime-filters, against the durable-reply loop`, ours: two.rate });
  }
  if (PARTS.has('latency')) {
    const lat = await latency(config);
    const bare = lat.bare;
    const ms = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)}, p95 ${pct(xs, 95).toFixed(1)}, p99 ${pct(xs, 99).toFixed(1)} ms`;
    const vsBare = { baseline: pct(bare, 99), baselineName: 'bare round trip p99' };
    rows.push(
      { suite, case: 'bare amqplib round trip, one at a time (quorum request, durable reply, echo in its own process), p50', ours: pct(bare, 50), unit: 'ms', higherIsBetter: false, note: `the broker's own latency: ${ms(bare)}` },
      { suite, case: 'single job end to end on a session (PipelineSession.call), p50', ours: pct(lat.session, 50), unit: 'ms', higherIsBetter: false, note: `${lat.session.length} calls, one at a time, in blocks of 100 taking turns with the bare round trips; ${ms(lat.session)}` },
      { suite, case: 'single job end to end on a session, p95', ours: pct(lat.session, 95), unit: 'ms', higherIsBetter: false },
      { suite, case: 'single job end to end on a session, p99', ours: pct(lat.session, 99), unit: 'ms', higherIsBetter: false, ...vsBare, target: '< 10 ms', met: pct(lat.session, 99) < 10 },
      { suite, case: 'single job as a one-job batch (submit: reply queue declared, consumed, deleted), p50', ours: pct(lat.batch, 50), unit: 'ms', higherIsBetter: false, note: `${lat.batch.length}, measured after the calls: what one CLI command pays besides start-up; ${ms(lat.batch)}` },
      { suite, case: 'single job as a one-job batch, p99', ours: pct(lat.batch, 99), unit: 'ms', higherIsBetter: false, ...vsBare },
    );
  }
  const runs = [one, two].filter((r) => r !== undefined);
  if (runs.length) {
    rows.push(
      { suite, case: `producer RSS, ${JOBS}-job batch`, ours: Math.max(...runs.map((r) => r.producerMb)), unit: 'MB', higherIsBetter: false },
      { suite, case: `consumer RSS, ${JOBS}-job batch`, ours: Math.max(...runs.map((r) => r.consumerMb)), unit: 'MB', higherIsBetter: false },
    );
  }
  if (PARTS.has('classic')) {
    // WORK_QUEUE_TYPE=classic, in a vhost of its own (the default vhost's work queues are quorum).
    const classic = await withVhost(config.AMQP_URL, 'amqp-pipeline-bench-classic', async (v) => {
      const c = loadConfig({ ...process.env, AMQP_URL: v.url, WORK_QUEUE_TYPE: 'classic' });
      return { one: await ourThroughput(c, 1, JOBS), lat: await latency(c) };
    });
    if (classic.value) {
      const { one: c1, lat } = classic.value;
      rows.push(
        { ...base, case: `${JOBS} small jobs, 1 prime-filter, WORK_QUEUE_TYPE=classic`, ours: c1.rate, note: `${c1.cpuNote}; quorum (the default) above: ${one ? Math.round(one.rate) : '-'} jobs/s` },
        { suite, case: 'single job on a session, p50, WORK_QUEUE_TYPE=classic', ours: pct(lat.session, 50), unit: 'ms', higherIsBetter: false, note: `${lat.session.length} calls` },
        { suite, case: 'single job on a session, p99, WORK_QUEUE_TYPE=classic', ours: pct(lat.session, 99), unit: 'ms', higherIsBetter: false },
        { suite, case: 'single job as a one-job batch, p50 / p99, WORK_QUEUE_TYPE=classic', ours: pct(lat.batch, 50), unit: 'ms', higherIsBetter: false, note: `p99 ${pct(lat.batch, 99).toFixed(1)} ms` },
      );
    } else {
      rows.push({ suite, case: 'WORK_QUEUE_TYPE=classic rows', ours: NaN, unit: '-', higherIsBetter: true, note: `skipped: ${classic.skipped}` });
    }
  }
  if (PARTS.has('replyq')) {
    const c = await replyQueueCost(config, JOBS);
    const ratios = c.quorum.map((q, i) => q / c.classic[i]!);
    const rounds = `median of per-round ratios ${median(ratios).toFixed(2)}x (rounds: ${ratios.map((x) => x.toFixed(2)).join(' ')})`;
    rows.push(
      { suite, case: `${JOBS} small jobs, 1 prime-filter, REPLY_QUEUE_TYPE=quorum on one node`, ours: median(c.quorum), baseline: median(c.classic), baselineName: 'the same with classic reply queues', unit: 'jobs/s', higherIsBetter: true, note: `a cluster's default, measured on one node; producers taking turns; ${rounds}` },
      { suite, case: 'single job as a one-job batch, p50, REPLY_QUEUE_TYPE=quorum on one node', ours: pct(c.quorumOne, 50), baseline: pct(c.classicOne, 50), baselineName: 'classic reply queues, p50', unit: 'ms', higherIsBetter: false, note: `${c.quorumOne.length} each, blocks of 20 taking turns; p99 quorum ${pct(c.quorumOne, 99).toFixed(1)} ms, classic ${pct(c.classicOne, 99).toFixed(1)} ms` },
    );
  }
  if (PARTS.has('tracing')) {
    const t = await tracingCost(config.AMQP_URL, JOBS, ROUNDS, WARMUP_JOBS);
    if ('skipped' in t) {
      rows.push({ suite, case: 'tracing off / on rows', ours: NaN, unit: '-', higherIsBetter: true, note: `skipped: ${t.skipped}` });
    } else {
      const us = (c: { producer: number; service: number }) => `CPU per job: producer ${Math.round(c.producer)} µs, prime-filter ${Math.round(c.service)} µs`;
      const rounds = `median of per-round ratios ${median(t.ratios).toFixed(2)}x (rounds: ${t.ratios.map((x) => x.toFixed(2)).join(' ')})`;
      rows.push(
        { suite, case: `${JOBS} small jobs, 1 prime-filter, tracing off (no OTEL_* set; producer and service in processes and a vhost of their own)`, ours: median(t.off), unit: 'jobs/s', higherIsBetter: true, note: `median of ${ROUNDS} batches, taking turns with the traced pipeline below; ${us(t.cpuOff)}` },
        {
          suite,
          case: `${JOBS} small jobs, 1 prime-filter, tracing on (OTLP http/protobuf to a local collector stand-in)`,
          ours: median(t.on),
          baseline: median(t.off),
          baselineName: 'the same, tracing off',
          unit: 'jobs/s',
          higherIsBetter: true,
          note: `${rounds}; ${us(t.cpuOn)}; the stand-in took ${t.spansPerJob.toFixed(2)} spans per job (${Object.entries(t.spansPerJobBy).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}) in ${t.exports} exports`,
        },
      );
    }
  }
  if (PARTS.has('backlog')) {
    const backlog = await backlogRss(config, BACKLOG);
    rows.push({
      suite,
      case: `consumer RSS draining ${BACKLOG} waiting jobs`,
      ours: backlog.consumerMb,
      unit: 'MB',
      higherIsBetter: false,
      // What a backlog may cost is what it adds to a service at rest: the prefetch bounds it. The
      // sieve threads start (and take their ~14 MB each) before the first job, backlog or not.
      target: '< idle + 80 MB',
      met: backlog.consumerMb - backlog.idleMb < 80,
      note: `idle ${Math.round(backlog.idleMb)} MB (sieve threads warm), +${Math.round(backlog.consumerMb - backlog.idleMb)} MB draining; ${backlog.drained} results in ${backlog.secs.toFixed(1)} s`,
    });
  }
  return rows;
}
