import { MANIFEST_TYPE, ManifestSchema, ResultSchema, type Manifest, type Result, type ResultKind } from '@amqp-pipeline/shared';
import type { ConsumeMessage } from 'amqplib';

/** A result matched to its job. */
export interface CollectedResult {
  batch: string;
  /** Correlation id of the job. */
  id: string;
  /** What the job asked for: `{from, to}` or `{url}`. */
  input: Record<string, unknown>;
  result: Result;
}

export interface CollectorStats {
  /** Results accepted (after de-duplication). */
  received: number;
  /** Results dropped because the same job and kind was already answered (redeliveries). */
  duplicates: number;
  /** Messages dropped because they match no job of this batch or are not valid results. */
  unexpected: number;
}

export interface MissingResult {
  id: string;
  kind: ResultKind;
  input: Record<string, unknown>;
}

/**
 * Matches replies to the jobs of one batch by correlation id and result kind,
 * drops duplicates and strangers, and knows when every expected result is in.
 * Pure bookkeeping: it never touches the broker.
 */
export class BatchCollector {
  readonly batch: string;
  readonly stats: CollectorStats = { received: 0, duplicates: 0, unexpected: 0 };
  private expected: Map<string, { kinds: Set<ResultKind>; input: Record<string, unknown> }> | undefined;
  private readonly seen = new Set<string>();
  /** Results that arrived before the manifest told us what to expect. */
  private early: { id: string; result: Result }[] = [];
  private readonly onResult: (r: CollectedResult) => void;

  constructor(batch: string, onResult: (r: CollectedResult) => void, manifest?: Manifest) {
    this.batch = batch;
    this.onResult = onResult;
    if (manifest) this.expect(manifest);
  }

  /** True once the jobs are known and every one of their results has arrived. */
  get complete(): boolean {
    return this.expected !== undefined && this.stats.received === this.expectedCount;
  }

  get knowsJobs(): boolean {
    return this.expected !== undefined;
  }

  /** Jobs in the batch (0 until the manifest is known). */
  get jobCount(): number {
    return this.expected?.size ?? 0;
  }

  get expectedCount(): number {
    let n = 0;
    for (const job of this.expected?.values() ?? []) n += job.kinds.size;
    return n;
  }

  /** Feeds one message from the reply queue. */
  accept(msg: Pick<ConsumeMessage, 'content' | 'properties'>): void {
    if (msg.properties.type === MANIFEST_TYPE) {
      const manifest = ManifestSchema.safeParse(safeJson(msg.content));
      if (manifest.success && manifest.data.batch === this.batch) {
        if (!this.expected) this.expect(manifest.data);
      } else {
        this.stats.unexpected++;
      }
      return;
    }
    const id = String(msg.properties.correlationId ?? '');
    const parsed = ResultSchema.safeParse(safeJson(msg.content));
    if (!parsed.success || !id.startsWith(`${this.batch}.`)) {
      this.stats.unexpected++;
      return;
    }
    if (!this.expected) {
      this.early.push({ id, result: parsed.data });
      return;
    }
    this.record(id, parsed.data);
  }

  /** Results still outstanding (only meaningful once the jobs are known). */
  missing(): MissingResult[] {
    const out: MissingResult[] = [];
    for (const [id, job] of this.expected ?? []) {
      for (const kind of job.kinds) if (!this.seen.has(`${id}:${kind}`)) out.push({ id, kind, input: job.input });
    }
    return out;
  }

  /** Count of results that arrived but could not be matched yet (no manifest). */
  get unmatched(): number {
    return this.early.length;
  }

  /** Gives up on learning the jobs: reports what arrived, as it is. */
  flushUnmatched(): void {
    for (const { id, result } of this.early.splice(0)) {
      const key = `${id}:${result.kind}`;
      if (this.seen.has(key)) {
        this.stats.duplicates++;
        continue;
      }
      this.seen.add(key);
      this.stats.received++;
      this.onResult({ batch: this.batch, id, input: {}, result });
    }
  }

  private expect(manifest: Manifest): void {
    this.expected = new Map(manifest.jobs.map((j) => [j.id, { kinds: new Set(j.kinds), input: j.input }]));
    for (const { id, result } of this.early.splice(0)) this.record(id, result);
  }

  private record(id: string, result: Result): void {
    const job = this.expected?.get(id);
    if (!job || !job.kinds.has(result.kind)) {
      this.stats.unexpected++;
      return;
    }
    const key = `${id}:${result.kind}`;
    if (this.seen.has(key)) {
      this.stats.duplicates++;
      return;
    }
    this.seen.add(key);
    this.stats.received++;
    this.onResult({ batch: this.batch, id, input: job.input, result });
  }
}

function safeJson(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
}
