/**
 * The accounting of one fault row: which jobs were sent, which results came out (checked
 * against an oracle), what was lost, duplicated or unexpected, and how long recovery took.
 */
import { appendFileSync } from 'node:fs';
import type { BatchOutcome, Emitted, JobSpec } from '@amqp-pipeline/producer';

/** Primes in [from, to] by a plain sieve of Eratosthenes (the oracle; fine up to ~10^8). */
export function sievePrimes(from: number, to: number): number[] {
  if (to < 2) return [];
  const composite = new Uint8Array(to + 1);
  const out: number[] = [];
  for (let i = 2; i <= to; i++) {
    if (composite[i]) continue;
    if (i >= from) out.push(i);
    for (let j = i * i; j <= to; j += i) composite[j] = 1;
  }
  return out;
}

/** Exact squares with BigInt, encoded as the protocol says: a number up to 2^53 - 1, else a digit string. */
export function exactSquares(from: number, to: number): (number | string)[] {
  const out: (number | string)[] = [];
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  for (let n = BigInt(from); n <= BigInt(to); n++) {
    const sq = n * n;
    out.push(sq <= max ? Number(sq) : sq.toString());
  }
  return out;
}

export interface RowFigures {
  row: string;
  attempted: number;
  confirmed: number;
  /** Expected results (job x kind) that arrived complete. */
  results: number;
  /** Confirmed, no result by the end of the drain. */
  lost: number;
  /** Results the producer dropped as belonging to no job (stats.unexpected). */
  unexpected: number;
  /** Replies the producer dropped as duplicates (stats.duplicates). */
  rawDuplicates: number;
  /** The same result (or part) emitted twice in the output (must be 0). */
  outputDuplicates: number;
  /** Deliveries the broker made again (from the services' logs). */
  redeliveries: number;
  /** Messages that reached pipeline.dead during the row. */
  deadLettered: number;
  /** Results that do not match the oracle (must be 0). */
  wrong: number;
  /** From the fault to the next result, ms (null: no fault or nothing after it). */
  recoverMs: number | null;
  seconds: number;
  notes: string;
}

type Expect = (result: Record<string, unknown>) => string | undefined;

interface Owed {
  id: string;
  kind: string;
  check: Expect;
  /** Parts by index, each counted as often as it was emitted. */
  parts: Map<number, { result: Record<string, unknown>; times: number }>;
  lastIndex: number | undefined;
  completeAt: number | undefined;
}

/** What the oracle says a job's result of one kind must be. */
export function oracleFor(job: JobSpec, kind: string, titles?: Record<string, string | { code: string }>): Expect {
  const body = job.body as { from?: number; to?: number; count?: boolean; url?: string };
  return (r) => {
    if (kind === 'title') {
      const want = titles?.[body.url ?? ''];
      if (want === undefined) return `no oracle for ${body.url}`;
      if (typeof want === 'string') return r.ok === true && r.title === want ? undefined : `title ${JSON.stringify(r.title ?? r.error)} != ${want}`;
      return r.ok === false && (r.error as { code: string }).code === want.code ? undefined : `expected error ${want.code}, got ${JSON.stringify(r)}`;
    }
    const { from = 0, to = 0 } = body;
    const list = kind === 'primes' ? sievePrimes(from, to) : exactSquares(from, to);
    if (r.ok !== true) return `not ok: ${JSON.stringify(r.error)}`;
    const got = r[kind] as unknown[];
    if (got.length !== list.length) return `${kind} ${from}..${to}: ${got.length} values, expected ${list.length}`;
    for (let i = 0; i < list.length; i++) if (got[i] !== list[i]) return `${kind} ${from}..${to}: value ${i} is ${String(got[i])}, expected ${String(list[i])}`;
    return undefined;
  };
}

export class Ledger {
  readonly row: string;
  readonly started = Date.now();
  attempted = 0;
  confirmed = 0;
  private readonly owed = new Map<string, Owed>();
  private readonly emittedAt: number[] = [];
  private faultAt: number | undefined;
  private readonly stats = { duplicates: 0, unexpected: 0 };
  redeliveries = 0;
  deadLettered = 0;
  notes: string[] = [];
  /** Measured recovery times (e.g. from a kill to the restarted service's first job), ms. */
  recoveries: number[] = [];
  private waiters: (() => void)[] = [];

  constructor(row: string) {
    this.row = row;
  }

  /** Registers the jobs of a batch (ids are `<batch>.<index>`). */
  expect(batch: string, jobs: JobSpec[], titles?: Record<string, string | { code: string }>): void {
    this.attempted += jobs.length;
    jobs.forEach((job, i) => {
      for (const kind of job.kinds) {
        const id = `${batch}.${i}`;
        this.owed.set(`${id}:${kind}`, { id, kind, check: oracleFor(job, kind, titles), parts: new Map(), lastIndex: undefined, completeAt: undefined });
      }
    });
  }

  /** Every result the producer emits goes through here (onResult). */
  record = (e: Emitted): void => {
    if (e.type !== 'result') return;
    const r = e.result as unknown as Record<string, unknown>;
    const o = this.owed.get(`${e.id}:${r.kind as string}`);
    const now = Date.now();
    this.emittedAt.push(now);
    if (!o) {
      this.notes.push(`emitted a result for unknown ${e.id}:${String(r.kind)}`);
      return;
    }
    const part = (r.part as { index: number; last: boolean } | undefined) ?? { index: 0, last: true };
    const prev = o.parts.get(part.index);
    if (prev) prev.times++;
    else o.parts.set(part.index, { result: r, times: 1 });
    if (part.last) o.lastIndex = part.index;
    if (o.completeAt === undefined && o.lastIndex !== undefined && o.parts.size === o.lastIndex + 1) o.completeAt = now;
    for (const w of this.waiters.splice(0)) w();
  };

  /** Adds a producer outcome's stats (a row may use several: submit, then collect). */
  addStats(outcome: Pick<BatchOutcome, 'stats'> | undefined): void {
    if (!outcome) return;
    this.stats.duplicates += outcome.stats.duplicates;
    this.stats.unexpected += outcome.stats.unexpected;
  }

  markFault(): void {
    this.faultAt ??= Date.now();
  }

  get expected(): number {
    return this.owed.size;
  }

  get complete(): number {
    let n = 0;
    for (const o of this.owed.values()) if (o.completeAt !== undefined) n++;
    return n;
  }

  /** When each emitted result (or part) reached the producer's output. */
  get emittedTimes(): readonly number[] {
    return this.emittedAt;
  }

  get emitted(): number {
    return this.emittedAt.length;
  }

  /** Resolves once `n` results are complete (or rejects after timeoutMs). */
  async waitForComplete(n: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.complete < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.row}: ${this.complete} of ${n} results after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The jobs still without a complete result: `<id>:<kind>` and the part indexes seen. */
  missingDetail(): string[] {
    const out: string[] = [];
    for (const o of this.owed.values()) {
      if (o.completeAt === undefined) out.push(`${o.id}:${o.kind} parts=[${[...o.parts.keys()].join(',')}]`);
    }
    return out;
  }

  figures(): RowFigures {
    let results = 0;
    let lost = 0;
    let outputDuplicates = 0;
    let wrong = 0;
    const wrongSamples: string[] = [];
    for (const o of this.owed.values()) {
      for (const p of o.parts.values()) outputDuplicates += p.times - 1;
      if (o.completeAt === undefined) {
        lost++;
        continue;
      }
      results++;
      const indexes = [...o.parts.keys()].sort((a, b) => a - b);
      const first = o.parts.get(indexes[0] as number)?.result ?? {};
      const merged: Record<string, unknown> = { ...first };
      if (first.ok === true && (o.kind === 'primes' || o.kind === 'squares') && Array.isArray(first[o.kind])) {
        merged[o.kind] = indexes.flatMap((i) => o.parts.get(i)?.result[o.kind] as unknown[]);
      }
      const problem = o.check(merged);
      if (problem) {
        wrong++;
        if (wrongSamples.length < 3) wrongSamples.push(problem);
      }
    }
    // Recovery: the slowest measured one, else from the fault to the next result the producer emitted.
    const after = this.faultAt === undefined ? undefined : this.emittedAt.find((t) => t >= (this.faultAt as number));
    const emittedRecovery = after === undefined || this.faultAt === undefined ? null : after - this.faultAt;
    const notes = [...this.notes, ...wrongSamples.map((w) => `wrong: ${w}`)];
    return {
      row: this.row,
      attempted: this.attempted,
      confirmed: this.confirmed,
      results,
      lost,
      unexpected: this.stats.unexpected,
      rawDuplicates: this.stats.duplicates,
      outputDuplicates,
      redeliveries: this.redeliveries,
      deadLettered: this.deadLettered,
      wrong,
      recoverMs: this.recoveries.length ? Math.max(...this.recoveries) : emittedRecovery,
      seconds: Math.round((Date.now() - this.started) / 100) / 10,
      notes: notes.join('; '),
    };
  }
}

/** Collects each row's figures; prints them as a table at the end of the file. */
export class Report {
  private readonly rows: RowFigures[] = [];

  add(f: RowFigures): RowFigures {
    this.rows.push(f);
    const file = process.env.FAULTS_REPORT;
    if (file) appendFileSync(file, `${JSON.stringify(f)}\n`);
    return f;
  }

  print(title: string): void {
    if (this.rows.length === 0) return;
    console.log(`\n${title}`);
    console.table(this.rows.map(({ notes, ...f }) => ({ ...f, notes: notes.slice(0, 80) })));
  }
}
