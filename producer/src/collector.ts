import {
  MANIFEST_TYPE,
  ManifestSchema,
  ResultSchema,
  type FailureResult,
  type Manifest,
  type OutputMode,
  type Progress,
  type Result,
  type ResultKind,
  type Totals,
} from '@amqp-pipeline/shared/client';
import type { ConsumeMessage } from 'amqplib';
import { emptyTotals, encodeDone, foldSummary, recordedDone, totalsOf } from './checkpoint.js';
import { misfit, ownProblem, senderProblem, type Senders } from './fit.js';

/**
 * The collector: matches a batch's replies to its jobs, drops duplicates, puts lists in order.
 *
 * State kept (all in memory, rebuilt from the manifest and the newest progress record):
 * - per expected result (job x kind): done or not, the next part owed, and the parts or
 *   results that came ahead of their turn (`waiting`: the only replies ever held back);
 * - for `ordered` batches, per kind, the head: the first result not yet written out;
 * - for `combine` batches, per kind, the running totals of the summaries folded in;
 * - messages that came before the manifest (a `collect` that has not read it yet).
 * It never touches the broker: it says which messages may be acknowledged (`accept`), which to
 * send round again to make room (`spill`), and what a checkpoint records (`progress`).
 */

/**
 * A message from the reply queue, or one result of a bundle's reply (gather.ts splits those):
 * `size` then stands for its share of the message's bytes, and its content is made only when
 * asked for (a result sent round).
 */
export type Msg = Pick<ConsumeMessage, 'content' | 'properties'> & { readonly size?: number };

const bytesOf = (msg: Msg) => msg.size ?? msg.content.length;

/** A result (or one part of a long list) matched to its job, ready to print. */
export interface CollectedResult {
  type: 'result';
  batch: string;
  /** Correlation id of the job. */
  id: string;
  /** What the job asked for: `{from, to}` or `{url}`. */
  input: Record<string, unknown>;
  result: Result;
}

/** Several jobs' summaries of one kind added together (a range counted in chunks). */
export interface CombinedResult {
  type: 'combined';
  batch: string;
  kind: ResultKind;
  /** The whole request, e.g. `{from, to}` before chunking. */
  input: Record<string, unknown>;
  jobs: number;
  result:
    | { ok: true; kind: ResultKind; summary: { count: number; first: number | string | null; last: number | string | null; sum: string } }
    | FailureResult;
}

export type Emitted = CollectedResult | CombinedResult;

export interface CollectorStats {
  /** Results accepted (after de-duplication); a list sent in parts counts once, when complete. */
  received: number;
  /** Messages dropped because the same result (or part) had already arrived (redeliveries). */
  duplicates: number;
  /** Messages dropped because they match no job of this batch or are not valid results. */
  unexpected: number;
}

export interface MissingResult {
  id: string;
  kind: ResultKind;
  input: Record<string, unknown>;
}

interface Owed {
  id: string;
  order: number;
  /** Place in its kind's list (for `ordered`: how far from the head it is). */
  pos: number;
  /** Number of this result in manifest order (its bit in a progress checkpoint). */
  ordinal: number;
  kind: ResultKind;
  input: Record<string, unknown>;
  /** Next part index to emit. */
  nextPart: number;
  done: boolean;
  failed: boolean;
  /** Parts (or whole results) that arrived ahead of their turn, with their messages. */
  waiting: Map<number, { result: Result; msg: Msg }>;
}

function partIndex(r: Result): { index: number; last: boolean } {
  return 'part' in r && r.part ? r.part : { index: 0, last: true };
}

/**
 * What identifies one emitted piece of output across producer sessions: a job's result (or
 * one part of it, or its failure), or a batch's combined summary of a kind. A sink that
 * remembers these keys (e.g. an output file) lets `collect` skip what it already holds.
 */
export function outputKey(r: Emitted): string {
  if (r.type === 'combined') return combinedKey(r.batch, r.kind);
  return resultKey(r.id, r.result);
}

function combinedKey(batch: string, kind: string): string {
  return `${batch}:combined:${kind}`;
}

function resultKey(id: string, result: Result): string {
  return `${id}:${result.kind}#${result.ok ? partIndex(result).index : 'error'}`;
}

/**
 * Matches the replies of one batch to its jobs by correlation id and kind, drops duplicates
 * and strangers, puts lists back in order (parts within a result; for `ordered` batches,
 * jobs within a kind), folds summaries into running totals for `combine` batches, and says
 * which messages may be acknowledged: a message is released as soon as what it carries has
 * been emitted, folded in, or dropped. Only replies ahead of their turn are held back, and
 * `spill` hands the furthest of them back when they grow past a bound.
 * Pure bookkeeping: it never touches the broker.
 */
export class BatchCollector {
  readonly batch: string;
  readonly stats: CollectorStats = { received: 0, duplicates: 0, unexpected: 0 };
  private readonly emit: (r: Emitted) => void;
  private manifest: Manifest | undefined;
  private manifestMsg: Msg | undefined;
  private owed = new Map<string, Owed>();
  /** For `ordered`: per kind, the owed entries in job order, and the position of the head. */
  private queues = new Map<ResultKind, { list: Owed[]; head: number }>();
  private early: Msg[] = [];
  private heldCount = 0;
  private heldBytesTotal = 0;
  /** For `combine`: per kind, the summaries folded in so far. */
  private totals = new Map<ResultKind, Totals>();
  private failures = 0;
  private emitted = 0;
  /** Entries done (kept as a count: it is read for every message). */
  private doneTotal = 0;
  /** Results in manifest order (ordinal -> entry). */
  private byOrdinal: Owed[] = [];

  /**
   * @param alive says whether a message held back can still be acknowledged (its channel is
   *   the current one). After a reconnect the broker delivers held messages again; the new
   *   delivery then takes the place of the dead one instead of counting as a duplicate.
   */
  constructor(
    batch: string,
    emit: (r: Emitted) => void,
    manifest?: Manifest | { manifest: Manifest; progress?: Progress | undefined },
    private readonly alive: (msg: Msg) => boolean = () => true,
    /**
     * Says whether the output already holds a piece (by `outputKey`), written by an earlier
     * session: such a piece is taken as emitted, and counted as a duplicate, not emitted again.
     */
    private readonly written: (key: string) => boolean = () => false,
    /** Told of each message refused as unexpected, and why. */
    private readonly onRefused: (msg: Msg, reason: string) => void = () => {},
    /** Who may write into the queue (fit.ts); undefined: anyone (a batch from before they were checked). */
    private readonly senders?: Senders,
  ) {
    this.batch = batch;
    this.emit = emit;
    if (manifest && 'manifest' in manifest) this.learn(manifest.manifest, manifest.progress);
    else if (manifest) this.learn(manifest);
  }

  get knowsJobs(): boolean {
    return this.manifest !== undefined;
  }

  /** Jobs in the batch (0 until the manifest is known). */
  get jobCount(): number {
    return this.manifest?.jobs.length ?? 0;
  }

  /** Results expected in all (job × kind). */
  get expectedCount(): number {
    return this.owed.size;
  }

  /** Results complete so far (all parts in). */
  get doneCount(): number {
    return this.doneTotal;
  }

  /** Results and parts settled so far: emitted, or found already written by an earlier session. */
  get emittedCount(): number {
    return this.emitted;
  }

  /** Results that arrived as `ok: false` (for `combine`: jobs that failed). */
  get failedCount(): number {
    return this.failures;
  }

  /** True once the jobs are known and every expected result is complete. */
  get complete(): boolean {
    return this.manifest !== undefined && this.doneTotal === this.owed.size;
  }

  /** Messages held back unacknowledged (replies ahead of their turn, the manifest, replies before the manifest). */
  get held(): number {
    return this.heldCount + (this.manifestMsg ? 1 : 0) + this.early.length;
  }

  /**
   * For `ordered`: the job order of the earliest result not yet complete (over all kinds), so
   * the publisher can keep what it sends within reach of it; the job count once all are done.
   * For the other outputs (nothing waits for a turn there): Infinity.
   */
  get headOrder(): number {
    if (this.manifest?.output !== 'ordered') return Infinity;
    let head = this.manifest.jobs.length;
    for (const q of this.queues.values()) head = Math.min(head, q.list[q.head]?.order ?? head);
    return head;
  }

  /** Replies held back ahead of their turn (what `spill` can take back). */
  get heldAhead(): number {
    return this.heldCount;
  }

  /** Bytes of the replies held back ahead of their turn. */
  get heldBytes(): number {
    return this.heldBytesTotal;
  }

  /**
   * Makes room: takes back replies held ahead of their turn, the furthest from their turn
   * first, until at most `maxHeld` messages and `maxBytes` bytes are held. The caller sends
   * each round again (a copy to the back of the reply queue, confirmed) before it acks the
   * original, so nothing is lost; when the copy comes back it is taken in like any reply.
   * Never returns a reply that is in its turn (those are emitted at once, never held).
   */
  spill(maxHeld: number, maxBytes: number): Msg[] {
    if (this.heldCount <= maxHeld && this.heldBytesTotal <= maxBytes) return [];
    const held: { o: Owed; index: number; msg: Msg; distance: number }[] = [];
    for (const o of this.byOrdinal) {
      if (o.waiting.size === 0) continue;
      const q = this.queues.get(o.kind);
      const ahead = q ? o.pos - q.head : 0;
      for (const [index, w] of o.waiting) held.push({ o, index, msg: w.msg, distance: ahead * 1e6 + (index - o.nextPart) });
    }
    held.sort((a, b) => b.distance - a.distance);
    const out: Msg[] = [];
    for (const h of held) {
      if (this.heldCount <= maxHeld && this.heldBytesTotal <= maxBytes) break;
      h.o.waiting.delete(h.index);
      this.unhold(h.msg);
      out.push(h.msg);
    }
    return out;
  }

  private hold(msg: Msg): void {
    this.heldCount++;
    this.heldBytesTotal += bytesOf(msg);
  }

  private unhold(msg: Msg): void {
    this.heldCount--;
    this.heldBytesTotal -= bytesOf(msg);
  }

  /**
   * Takes back one reply held ahead of its turn, as `spill` does (the caller sends it round):
   * true if it was held. For the other results of a bundle `spill` took one of: their message
   * can be acknowledged only once none of them is held.
   */
  takeBack(msg: Msg, kind: string): boolean {
    const o = this.owed.get(`${String(msg.properties.correlationId ?? '')}:${kind}`);
    if (!o) return false;
    for (const [index, w] of o.waiting) {
      if (w.msg !== msg) continue;
      o.waiting.delete(index);
      this.unhold(msg);
      return true;
    }
    return false;
  }

  /**
   * Feeds one message from the reply queue; returns the messages that may be acknowledged now.
   * `body`: the message's content already parsed (a result of a bundle's reply).
   */
  accept(msg: Msg, body?: unknown): Msg[] {
    if (msg.properties.type === MANIFEST_TYPE) {
      const forged = ownProblem(this.senders, msg);
      if (forged) {
        this.refuse(msg, `a manifest ${forged}`);
        return [msg];
      }
      const parsed = ManifestSchema.safeParse(safeJson(msg.content));
      if (this.manifestMsg && !this.alive(this.manifestMsg) && parsed.success && parsed.data.batch === this.batch) {
        this.manifestMsg = msg;
        return [];
      }
      if (!parsed.success || parsed.data.batch !== this.batch || this.manifestMsg) {
        this.refuse(msg, !parsed.success ? 'not a valid manifest' : parsed.data.batch !== this.batch ? `a manifest of batch "${parsed.data.batch}"` : 'a second manifest');
        return [msg];
      }
      this.manifestMsg = msg;
      if (this.manifest) return [];
      this.learn(parsed.data);
      const early = this.early.splice(0);
      return early.flatMap((m) => this.accept(m));
    }
    if (!this.manifest) {
      if (this.passThrough) return this.passOn(msg);
      this.early.push(msg);
      return [];
    }
    const id = String(msg.properties.correlationId ?? '');
    const parsed = ResultSchema.safeParse(body !== undefined ? body : safeJson(msg.content));
    const wrongSender = parsed.success ? senderProblem(this.senders, parsed.data.kind, msg) : undefined;
    if (wrongSender) {
      this.refuse(msg, `not taken as job "${id}"'s result: ${wrongSender}`);
      return [msg];
    }
    const owed = parsed.success ? this.owed.get(`${id}:${parsed.data.kind}`) : undefined;
    if (!parsed.success || !owed) {
      this.refuse(msg, parsed.success ? `no ${parsed.data.kind} result is owed to job "${id}"` : 'not a valid result');
      return [msg];
    }
    // A result must be one its job can have produced: another job's answer (a borrowed
    // reply_to and correlation id) or a forgery that does not fit is refused, and the job
    // keeps waiting for its own.
    const problem = misfit(owed.input, parsed.data);
    if (problem) {
      this.refuse(msg, `does not fit job "${id}": ${problem}`);
      return [msg];
    }
    const { job: _echo, ...result } = parsed.data;
    return this.take(owed, result as Result, msg);
  }

  /** Counts a message refused as unexpected, and says why (the caller logs it with its sender). */
  private refuse(msg: Msg, reason: string): void {
    this.stats.unexpected++;
    this.onRefused(msg, reason);
  }

  /** Results still outstanding. */
  missing(): MissingResult[] {
    return [...this.owed.values()].filter((o) => !o.done).map((o) => ({ id: o.id, kind: o.kind, input: o.input }));
  }

  /** Emits the combined results (for `combine`); returns the manifest's message, to acknowledge at the end. */
  finish(): Msg[] {
    const out: Msg[] = [];
    if (this.manifest?.output === 'combine') {
      for (const kind of this.kinds()) this.emitCombined(kind);
    }
    if (this.manifestMsg) out.push(this.manifestMsg);
    this.manifestMsg = undefined;
    return out;
  }

  /**
   * A checkpoint of what has been taken in: every result done (written out, or folded into the
   * totals), for lists sent in parts and written out in part the next part owed, and for
   * `combine` the totals. `revision` is the caller's counter. Undefined until the jobs are known.
   */
  progress(revision: number): Progress | undefined {
    if (!this.manifest) return undefined;
    const { base, done } = encodeDone(this.byOrdinal.length, (i) => (this.byOrdinal[i] as Owed).done);
    const nextPart: Record<string, number> = {};
    for (const o of this.byOrdinal) if (!o.done && o.nextPart > 0) nextPart[String(o.ordinal)] = o.nextPart;
    const record: Progress = { batch: this.batch, revision, base, done, nextPart };
    if (this.manifest.output === 'combine') record.totals = Object.fromEntries(this.totals);
    return record;
  }

  /** The message of the manifest currently held (to acknowledge when it is replaced). */
  get manifestMessage(): Msg | undefined {
    return this.manifestMsg;
  }

  /**
   * With no manifest to come (a `collect` of a batch whose producer died before writing it),
   * each result is emitted as it arrives, as it is, and released: the window never fills.
   */
  private passThrough = false;
  expectNoManifest(): void {
    this.passThrough = true;
    for (const m of this.early.splice(0)) this.passOn(m);
  }

  private passOn(m: Msg): Msg[] {
    const parsed = ResultSchema.safeParse(safeJson(m.content));
    if (!parsed.success) {
      this.refuse(m, 'not a valid result');
      return [m];
    }
    const wrongSender = senderProblem(this.senders, parsed.data.kind, m);
    if (wrongSender) {
      this.refuse(m, `not taken as a result: ${wrongSender}`);
      return [m];
    }
    this.stats.received++;
    if (!parsed.data.ok) this.failures++;
    this.emitUnmatched(m, parsed.data);
    return [m];
  }

  /** For a collect that never saw a manifest: what arrived, as it is, in arrival order. */
  flushUnmatched(): Msg[] {
    const msgs = this.early.splice(0);
    for (const m of msgs) {
      const parsed = ResultSchema.safeParse(safeJson(m.content));
      if (!parsed.success) continue;
      this.emitUnmatched(m, parsed.data);
    }
    return msgs;
  }

  /**
   * A result with no manifest to check it against, as it came: its input is what the service
   * says it answered (its echo of the job), since the jobs themselves are not known.
   */
  private emitUnmatched(m: Msg, parsed: Result): void {
    const { job, ...result } = parsed;
    this.emit({ type: 'result', batch: this.batch, id: String(m.properties.correlationId ?? ''), input: job ?? {}, result: result as Result });
  }

  private kinds(): ResultKind[] {
    return [...new Set([...this.owed.values()].map((o) => o.kind))];
  }

  private learn(manifest: Manifest, progress?: Progress): void {
    this.manifest = manifest;
    manifest.jobs.forEach((job, order) => {
      for (const kind of job.kinds) {
        const o: Owed = {
          id: job.id,
          order,
          pos: 0,
          ordinal: this.byOrdinal.length,
          kind,
          input: job.input,
          nextPart: job.nextPart?.[kind] ?? 0,
          done: false,
          failed: false,
          waiting: new Map(),
        };
        this.owed.set(`${job.id}:${kind}`, o);
        this.byOrdinal.push(o);
        if (manifest.output === 'ordered') {
          let q = this.queues.get(kind);
          if (!q) this.queues.set(kind, (q = { list: [], head: 0 }));
          o.pos = q.list.length;
          q.list.push(o);
        }
      }
    });
    if (progress && progress.batch === this.batch) this.resume(progress);
  }

  /** Takes what earlier sessions took in (a progress checkpoint) as done. */
  private resume(progress: Progress): void {
    // A combine batch can resume only from a record with its totals: one without (written by
    // an older producer, which recorded nothing for combine) says nothing was folded in.
    if (this.manifest?.output === 'combine') {
      if (!progress.totals) return;
      this.totals = totalsOf(progress);
      for (const t of this.totals.values()) if (t.failure) this.failures++;
    }
    const bits = Buffer.from(progress.done, 'base64');
    for (const o of this.byOrdinal) {
      if (recordedDone(progress, o.ordinal, bits)) {
        o.done = true;
        this.doneTotal++;
      } else {
        const next = progress.nextPart[String(o.ordinal)];
        if (next !== undefined) o.nextPart = next;
      }
    }
    for (const q of this.queues.values()) while (q.list[q.head]?.done) q.head++;
  }

  private take(o: Owed, result: Result, msg: Msg): Msg[] {
    if (this.manifest?.output === 'combine') {
      if (o.done) {
        this.stats.duplicates++;
        return [msg];
      }
      o.done = true;
      this.doneTotal++;
      this.stats.received++;
      this.emitted++;
      if (!result.ok) this.failures++;
      if (!result.ok || 'summary' in result) {
        this.totals.set(o.kind, foldSummary(this.totals.get(o.kind) ?? emptyTotals(), o.order, result));
      } else {
        this.totals.set(o.kind, { ...(this.totals.get(o.kind) ?? emptyTotals()), jobs: (this.totals.get(o.kind)?.jobs ?? 0) + 1 });
      }
      return [msg];
    }
    const { index } = result.ok ? partIndex(result) : { index: o.nextPart };
    const held = o.waiting.get(index);
    if (held && !this.alive(held.msg)) {
      held.msg = msg;
      return [];
    }
    if (o.done || index < o.nextPart || held) {
      this.stats.duplicates++;
      return [msg];
    }
    o.waiting.set(index, { result, msg });
    this.hold(msg);
    return this.drain(o);
  }

  /** Emits whatever is now in turn, for this entry (and, if ordered, the entries after it). */
  private drain(o: Owed): Msg[] {
    const released: Msg[] = [];
    const ordered = this.manifest?.output === 'ordered';
    const q = ordered ? this.queues.get(o.kind) : undefined;
    let current: Owed | undefined = q ? q.list[q.head] : o;
    while (current) {
      if (q && current !== q.list[q.head]) break;
      const next = current.waiting.get(current.nextPart);
      if (!next) break;
      current.waiting.delete(current.nextPart);
      this.unhold(next.msg);
      released.push(next.msg);
      this.emitted++;
      if (this.written(resultKey(current.id, next.result))) {
        this.stats.duplicates++; // written out by an earlier session
      } else {
        this.emit({ type: 'result', batch: this.batch, id: current.id, input: current.input, result: next.result });
      }
      const last = !next.result.ok || partIndex(next.result).last;
      current.nextPart++;
      if (last) {
        current.done = true;
        this.doneTotal++;
        this.stats.received++;
        if (!next.result.ok) {
          current.failed = true;
          this.failures++;
        }
        // Anything still waiting for a finished entry is a leftover duplicate.
        for (const w of current.waiting.values()) {
          released.push(w.msg);
          this.stats.duplicates++;
          this.unhold(w.msg);
        }
        current.waiting.clear();
        if (!q) break;
        q.head++;
        while (q.list[q.head]?.done) q.head++;
        current = q.list[q.head];
      }
    }
    return released;
  }

  private emitCombined(kind: ResultKind): void {
    const jobs = this.byOrdinal.filter((o) => o.kind === kind).length;
    const input = this.manifest?.request ?? {};
    if (this.written(combinedKey(this.batch, kind))) return;
    const t = this.totals.get(kind) ?? emptyTotals();
    if (t.failure) {
      this.emit({ type: 'combined', batch: this.batch, kind, input, jobs, result: { ok: false, kind, error: t.failure.error } });
      return;
    }
    this.emit({
      type: 'combined',
      batch: this.batch,
      kind,
      input,
      jobs,
      result: { ok: true, kind, summary: { count: t.count, first: t.first, last: t.last, sum: t.sum } },
    });
  }
}

function safeJson(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
}
