import { randomBytes, randomUUID } from 'node:crypto';
import type { Options } from 'amqplib';
import {
  Exchanges,
  MAX_BUNDLE_NUMBERS,
  RANGE_BUNDLE_TYPE,
  RANGE_JOB_TYPE,
  URL_BUNDLE_TYPE,
  RangeRoutes,
  URL_JOB_ROUTING_KEY,
  URL_JOB_TYPE,
  type RangeJob,
  type ResultKind,
} from '@amqp-pipeline/shared/client';

/** One message to publish, and what results it should bring back. */
export interface JobSpec {
  exchange: string;
  routingKey: string;
  /** AMQP `type` property, for the management UI and for foreign clients. */
  type: string;
  body: Record<string, unknown>;
  /** Kinds of result expected: a `range.all` job brings back two. */
  kinds: ResultKind[];
}

export type RangeTarget = 'primes' | 'squares' | 'all';

export function rangeJob(target: RangeTarget, range: RangeJob): JobSpec {
  return {
    exchange: Exchanges.ranges.name,
    routingKey: RangeRoutes[target],
    type: RANGE_JOB_TYPE,
    body: range.count ? { from: range.from, to: range.to, count: true } : { from: range.from, to: range.to },
    kinds: target === 'all' ? ['primes', 'squares'] : [target],
  };
}

/**
 * A range as jobs: one, or with `chunk` one per `chunk` numbers (the last may be shorter),
 * in ascending order, so all replicas of a service share the work. Primes and squares of
 * the same range (`all`) go as two jobs, one per routing key, rather than one `range.all`
 * message: `mandatory` only reports a message that reaches no queue at all, so a `range.all`
 * job whose squares half is not bound would be confirmed and never answered.
 */
export function rangeJobs(target: RangeTarget, range: RangeJob, chunk?: number): JobSpec[] {
  if (target === 'all') return [...rangeJobs('primes', range, chunk), ...rangeJobs('squares', range, chunk)];
  if (chunk === undefined) return [rangeJob(target, range)];
  if (!Number.isSafeInteger(chunk) || chunk < 1) throw new RangeError(`chunk must be a positive integer, got ${chunk}`);
  const jobs: JobSpec[] = [];
  for (let lo = range.from; ; lo += chunk) {
    const hi = range.to - lo < chunk ? range.to : lo + chunk - 1;
    jobs.push(rangeJob(target, { ...range, from: lo, to: hi }));
    if (hi >= range.to) break;
  }
  return jobs;
}

/**
 * A prime count over more numbers than this, with no chunk given, is split into jobs of at
 * most this many, so every running prime-filter shares it. One such job is 0.15-0.25 s of
 * sieving on one core of a current CPU: long against what a job costs besides (a few ms of
 * broker and service time), short enough to spread over the replicas and keep a progress bar
 * moving. (At --chunk 5e7 a job was 8 ms of sieving and 4-5 ms of that overhead, which the
 * replicas paid on the same cores: two processes were 1.3-1.6x faster than one, not ~1.9x.)
 */
export const PRIME_COUNT_CHUNK = 1_000_000_000;

/**
 * The widest job of a prime count over `width` numbers with no chunk given: none (one job) up
 * to PRIME_COUNT_CHUNK numbers, else PRIME_COUNT_CHUNK, or wider if that would make more than
 * about `maxJobs` jobs.
 */
export function primeCountChunk(width: number, maxJobs = Number.POSITIVE_INFINITY): number | undefined {
  return width > PRIME_COUNT_CHUNK ? Math.max(PRIME_COUNT_CHUNK, Math.ceil(width / (maxJobs / 2))) : undefined;
}

/**
 * The ranges of a prime count with no chunk given, in order: jobs of `primeCountChunk`
 * numbers while there is plenty left, then each a quarter of what is left (never under a
 * quarter of the widest), so the last jobs are short. Replicas take jobs as they finish
 * their last one; with equal jobs the batch ends when the unluckiest one finishes its extra
 * job (10 jobs on 2 replicas: a 6/4 split made a round 1.6x faster than one replica, a 5/5
 * split 2.0x); with a short tail they end within a short job of each other.
 */
export function primeCountRanges(from: number, to: number, maxJobs?: number): Array<[number, number]> {
  const widest = primeCountChunk(to - from + 1, maxJobs);
  if (widest === undefined) return [[from, to]];
  const narrowest = Math.ceil(widest / 4);
  const ranges: Array<[number, number]> = [];
  for (let lo = from; lo <= to; ) {
    const left = to - lo + 1;
    const size = Math.min(left, Math.max(narrowest, Math.min(widest, Math.ceil(left / 4))));
    ranges.push([lo, lo + size - 1]);
    lo += size;
  }
  return ranges;
}

/**
 * A count request as jobs when no chunk is given: the primes split by `primeCountRanges`;
 * squares as one job (the service counts them by formula, whatever the width).
 */
export function countJobs(target: RangeTarget, range: { from: number; to: number }, maxJobs?: number): JobSpec[] {
  const primes = () => primeCountRanges(range.from, range.to, maxJobs).map(([from, to]) => rangeJob('primes', { from, to, count: true }));
  const squares = () => [rangeJob('squares', { from: range.from, to: range.to, count: true })];
  if (target === 'squares') return squares();
  return target === 'primes' ? primes() : [...primes(), ...squares()];
}

/** How many jobs `rangeJobs` would make, without making them. */
export function chunkCount(range: RangeJob, chunk: number): number {
  return Math.ceil((range.to - range.from + 1) / chunk);
}

export function urlJob(url: string): JobSpec {
  return {
    exchange: Exchanges.urls.name,
    routingKey: URL_JOB_ROUTING_KEY,
    type: URL_JOB_TYPE,
    body: { url },
    kinds: ['title'],
  };
}

/**
 * A batch id that sorts by time and is safe in a queue name:
 * `20261129T084012Z-3f9a2c1b` (UTC time of submission, then randomness).
 */
export function newBatchId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/** Batch ids we accept on the command line (ours, or anything queue-name safe). */
export const BATCH_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

/** The correlation id of job `index` of a batch: `<batch>.<index>`. */
export function correlationIdFor(batch: string, index: number): string {
  return `${batch}.${index}`;
}

/**
 * A job as it goes on the wire (docs/protocol.md): its JSON body, and persistent properties
 * naming the queue its result goes to and the correlation id it comes back with.
 */
export function jobMessage(job: JobSpec, correlationId: string, replyTo: string): { content: Buffer; options: Options.Publish } {
  return {
    content: Buffer.from(JSON.stringify(job.body)),
    options: {
      messageId: randomUUID(),
      correlationId,
      replyTo,
      contentType: 'application/json',
      persistent: true,
      type: job.type,
      appId: 'pipeline',
      timestamp: Math.floor(Date.now() / 1000),
    },
  };
}

/** Consecutive jobs of a batch sent as one message: `jobs[first]` to `jobs[first + count - 1]`. */
export interface MessageUnit {
  first: number;
  count: number;
}

/**
 * Most URL jobs our producer puts in one message (the protocol allows MAX_URL_BUNDLE_JOBS): a
 * bundle's results wait for its slowest page, and a replica holds its prefetch times this many.
 */
export const URLS_PER_MESSAGE = 10;

/** A URL job, or a range job to one service (primes or squares) small enough to share a message with others. */
function bundleable(job: JobSpec): boolean {
  if (job.kinds.length !== 1) return false;
  if (job.type === URL_JOB_TYPE) return true;
  if (job.type !== RANGE_JOB_TYPE) return false;
  const { from, to } = job.body as { from: number; to: number };
  return to - from + 1 <= MAX_BUNDLE_NUMBERS;
}

/** The numbers a job covers (none for a URL job). */
function rangeSpan(job: JobSpec): number {
  if (job.type !== RANGE_JOB_TYPE) return 0;
  const { from, to } = job.body as { from: number; to: number };
  return to - from + 1;
}

/**
 * About the most bytes a range job's result can take: a summary, or every number of the range
 * (squares: twice the digits of the widest bound; primes: at most half the numbers, odd ones).
 * A title's result: its URL twice (asked for, and where it ended) and a title of typical length.
 */
function resultBytes(job: JobSpec): number {
  if (job.type === URL_JOB_TYPE) return 700 + 2 * String(job.body.url).length;
  const { from, to, count } = job.body as { from: number; to: number; count?: boolean };
  if (count) return 256;
  const width = to - from + 1;
  const digits = String(Math.max(Math.abs(from), Math.abs(to))).length;
  return 160 + (job.kinds[0] === 'squares' ? width * (2 * digits + 1) : Math.ceil(width / 2 + 1) * (digits + 1));
}

/**
 * How a batch's jobs go out: runs of consecutive small range jobs to the same service share a
 * message (at most `perMessage` jobs, MAX_BUNDLE_NUMBERS numbers and about `maxBytes` of
 * results, so the reply is one message of at most that size), and runs of URL jobs likewise
 * (at most URLS_PER_MESSAGE); every other job goes alone. The units cover the jobs in order,
 * each once.
 */
export function messageUnits(jobs: readonly JobSpec[], perMessage: number, maxBytes: number): MessageUnit[] {
  const units: MessageUnit[] = [];
  for (let i = 0; i < jobs.length; ) {
    const first = jobs[i]!;
    let count = 1;
    const most = first.type === URL_JOB_TYPE ? Math.min(perMessage, URLS_PER_MESSAGE) : perMessage;
    if (most > 1 && bundleable(first)) {
      let numbers = rangeSpan(first);
      let bytes = resultBytes(first);
      while (count < most && i + count < jobs.length) {
        const next = jobs[i + count]!;
        if (!bundleable(next) || next.type !== first.type || next.routingKey !== first.routingKey || next.exchange !== first.exchange) break;
        const n = rangeSpan(next);
        const b = resultBytes(next);
        if (numbers + n > MAX_BUNDLE_NUMBERS || bytes + b > maxBytes) break;
        numbers += n;
        bytes += b;
        count++;
      }
    }
    units.push({ first: i, count });
    i += count;
  }
  return units;
}

/**
 * Several jobs as one message (docs/protocol.md, "Several jobs in one message"): each job's
 * body with its id (its correlation id), under one `correlation_id` of the message's own.
 */
export function bundleMessage(jobs: readonly JobSpec[], ids: readonly string[], replyTo: string): { content: Buffer; options: Options.Publish } {
  const items = jobs.map((job, i) => JSON.stringify({ id: ids[i], ...job.body }));
  return {
    content: Buffer.from(`{"jobs":[${items.join(',')}]}`),
    options: {
      messageId: randomUUID(),
      correlationId: `${ids[0]}+${ids.length}`,
      replyTo,
      contentType: 'application/json',
      persistent: true,
      type: jobs[0]?.type === URL_JOB_TYPE ? URL_BUNDLE_TYPE : RANGE_BUNDLE_TYPE,
      appId: 'pipeline',
      timestamp: Math.floor(Date.now() / 1000),
    },
  };
}
