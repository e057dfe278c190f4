import {
  AckBatcher,
  ErrorCodes,
  PipelineError,
  endSpan,
  isPipelineError,
  processSpan,
  publishSpan,
  tracing,
  ResultSchema,
  replyQueueName,
  ownedQueueId,
  within,
  type Config,
  type Logger,
  type Result,
  replyQueueType,
} from '@amqp-pipeline/shared/client';
import type { Channel, ConsumeMessage, Options, RecoveringChannelModel } from 'amqplib';
import { misfit, senderOf, senderProblem, type Senders } from './fit.js';
import { jobMessage, newBatchId, type JobSpec } from './jobs.js';

export interface SessionOptions {
  /** Longest wait for one call's result, ms, unless the call says otherwise (default 60 s). */
  timeoutMs?: number;
}

export interface CallOptions {
  /** Longest wait for this call's result, ms. */
  timeoutMs?: number;
  /** Stops waiting early: the call rejects, a result that comes later is dropped. */
  signal?: AbortSignal;
}

/** What a session needs from its client. */
export interface SessionDeps {
  model: RecoveringChannelModel;
  config: Config;
  log: Logger;
  /** Who may answer (fit.ts); the producer's own user names the queue. */
  senders: Senders;
  /** Publishes with a confirm, again on a new channel if the connection drops, until `deadline`. */
  publish(exchange: string, routingKey: string, body: Buffer, options: Options.Publish, deadline: number): Promise<void>;
  /** True once the client is closing: its connection will not come back. */
  closing(): boolean;
  /** Told when the session is closed. */
  closed(session: PipelineSession): void;
}

interface Pending {
  /** The job sent, and the kind of result it brings: a result must fit them (fit.ts). */
  input: Record<string, unknown>;
  kind: string;
  resolve(r: Result): void;
  reject(err: Error): void;
  /** A list result in parts: the parts so far, by index, and the last index once seen. */
  parts?: Map<number, Result>;
  lastIndex?: number;
}

/** Unacknowledged replies a session takes at once. */
const SESSION_PREFETCH = 256;
const DEFAULT_CALL_TIMEOUT_MS = 60_000;
const CLOSE_WAIT_MS = 5_000;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Request/response over one long-lived reply queue, for programs that send jobs one at a
 * time and wait for each (a web handler, a script in a loop). A batch (`submit`) declares a
 * reply queue, a manifest and a consumer, and removes them at its end: a dozen broker round
 * trips around even one job. A session pays that once, when it opens; after that a call is
 * the job's own trip: publish (confirmed), the service's work and reply, the reply delivered.
 *
 * The queue (`pipeline.replies.<user>:session-<id>`) is durable and expires like a batch's, so a
 * result survives a connection drop: the session consumes again once the connection is back
 * and the waiting call gets it. Results are matched by correlation id; a duplicate, or a
 * result whose call gave up, is acknowledged and dropped. There is no manifest: `collect`
 * does not apply to a session, whose results belong to the process waiting for them.
 */
export class PipelineSession {
  readonly id: string;
  readonly replyQueue: string;
  private channel: Channel | undefined;
  private acks: AckBatcher | undefined;
  private consumerTag: string | undefined;
  private readonly pending = new Map<string, Pending>();
  /** Calls that gave up (timeout, abort, close) whose results have not come yet. */
  private readonly abandonedIds = new Set<string>();
  private next = 0;
  private closed = false;
  private readonly timeoutMs: number;

  private constructor(
    private readonly deps: SessionDeps,
    opts: SessionOptions,
  ) {
    this.id = `session-${newBatchId()}`;
    this.replyQueue = replyQueueName(ownedQueueId(deps.senders.own, this.id));
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  /** Declares the session's reply queue and starts consuming it. */
  static async open(deps: SessionDeps, opts: SessionOptions = {}): Promise<PipelineSession> {
    const session = new PipelineSession(deps, opts);
    await session.consume();
    return session;
  }

  /** Calls waiting for their result. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Calls that gave up whose results have not come (yet): when they come, they are dropped. */
  get abandoned(): number {
    return this.abandonedIds.size;
  }

  /**
   * Publishes one job and resolves with its result, `ok: true` or `ok: false` as the service
   * answered (errors are data, as on the wire). A list that came in parts is joined. Rejects
   * with PIPELINE_ERR_TIMEOUT when no result came in time, and with the publish's error when
   * the broker refused the job.
   */
  async call(job: JobSpec, opts: CallOptions = {}): Promise<Result> {
    if (this.closed) throw new PipelineError(ErrorCodes.CHANNEL_CLOSED, 'the session is closed');
    if (job.kinds.length !== 1) {
      throw new PipelineError(ErrorCodes.INVALID_MESSAGE, `a call takes a job with one result; this one brings ${job.kinds.join(' and ')}: call once per kind`);
    }
    const id = `${this.id}.${this.next++}`;
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => fail(new PipelineError(ErrorCodes.TIMEOUT, `call ${id} abandoned (aborted)`));
    const cleanup = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      this.pending.delete(id);
    };
    let fail!: (err: Error) => void;
    // Registered before the publish: the result may come before the publish's confirm.
    const result = new Promise<Result>((resolve, reject) => {
      fail = (err) => {
        cleanup();
        this.abandonedIds.add(id);
        reject(err);
      };
      this.pending.set(id, {
        input: job.body,
        kind: job.kinds[0] as string,
        resolve: (r) => {
          cleanup();
          resolve(r);
        },
        reject: fail,
      });
    });
    timer = setTimeout(() => fail(new PipelineError(ErrorCodes.TIMEOUT, `no result for ${id} within ${timeoutMs} ms (a result that comes later is dropped)`)), timeoutMs);
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const message = jobMessage(job, id, this.replyQueue);
    const t = tracing();
    // With tracing on: a `publish` span, a child of the caller's active span (if any), its context in the job's headers.
    const traced = t ? publishSpan(t, job.exchange, job.routingKey, message.options) : undefined;
    const options = traced ? { ...message.options, headers: { ...message.options.headers, ...traced.headers } } : message.options;
    this.deps
      .publish(job.exchange, job.routingKey, message.content, options, deadline)
      .then(
        () => traced?.span.end(),
        (err: unknown) => {
          if (traced) endSpan(t!, traced.span, 'failed', isPipelineError(err) ? err.code : 'Error');
          throw err;
        },
      )
      .catch((err: unknown) => {
        fail(err instanceof Error ? err : new Error(String(err)));
        this.abandonedIds.delete(id); // not published: no result will come
      });
    return result;
  }

  /**
   * Stops consuming; calls still waiting reject. The reply queue is deleted if it is empty and
   * no result is still to come; else it is left to expire (REPLY_QUEUE_TTL_MS), so results of
   * calls that gave up land there rather than in pipeline.dead. Bounded: a dead connection
   * does not hold it up.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.deps.closed(this);
    for (const p of [...this.pending.values()]) p.reject(new PipelineError(ErrorCodes.CHANNEL_CLOSED, 'the session was closed before the result came'));
    const ch = this.channel;
    this.channel = undefined;
    if (!ch) return;
    await within(
      (async () => {
        if (this.consumerTag) await ch.cancel(this.consumerTag).catch(() => {});
        this.acks?.flush();
        if (this.abandonedIds.size === 0) await ch.deleteQueue(this.replyQueue, { ifEmpty: true }).catch(() => {});
        await ch.close().catch(() => {});
      })(),
      CLOSE_WAIT_MS,
    );
  }

  /** (Re)opens the reply channel: declares the queue (again, if it expired) and consumes. */
  private async consume(): Promise<void> {
    const { model, config, log } = this.deps;
    const ch = await model.createChannel();
    ch.on('error', (err: Error) => log.warn({ err, session: this.id }, 'session channel error'));
    ch.on('close', () => {
      if (this.channel !== ch) return;
      this.channel = undefined;
      if (this.closed) return;
      log.warn({ session: this.id, waiting: this.pending.size }, 'session channel lost; consuming again when the connection is back');
      void this.reconsume();
    });
    try {
      await ch.assertQueue(this.replyQueue, { durable: true, arguments: { 'x-queue-type': replyQueueType(config), 'x-expires': config.REPLY_QUEUE_TTL_MS } });
      await ch.prefetch(SESSION_PREFETCH);
      const acks = new AckBatcher(ch, (err) => log.debug({ err }, 'session replies not acknowledged (channel closed); they come again'));
      this.channel = ch;
      this.acks = acks;
      const { consumerTag } = await ch.consume(this.replyQueue, (msg) => this.onReply(msg, acks), { noAck: false });
      this.consumerTag = consumerTag;
    } catch (err) {
      if (this.channel === ch) this.channel = undefined;
      await ch.close().catch(() => {});
      throw err;
    }
  }

  private async reconsume(): Promise<void> {
    while (!this.closed) {
      if (this.deps.closing()) return;
      try {
        await this.consume();
        this.deps.log.info({ session: this.id }, 'session consuming again');
        return;
      } catch (err) {
        this.deps.log.debug({ err }, 'session channel not back yet');
        await delay(250);
      }
    }
  }

  private onReply(msg: ConsumeMessage | null, acks: AckBatcher): void {
    const t = msg ? tracing() : undefined;
    if (!t || !msg) return this.take(msg, acks);
    // A `process <session queue>` span per reply, a child of the service's reply publish.
    const { span } = processSpan(t, this.replyQueue, msg);
    try {
      this.take(msg, acks);
    } finally {
      endSpan(t, span, 'received');
    }
  }

  private take(msg: ConsumeMessage | null, acks: AckBatcher): void {
    if (msg === null) {
      // The queue was deleted under us: declare it again (results already in it are gone).
      this.channel?.close().catch(() => {});
      return;
    }
    acks.delivered(msg);
    acks.ack(msg);
    const id = String(msg.properties.correlationId ?? '');
    const waiting = this.pending.get(id);
    let body: unknown;
    try {
      body = JSON.parse(msg.content.toString('utf8'));
    } catch {
      body = undefined;
    }
    const parsed = ResultSchema.safeParse(body);
    if (!waiting || !parsed.success) {
      if (parsed.success) this.abandonedIds.delete(id);
      this.deps.log.debug({ correlationId: id, valid: parsed.success }, 'session reply not waited for (a duplicate, late, or not a result); dropped');
      return;
    }
    // Only a result its job can have produced, from its service, is taken (see fit.ts); the call keeps waiting.
    const problem =
      senderProblem(this.deps.senders, parsed.data.kind, msg) ??
      (parsed.data.kind === waiting.kind ? misfit(waiting.input, parsed.data) : `a ${parsed.data.kind} result for a ${waiting.kind} job`);
    if (problem) {
      this.deps.log.warn({ correlationId: id, ...senderOf(msg), reason: problem }, 'unexpected session reply refused: not from its service, or it does not fit its job');
      return;
    }
    this.abandonedIds.delete(id);
    const { job: _echo, ...rest } = parsed.data;
    const result = rest as Result;
    if (!('part' in result) || result.part === undefined) {
      waiting.resolve(result);
      return;
    }
    waiting.parts ??= new Map();
    waiting.parts.set(result.part.index, result);
    if (result.part.last) waiting.lastIndex = result.part.index;
    if (waiting.lastIndex === undefined || waiting.parts.size !== waiting.lastIndex + 1) return;
    waiting.resolve(joinParts(waiting.parts, waiting.lastIndex));
  }
}

/** A list result from its parts 0..last: the lists concatenated, without `part`. */
function joinParts(parts: Map<number, Result>, last: number): Result {
  const first = parts.get(0)!;
  if (first.ok && 'primes' in first) {
    const primes: number[] = [];
    for (let i = 0; i <= last; i++) {
      const p = parts.get(i);
      if (p && 'primes' in p) for (const v of p.primes) primes.push(v);
    }
    return { ok: true, kind: 'primes', primes };
  }
  if (first.ok && 'squares' in first) {
    const squares: Array<number | string> = [];
    for (let i = 0; i <= last; i++) {
      const p = parts.get(i);
      if (p && 'squares' in p) for (const v of p.squares) squares.push(v);
    }
    return { ok: true, kind: 'squares', squares };
  }
  return first;
}
