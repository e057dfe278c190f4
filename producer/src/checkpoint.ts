/**
 * Checkpoints of a batch's output: what a progress record says, and when one is written.
 *
 * A batch's replies are acknowledged only after a progress record saying they were taken in
 * (written out, or for `combine` folded into the totals) is confirmed in the batch's progress
 * queue. So a producer killed at any moment leaves a record and a reply queue that agree:
 * `collect` skips what the record covers and takes the rest from the queue.
 *
 * State kept here:
 * - `CheckpointRunner`: whether a checkpoint is running, and whether another was asked for
 *   meanwhile (then it runs right after: a request is never skipped).
 * - Everything else is pure: encoding the done set, folding summaries, merging records.
 */
import type { Progress, ResultKind, Totals } from '@amqp-pipeline/shared/client';

/** A checkpoint is due once this many replies wait for their ack... */
export const CHECKPOINT_REPLIES = 256;
/** ...or this many bytes of them... */
export const CHECKPOINT_BYTES = 8 * 1024 * 1024;
/** ...or this long after the first of them came, ms. */
export const CHECKPOINT_MS = 1000;

/**
 * Replies waiting for their ack that make a checkpoint due, in a window of `prefetch` of which
 * up to `holdMessages` may be held ahead of their turn: at most half of the rest, so a
 * checkpoint is due (and its acks free room) well before the window could fill with them.
 */
export function checkpointEvery(prefetch: number, holdMessages: number): number {
  return Math.max(1, Math.min(CHECKPOINT_REPLIES, Math.floor((prefetch - holdMessages) / 2)));
}

/** Whether a checkpoint is due for `replies` replies of `bytes` bytes waiting for their ack. */
export function checkpointDue(replies: number, bytes: number, every = CHECKPOINT_REPLIES): boolean {
  return replies >= every || bytes >= CHECKPOINT_BYTES;
}

/**
 * The done set as a record stores it: `base`, the first result not done (all below it are),
 * and a bitmap of the done ones from there on. Results are mostly taken in near the order
 * they were sent, so the bitmap stays short (the results in flight) however large the batch:
 * a record of a million-job batch is a few bytes, not 125 KB at every checkpoint.
 */
export function encodeDone(count: number, isDone: (ordinal: number) => boolean): { base: number; done: string } {
  let base = 0;
  while (base < count && isDone(base)) base++;
  let end = count;
  while (end > base && !isDone(end - 1)) end--;
  const bits = Buffer.alloc((end - base + 7) >> 3);
  for (let i = base; i < end; i++) {
    if (isDone(i)) {
      const j = i - base;
      bits[j >> 3] = (bits[j >> 3] as number) | (1 << (j & 7));
    }
  }
  return { base, done: bits.toString('base64') };
}

/** Whether a record says result `ordinal` is done. */
export function recordedDone(progress: Pick<Progress, 'base' | 'done'>, ordinal: number, bits = Buffer.from(progress.done, 'base64')): boolean {
  const base = progress.base ?? 0;
  if (ordinal < base) return true;
  const j = ordinal - base;
  return (((bits[j >> 3] ?? 0) >> (j & 7)) & 1) === 1;
}

/** Totals before any summary is folded in. */
export function emptyTotals(): Totals {
  return { jobs: 0, count: 0, sum: '0', first: null, firstJob: -1, last: null, lastJob: -1 };
}

/**
 * Adds one job's summary (or failure) into the totals. Jobs may come in any order: the first
 * value is the one of the earliest job (manifest order) that has any, the last that of the
 * latest, and a failure kept is the earliest job's.
 */
export function foldSummary(
  t: Totals,
  job: number,
  r: { ok: true; summary: { count: number; first: number | string | null; last: number | string | null; sum: string } } | { ok: false; error: { code: string; message: string } },
): Totals {
  const next: Totals = { ...t, jobs: t.jobs + 1 };
  if (!r.ok) {
    if (!t.failure || job < t.failure.job) next.failure = { job, error: { code: r.error.code, message: r.error.message } };
    return next;
  }
  next.count = t.count + r.summary.count;
  next.sum = (BigInt(t.sum) + BigInt(r.summary.sum)).toString();
  if (r.summary.first !== null && (t.firstJob < 0 || job < t.firstJob)) {
    next.first = r.summary.first;
    next.firstJob = job;
  }
  if (r.summary.last !== null && (t.lastJob < 0 || job > t.lastJob)) {
    next.last = r.summary.last;
    next.lastJob = job;
  }
  return next;
}

/**
 * One record out of several found in a progress queue (a killed broker may bring back an older
 * one beside the newest). Each record of a batch covers everything the ones before it did, so
 * the newest (highest revision) is taken; for batches without totals, the done sets of the
 * others are added to it as well (a union only ever names results that were written out).
 */
export function mergeProgress(records: readonly Progress[]): Progress | undefined {
  const [first, ...rest] = records;
  if (!first) return undefined;
  if (rest.length === 0) return first;
  const newest = records.reduce((a, b) => (b.revision > a.revision ? b : a));
  if (newest.totals) return newest;
  const decoded = records.map((p) => ({ p, bits: Buffer.from(p.done, 'base64') }));
  let end = 0;
  for (const { p, bits } of decoded) end = Math.max(end, (p.base ?? 0) + bits.length * 8);
  const doneAt = (i: number) => decoded.some(({ p, bits }) => recordedDone(p, i, bits));
  const { base, done } = encodeDone(end, doneAt);
  const nextPart: Record<string, number> = {};
  for (const p of records) for (const [k, v] of Object.entries(p.nextPart)) nextPart[k] = Math.max(nextPart[k] ?? 0, v);
  for (const k of Object.keys(nextPart)) if (doneAt(Number(k))) delete nextPart[k];
  return { batch: newest.batch, revision: newest.revision, base, done, nextPart };
}

/** The kinds a record has totals for, with their totals. */
export function totalsOf(progress: Progress | undefined): Map<ResultKind, Totals> {
  const out = new Map<ResultKind, Totals>();
  for (const [k, t] of Object.entries(progress?.totals ?? {})) if (t) out.set(k as ResultKind, t);
  return out;
}

/**
 * Runs checkpoints one at a time. `request()` starts one now, or, if one is running, makes
 * sure another runs as soon as it ends: a request is never lost, so replies taken in while a
 * checkpoint was under way are never left waiting for a message that will not come (a full
 * reply window brings none). A failed checkpoint is reported and the next request runs anew.
 */
export class CheckpointRunner {
  private running: Promise<void> | undefined;
  private wanted = false;

  constructor(
    private readonly run: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Whether a checkpoint is running now. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Starts a checkpoint, or queues one after the running one; resolves when it has run. */
  request(): Promise<void> {
    this.wanted = true;
    this.running ??= this.loop();
    return this.running;
  }

  /** Resolves once nothing is running (without asking for a checkpoint). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    try {
      while (this.wanted) {
        this.wanted = false;
        try {
          await this.run();
        } catch (err) {
          this.onError(err);
        }
      }
    } finally {
      // In the same turn as the last check of `wanted`: no request can fall between the two.
      this.running = undefined;
    }
  }
}
