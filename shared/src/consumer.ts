import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import os from 'node:os';
import type { Channel, ChannelModel, ConsumeMessage, RecoveringChannelModel } from 'amqplib';
import type { z } from 'zod';
import { connectBroker, connectionNameFor, tlsFiles } from './broker.js';
import { brokerUser, replyQueueType, type Config } from './config.js';
import { ErrorCodes, PipelineError, isPipelineError, toWireError } from './errors.js';
import type { Logger } from './log.js';
import { RESULT_TYPE, type JobEcho, type Result, type ResultKind } from './messages/result.js';
import { BUNDLED_JOB_TYPES, BundleSchema, MAX_BUNDLE_JOBS, MAX_BUNDLE_NUMBERS, RESULTS_BUNDLE_TYPE, isBundleType } from './messages/bundle.js';
import { startHealthServer, type HealthServer } from './health.js';
import { ServiceMetrics, type JobOutcome } from './metrics.js';
import { AckBatcher } from './acks.js';
import { within } from './within.js';
import { Attr, endSpan, flushTracing, inSpan, processSpan, publishSpan, settleSpan, startTracing, tracing } from './tracing.js';
import { Publisher } from './publisher.js';
import { DELIVERY_LIMIT, Exchanges, REDELIVERIES_HEADER, RETRY_TIERS, declareTopology, replyToProblem, retryQueueName, topologyFor, withQueueType, type QueueSpec } from './topology.js';

/** Headers put on a dead-lettered message: why it was refused, and by whom. */
/** Headers of a job waiting for another attempt. */
export const RetryHeaders = {
  /** Attempts made so far (all failed). */
  attempts: 'x-pipeline-attempts',
  /** Code and message of the last failure. */
  lastErrorCode: 'x-pipeline-last-error-code',
  lastError: 'x-pipeline-last-error',
} as const;

export const DeadLetterHeaders = {
  reason: 'x-pipeline-reason',
  code: 'x-pipeline-error-code',
  service: 'x-pipeline-service',
  queue: 'x-pipeline-queue',
  exchange: 'x-pipeline-original-exchange',
  routingKey: 'x-pipeline-original-routing-key',
  /** On a result whose reply queue was gone: true when the job had been delivered before. */
  redelivered: 'x-pipeline-redelivered',
} as const;

export interface JobContext {
  log: Logger;
  correlationId: string;
  /** 1 on the first attempt, then 2, 3, ... after failures retried through the delay queues. */
  attempt: number;
  /** Aborted when the service is shutting down and the grace period has run out. */
  signal: AbortSignal;
}

const LIST = Symbol('pipeline.list-output');

/** A list result that the runner sends in ordered parts, each under RESULT_PART_BYTES. */
export interface ListOutput {
  readonly [LIST]: true;
  /** The result field holding the list, e.g. `primes`. */
  readonly field: string;
  /** The list, in order, as chunks of any size (numbers, or strings of digits). */
  readonly chunks: Iterable<ArrayLike<number | string>> | AsyncIterable<ArrayLike<number | string>>;
}

/**
 * Wraps a (possibly huge) list so the runner can stream it: the result is one message
 * when it fits in RESULT_PART_BYTES, otherwise parts `{..., "part": {"index", "last"}}`.
 */
export function listOutput(field: string, chunks: ListOutput['chunks']): ListOutput {
  return { [LIST]: true, field, chunks };
}

function isListOutput(v: unknown): v is ListOutput {
  return typeof v === 'object' && v !== null && LIST in v;
}

/** What a service is: its queue, the kind of result it produces, its input schema and its work. */
export interface ServiceDefinition<Job> {
  /** Service name: logs, connection name, consumer tag. */
  service: string;
  queue: QueueSpec;
  kind: ResultKind;
  schema: z.ZodType<Job>;
  /**
   * Does the job. Returns the result's value fields (e.g. `{ primes: [...] }`);
   * throws a PipelineError for an `ok: false` result. Errors marked `retryable`
   * (and unexpected errors) are retried up to the delivery limit first.
   */
  handle(job: Job, ctx: JobContext): Promise<Record<string, unknown> | ListOutput> | Record<string, unknown> | ListOutput;
  /**
   * For CPU-bound services: size the prefetch by how long jobs wait in this service's hands.
   * The prefetch (PREFETCH is then the most) grows while jobs are done as soon as they come
   * (small jobs: many in flight keep the broker round trips overlapped) and shrinks while
   * they queue up (large jobs: what one replica holds, another one cannot take).
   */
  adaptivePrefetch?: AdaptivePrefetch;
  /**
   * What every result of a job echoes of it (`job`: `{from, to}`, `{url}`), so that a producer
   * can tell its own job's answer from another job's (docs/protocol.md).
   */
  echo?: (job: Job) => JobEcho;
  /**
   * Takes several jobs in one message (docs/protocol.md "Several jobs in one message"). Without
   * it a bundle is dead-lettered: the service takes one job a message.
   */
  bundle?: {
    /** The `type` of a message carrying several of this service's jobs (RANGE_BUNDLE_TYPE, URL_BUNDLE_TYPE). */
    type: string;
    /** Most jobs in one bundle (default MAX_BUNDLE_JOBS). */
    maxJobs?: number;
    /** How many numbers a job covers: a bundle's jobs may cover MAX_BUNDLE_NUMBERS in all. */
    numbers?(job: Job): number;
    /** Runs a bundle's jobs all at once (pages to fetch), not one after another (a sieve). */
    concurrent?: boolean;
  };
}

/** The few log calls a job makes (its logger is made only when first used). */
interface JobLog {
  error(obj: object, text: string): void;
  warn(obj: object, text: string): void;
  debug(obj: object, text: string): void;
}

/** A job read out of a bundle: its id, and the job or what is wrong with it. */
interface BundledJob<Job> {
  id: string;
  /** The job's fields as sent (without its id): what goes to a retry tier if it is retried alone. */
  fields: Record<string, unknown>;
  job?: Job;
  echo?: JobEcho | undefined;
  problem?: string;
}

export interface AdaptivePrefetch {
  /** Fewest jobs held (e.g. the worker threads + 1, so none of them idles). */
  min: number;
  /** How long a job may stay in the service's hands (delivery to ack), ms; default 250. */
  targetHoldMs?: number;
}

export interface ConsumerOptions {
  config: Config;
  log: Logger;
  /** Messages held unacknowledged at once; defaults to config.PREFETCH, then 16. */
  prefetch?: number;
}

export interface RunningConsumer {
  /** True while connected and consuming; false while reconnecting or after close. */
  readonly ready: boolean;
  /** Jobs being handled right now. */
  readonly inFlight: number;
  /** The service's metrics (also served on /metrics when HEALTH_PORT is set). */
  readonly metrics: ServiceMetrics;
  /** Port of /healthz, /readyz and /metrics, if they are on. */
  readonly healthPort: number | undefined;
  /**
   * Stops consuming, lets in-flight jobs finish within SHUTDOWN_GRACE_MS (after that
   * they are handed back to the broker unacknowledged), then closes the connection.
   */
  close(): Promise<void>;
}

interface Session {
  model: ChannelModel;
  channel: Channel;
  publisher: Publisher;
  /** Every ack and nack of `channel` goes through here (acks batched per turn of the event loop). */
  acks: AckBatcher;
  consumerTag: string;
  /**
   * Careful mode: prefetch 1 and one job at a time. Every session starts careful, and goes
   * back to it when a redelivered job shows up: a job that kills the service then takes only
   * itself down (the broker counts a delivery against every job the dead consumer held).
   */
  careful: boolean;
  /** Serialises jobs in careful mode. */
  gate: Promise<unknown>;
  /**
   * Serialises results sent in several parts: one list at a time, whole, so that parts of
   * different jobs do not interleave, and the next one the earliest delivered of those ready.
   * A producer printing lists in order holds back every part that comes before its turn;
   * interleaved, it held a part of every job in flight (80 MB for 10^7 primes).
   */
  lane: { busy: boolean; waiting: Array<{ tag: number; go: () => void }> };
  /** Consumer changes (mode switches, prefetch resizes), one after another. */
  ops: Promise<void>;
  resizing: boolean;
  subscriptions: number;
  /** Every consumer tag of this session (all are cancelled on shutdown). */
  tags: string[];
  /** The full-prefetch consumer, while not careful. */
  bigTag: string | undefined;
  /** Its prefetch. */
  bigPrefetch: number;
  /** Moving average of the time from delivery to the handler's answer, ms. */
  holdMs: number;
  /** Jobs done, and when, at the last prefetch resize. */
  resizedAt: { done: number; at: number };
  done: number;
}

/** Waits for the lane (see Session.lane); the earliest delivery waiting gets it next. */
function takeLane(lane: Session['lane'], tag: number): Promise<void> {
  if (!lane.busy) {
    lane.busy = true;
    return Promise.resolve();
  }
  return new Promise<void>((go) => lane.waiting.push({ tag, go }));
}

function leaveLane(lane: Session['lane']): void {
  if (lane.waiting.length === 0) {
    lane.busy = false;
    return;
  }
  let next = 0;
  for (let i = 1; i < lane.waiting.length; i++) if (lane.waiting[i]!.tag < lane.waiting[next]!.tag) next = i;
  lane.waiting.splice(next, 1)[0]!.go();
}

/**
 * Runs a service: connects (with recovery), declares the topology, consumes its queue with
 * manual acks and a bounded prefetch, validates every message, calls the handler, publishes
 * the result to `reply_to` through a confirm channel and acks the job only after that
 * publish is confirmed. Messages that cannot be jobs are dead-lettered with the reason.
 */
export async function runConsumer<Job>(def: ServiceDefinition<Job>, opts: ConsumerOptions): Promise<RunningConsumer> {
  const { config } = opts;
  // The service's work queue as this deployment declares it (WORK_QUEUE_TYPE).
  const queue = withQueueType(def.queue, config.WORK_QUEUE_TYPE);
  /** A classic queue counts no deliveries: this service counts redeliveries itself (see recount). */
  const countsOwnRedeliveries = config.WORK_QUEUE_TYPE === 'classic';
  const log = opts.log.child({ queue: queue.name });
  const prefetch = opts.prefetch ?? config.PREFETCH ?? 16;
  const userId = brokerUser(config);
  // The prefetch is the most jobs held in all: the prefetch-1 consumer's one, plus the full
  // consumer's prefetch - 1 (so an adaptive prefetch is never below 2 while that one exists).
  const adaptive = def.adaptivePrefetch && prefetch > 1 ? { min: Math.min(prefetch, Math.max(2, def.adaptivePrefetch.min)), targetHoldMs: def.adaptivePrefetch.targetHoldMs ?? 250 } : undefined;
  /** Where an adaptive prefetch starts: the full one if it is small, else a modest one that grows within a second. */
  const initialPrefetch = adaptive ? Math.max(adaptive.min, Math.min(prefetch, 32)) : prefetch;
  const connectionName = connectionNameFor(def.service);
  const inFlight = new Set<Promise<void>>();
  const shutdown = new AbortController();
  // Every job in flight may listen for shutdown on this one signal (the title fetcher does, once
  // per fetch), so it has as many listeners as the prefetch, not a leak: without this, Node
  // prints a MaxListenersExceededWarning to stderr at the 11th, outside the JSON log.
  setMaxListeners(0, shutdown.signal);
  let session: Session | undefined;
  let stopping = false;
  const metrics = new ServiceMetrics(def.service);
  const setSession = (next: Session | undefined) => {
    session = next;
    metrics.setConsuming(next !== undefined && !stopping);
  };

  const setup = async (model: ChannelModel): Promise<void> => {
    const channel = await model.createConfirmChannel();
    channel.on('error', (err: Error) => log.warn({ err }, 'channel error'));
    channel.on('handler-error', (err: Error, event: string) => log.error({ err, event }, 'channel event handler threw'));
    await declareTopology(channel, topologyFor(queue, replyQueueType(config)));
    const publisher = new Publisher(channel);
    const consumerTag = `${def.service}@${os.hostname()}#${process.pid}.${randomUUID().slice(0, 8)}`;
    const current: Session = {
      model,
      channel,
      publisher,
      acks: new AckBatcher(channel, (err) => log.warn({ err }, 'could not acknowledge finished jobs (channel closed); the broker will redeliver them')),
      consumerTag,
      careful: true,
      gate: Promise.resolve(),
      lane: { busy: false, waiting: [] },
      ops: Promise.resolve(),
      resizing: false,
      subscriptions: 0,
      tags: [],
      bigTag: undefined,
      bigPrefetch: initialPrefetch,
      holdMs: 0,
      resizedAt: { done: 0, at: Date.now() },
      done: 0,
    };
    channel.on('close', () => {
      if (session === current) setSession(undefined);
      // A channel can die while its connection lives on (e.g. a protocol error):
      // close the connection too, so recovery rebuilds everything.
      if (!stopping) model.close().catch(() => {});
    });
    await subscribe(current);
    setSession(current);
    log.info({ prefetch, consumerTag: current.consumerTag }, 'consuming');
  };

  /**
   * Adds a consumer to the session's channel with the given prefetch. A session keeps a
   * prefetch-1 consumer all along and adds a full one while nothing is crashing: adding and
   * cancelling the big one switches modes without touching the small one. The two together
   * hold at most the session's prefetch (`bigPrefetch`): the big one takes `bigPrefetch - 1`.
   */
  async function addConsumer(s: Session, n: number): Promise<string> {
    await s.channel.prefetch(n);
    const tag = `${s.consumerTag}~${++s.subscriptions}`;
    await s.channel.consume(queue.name, (msg) => onDelivery(s, msg), {
      noAck: false,
      consumerTag: tag,
      arguments: { 'x-pipeline-service': def.service },
    });
    s.tags.push(tag);
    return tag;
  }

  async function subscribe(s: Session): Promise<void> {
    await addConsumer(s, 1);
  }

  /**
   * Careful: cancel the full-prefetch consumer. Normal: add one. The mode flips at once (it
   * gates the next delivery); the consumer changes run one after another on `s.ops`, each
   * bringing the channel to the mode wanted at that time.
   */
  function resubscribe(s: Session, careful: boolean): Promise<void> {
    if (s.careful === careful || stopping) return s.ops;
    s.careful = careful;
    s.ops = s.ops.then(async () => {
      try {
        if (s.careful && s.bigTag) {
          const big = s.bigTag;
          s.bigTag = undefined;
          s.tags = s.tags.filter((t) => t !== big);
          await s.channel.cancel(big);
          log.info({ prefetch: 1 }, 'a redelivered job: one job at a time for now');
        } else if (!s.careful && !s.bigTag && s.bigPrefetch > 1 && !stopping) {
          s.bigTag = await addConsumer(s, s.bigPrefetch - 1);
          s.resizedAt = { done: s.done, at: Date.now() };
          log.info({ prefetch: s.bigPrefetch }, 'full speed');
        }
      } catch (err) {
        log.debug({ err }, 'could not switch consumer mode (channel closing?)');
      }
    });
    return s.ops;
  }

  /**
   * Adaptive prefetch: after enough jobs (twice the prefetch, or a second), compares how long
   * jobs waited in our hands with the target and, if the prefetch is off by 2x or more, swaps
   * the full consumer for one with the new prefetch (a consumer's prefetch cannot be changed
   * in place). Deliveries of the old one stay on the channel and are acked as usual.
   */
  function maybeResize(s: Session): void {
    if (!adaptive || s.careful || stopping || !s.bigTag || s.resizing) return;
    const since = s.done - s.resizedAt.done;
    if (since < 2 * s.bigPrefetch && Date.now() - s.resizedAt.at < 1000) return;
    const wanted = Math.round(s.bigPrefetch * (adaptive.targetHoldMs / Math.max(s.holdMs, 0.01)));
    const next = Math.max(adaptive.min, Math.min(prefetch, wanted));
    s.resizedAt = { done: s.done, at: Date.now() };
    if (next < 2 * s.bigPrefetch && next * 2 > s.bigPrefetch) return;
    s.resizing = true;
    s.ops = s.ops.then(async () => {
      const old = s.bigTag;
      try {
        if (s.careful || !old || stopping) return;
        const from = s.bigPrefetch;
        s.bigPrefetch = next;
        s.bigTag = await addConsumer(s, next - 1);
        s.tags = s.tags.filter((t) => t !== old);
        await s.channel.cancel(old);
        log.debug({ from, to: next, holdMs: Math.round(s.holdMs * 10) / 10 }, 'prefetch resized');
      } catch (err) {
        log.debug({ err }, 'could not resize the prefetch (channel closing?)');
      } finally {
        s.resizing = false;
      }
    });
  }

  function onDelivery(s: Session, msg: ConsumeMessage | null): void {
    if (msg === null) {
      log.warn('broker cancelled the consumer (queue deleted?); reconnecting');
      if (session === s) setSession(undefined);
      s.model.close().catch(() => {});
      return;
    }
    s.acks.delivered(msg);
    const suspect = msg.fields.redelivered || deliveryCount(msg) > 0;
    if (suspect && !s.careful) void resubscribe(s, true);
    const deliveredAt = performance.now();
    const run = async () => {
      const outcome = await handleDelivery(s, msg, deliveredAt);
      // A fresh job done without trouble: nothing is crashing us any more.
      if (s.careful && !suspect && outcome !== 'handed_back') void resubscribe(s, false);
      else if (outcome === 'ok') maybeResize(s);
    };
    const task = (s.careful || suspect ? (s.gate = s.gate.then(run, run)) : run()).finally(() => inFlight.delete(task));
    inFlight.add(task);
  }

  async function deadLetter(s: Session, msg: ConsumeMessage, code: string, reason: string): Promise<void> {
    const { properties, fields } = msg;
    tracing()?.api.trace.getActiveSpan()?.addEvent('dead-lettered', { [Attr.errorCode]: code, 'pipeline.reason': reason.slice(0, 500) });
    await s.publisher.publish(Exchanges.deadLetter.name, fields.routingKey, msg.content, {
      ...copiedProperties(properties),
      headers: {
        ...properties.headers,
        [DeadLetterHeaders.reason]: reason,
        [DeadLetterHeaders.code]: code,
        [DeadLetterHeaders.service]: def.service,
        [DeadLetterHeaders.queue]: queue.name,
        [DeadLetterHeaders.exchange]: fields.exchange,
        [DeadLetterHeaders.routingKey]: fields.routingKey,
      },
    });
  }

  /**
   * Parks a job in its retry tier: a copy with the attempt count raised waits there for its
   * delay, then comes back to the work queue. Returns the delay. `alone` is one job of a bundle
   * that goes there as a job alone in its message (the message's other properties kept).
   */
  async function retryLater(
    s: Session,
    msg: ConsumeMessage,
    attempt: number,
    err: unknown,
    alone?: { content: Buffer; correlationId: string; messageId: string; type: string },
  ): Promise<number> {
    const delays = config.RETRY_DELAYS_MS;
    const delayMs = delays[Math.min(attempt - 1, delays.length - 1)] as number;
    const tier = Math.min(attempt, RETRY_TIERS);
    const wire = toWireError(err);
    tracing()?.api.trace.getActiveSpan()?.addEvent('retry scheduled', { [Attr.errorCode]: wire.code, [Attr.attempt]: attempt, 'pipeline.retry.delay_ms': delayMs, ...(alone ? { [Attr.jobId]: alone.correlationId } : {}) });
    await s.publisher.publish('', retryQueueName(queue.name, tier), alone?.content ?? msg.content, {
      ...copiedProperties(msg.properties),
      ...(alone ? { correlationId: alone.correlationId, messageId: alone.messageId, type: alone.type } : {}),
      expiration: String(delayMs),
      headers: {
        ...withoutKeys(msg.properties.headers, 'x-delivery-count', REDELIVERIES_HEADER),
        [RetryHeaders.attempts]: attempt,
        [RetryHeaders.lastErrorCode]: wire.code,
        [RetryHeaders.lastError]: wire.message.slice(0, 1000),
      },
    });
    return delayMs;
  }

  /**
   * A classic work queue's redelivered job: publishes a copy to the work queue carrying how
   * often it has been delivered (REDELIVERIES_HEADER), then acks the original, so the count
   * survives the next crash and the job is parked at DELIVERY_LIMIT like on a quorum queue.
   * The copy is confirmed before the ack: a crash in between leaves two copies (the job runs
   * twice, its result is printed once), never none.
   */
  async function recount(s: Session, msg: ConsumeMessage, redeliveries: number): Promise<void> {
    await s.publisher.publish('', queue.name, msg.content, {
      ...copiedProperties(msg.properties),
      headers: { ...msg.properties.headers, [REDELIVERIES_HEADER]: redeliveries },
    });
    s.acks.ack(msg);
  }

  async function reply(s: Session, msg: ConsumeMessage, result: Result | Buffer, type: string = RESULT_TYPE): Promise<void> {
    const replyTo = msg.properties.replyTo as string;
    // The one place results are sent: never into a queue that is not a reply queue (parse()
    // has dead-lettered such a job with the reason already; no path sends it an answer).
    if (replyToProblem(replyTo)) return;
    const body = Buffer.isBuffer(result) ? result : Buffer.from(JSON.stringify(result));
    const options = {
      correlationId: msg.properties.correlationId as string,
      contentType: 'application/json',
      persistent: true,
      type,
      appId: def.service,
      // Signed with the service's broker user, which the broker checks (it refuses a user_id
      // that is not the connection's): a producer takes a kind's results only from its service.
      userId,
      timestamp: Math.floor(Date.now() / 1000),
    };
    try {
      const t = tracing();
      if (t) await tracedReply(t, s, replyTo, body, options, result);
      else await s.publisher.publish('', replyTo, body, options);
    } catch (err) {
      if (!(isPipelineError(err) && err.code === ErrorCodes.UNROUTABLE)) throw err;
      // The reply queue is gone (expired or deleted): keep the result where an operator can find it.
      // A redelivered job's result usually lands here after its batch was collected in full: the
      // job was done once, its result printed, and only its ack was lost (a connection or a node
      // died), so this copy is a late duplicate. The dead letter says so; it is kept all the same,
      // since an expired reply queue looks the same to the service.
      const redelivered = msg.fields.redelivered || deliveryCount(msg) > 0;
      log.warn(
        { replyTo, correlationId: options.correlationId, redelivered },
        redelivered
          ? 'reply queue does not exist; result dead-lettered (a redelivered job: most likely a late duplicate of a result already collected)'
          : 'reply queue does not exist; result dead-lettered',
      );
      await s.publisher.publish(Exchanges.deadLetter.name, replyTo, body, {
        ...options,
        headers: {
          [DeadLetterHeaders.reason]: `reply queue "${replyTo}" does not exist${redelivered ? ' (the job was redelivered: most likely a late duplicate of a result already collected)' : ''}`,
          [DeadLetterHeaders.redelivered]: redelivered,
          [DeadLetterHeaders.code]: ErrorCodes.UNROUTABLE,
          [DeadLetterHeaders.service]: def.service,
        },
      });
    }
  }

  /** The reply's publish in a `publish amq.default` span, its context in the reply's headers; a failure marks the process span. */
  async function tracedReply(t: NonNullable<ReturnType<typeof tracing>>, s: Session, replyTo: string, body: Buffer, options: Record<string, unknown>, result: Result | Buffer): Promise<void> {
    if (!Buffer.isBuffer(result) && !result.ok) {
      const processing = t.api.trace.getActiveSpan();
      processing?.setAttribute(Attr.errorType, result.error.code);
      processing?.setAttribute(Attr.errorCode, result.error.code);
      processing?.setStatus({ code: t.api.SpanStatusCode.ERROR, message: result.error.message.slice(0, 500) });
    }
    const { span, headers } = publishSpan(t, '', replyTo, { correlationId: options.correlationId, type: options.type }, { attributes: { [Attr.bodySize]: body.length } });
    try {
      await s.publisher.publish('', replyTo, body, { ...options, headers });
      span.end();
    } catch (err) {
      endSpan(t, span, 'failed', isPipelineError(err) ? err.code : 'Error');
      throw err;
    }
  }

  /**
   * Sends a list as one result if it fits in RESULT_PART_BYTES, else as ordered parts,
   * each confirmed before the next is sent. Items are numbers or digit strings (ASCII),
   * so string length is byte length.
   */
  async function replyList(s: Session, msg: ConsumeMessage, out: ListOutput, echo: JobEcho | undefined): Promise<number> {
    const head = `{"ok":true,"kind":${JSON.stringify(def.kind)},${echo ? `"job":${JSON.stringify(echo)},` : ''}${JSON.stringify(out.field)}:[`;
    const overhead = head.length + 48; // room for `],"part":{"index":N,"last":false}}`
    const budget = config.RESULT_PART_BYTES;
    let items: string[] = [];
    let size = overhead;
    let index = 0;
    /** True while this list holds the session's lane (from its first part of several). */
    let holding = false;
    const send = async (last: boolean) => {
      if (!holding) {
        await takeLane(s.lane, msg.fields.deliveryTag);
        holding = true;
      }
      await reply(s, msg, Buffer.from(`${head}${items.join(',')}],"part":{"index":${index},"last":${last}}}`));
    };
    const take = async (chunk: ArrayLike<number | string>) => {
      for (let i = 0; i < chunk.length; i++) {
        const v = chunk[i] as number | string;
        const text = typeof v === 'number' ? String(v) : JSON.stringify(v);
        if (size + text.length + 1 > budget && items.length > 0) {
          await send(false);
          index++;
          items = [];
          size = overhead;
        }
        items.push(text);
        size += text.length + 1;
      }
    };
    // A list already in memory is walked directly (`for await` would cost a few promises per
    // chunk, which a small job notices); a stream is awaited chunk by chunk.
    try {
      if (Symbol.iterator in out.chunks) for (const chunk of out.chunks) await take(chunk);
      else for await (const chunk of out.chunks) await take(chunk);
      if (index === 0) await reply(s, msg, Buffer.from(`${head}${items.join(',')}]}`));
      else await send(true);
    } finally {
      if (holding) leaveLane(s.lane);
    }
    return index + 1;
  }

  /** Whether a refused or failed job can be answered: it names where, and its job. */
  function answerable(msg: ConsumeMessage): boolean {
    return Boolean(msg.properties.replyTo && msg.properties.correlationId);
  }

  /** The echo of a job that was not parsed on the way (a poison job), when it can be read. */
  function echoOf(msg: ConsumeMessage): JobEcho | undefined {
    if (!def.echo) return undefined;
    try {
      const parsed = def.schema.safeParse(JSON.parse(msg.content.toString('utf8')));
      return parsed.success ? def.echo(parsed.data) : undefined;
    } catch {
      return undefined;
    }
  }

  /** What every job message must have (one job or a bundle): a size within the limit, where to answer, JSON. */
  function envelope(msg: ConsumeMessage): unknown {
    if (msg.content.length > config.MAX_MESSAGE_BYTES) {
      throw new PipelineError(ErrorCodes.MESSAGE_TOO_LARGE, `body is ${msg.content.length} bytes; the limit is ${config.MAX_MESSAGE_BYTES} (MAX_MESSAGE_BYTES)`);
    }
    if (!msg.properties.replyTo) throw new PipelineError(ErrorCodes.INVALID_MESSAGE, 'missing reply_to property: there is nowhere to send the result');
    if (!msg.properties.correlationId) throw new PipelineError(ErrorCodes.INVALID_MESSAGE, 'missing correlation_id property: the result could not be matched to its job');
    const replyToRefused = replyToProblem(String(msg.properties.replyTo));
    if (replyToRefused) throw new PipelineError(ErrorCodes.INVALID_REPLY_TO, replyToRefused);
    try {
      return JSON.parse(msg.content.toString('utf8'));
    } catch (err) {
      throw new PipelineError(ErrorCodes.INVALID_MESSAGE, `body is not JSON: ${(err as Error).message}`);
    }
  }

  const schemaProblems = (issues: readonly { path: PropertyKey[]; message: string }[]) =>
    issues.map((i) => (i.path.length ? `${i.path.map(String).join('.')}: ${i.message}` : i.message)).join('; ');

  function parse(msg: ConsumeMessage): Job {
    const parsed = def.schema.safeParse(envelope(msg));
    if (!parsed.success) {
      throw new PipelineError(ErrorCodes.INVALID_MESSAGE, `body does not match the ${def.kind} job schema: ${schemaProblems(parsed.error.issues)}`);
    }
    return parsed.data;
  }

  /**
   * A bundle's jobs, each parsed on its own (a job that does not fit the schema is answered
   * `ok: false` by itself). Throws for what spoils the whole message: the envelope, a body that
   * is not a bundle, a service that takes one job a message, jobs covering too many numbers.
   */
  function parseBundle(msg: ConsumeMessage): BundledJob<Job>[] {
    const body = envelope(msg);
    const type = String(msg.properties.type);
    if (!def.bundle) {
      throw new PipelineError(ErrorCodes.INVALID_MESSAGE, `${def.service} takes one job a message: a ${type} message is not accepted here`);
    }
    if (def.bundle.type !== type) {
      throw new PipelineError(ErrorCodes.INVALID_MESSAGE, `${def.service} takes bundles of type ${def.bundle.type}: a ${type} message is not accepted here`);
    }
    const bundle = BundleSchema.safeParse(body);
    if (!bundle.success) throw new PipelineError(ErrorCodes.INVALID_MESSAGE, `body does not match the ${type} schema: ${schemaProblems(bundle.error.issues)}`);
    const maxJobs = def.bundle.maxJobs ?? MAX_BUNDLE_JOBS;
    if (bundle.data.jobs.length > maxJobs) {
      throw new PipelineError(ErrorCodes.LIMIT_EXCEEDED, `the bundle holds ${bundle.data.jobs.length} jobs; a ${type} bundle may hold at most ${maxJobs}`);
    }
    let numbers = 0;
    const jobs = bundle.data.jobs.map(({ id, ...fields }): BundledJob<Job> => {
      const parsed = def.schema.safeParse(fields);
      if (!parsed.success) return { id, fields, problem: `body does not match the ${def.kind} job schema: ${schemaProblems(parsed.error.issues)}` };
      numbers += def.bundle!.numbers?.(parsed.data) ?? 0;
      return { id, fields, job: parsed.data, echo: def.echo?.(parsed.data) };
    });
    if (numbers > MAX_BUNDLE_NUMBERS) {
      throw new PipelineError(
        ErrorCodes.LIMIT_EXCEEDED,
        `the bundle's jobs cover ${numbers} numbers; a bundle may cover at most ${MAX_BUNDLE_NUMBERS}: send wider jobs one a message`,
      );
    }
    return jobs;
  }

  /** The ids (and echoes) of a bundle's jobs, when its body can be read as a bundle at all. */
  function bundleIds(msg: ConsumeMessage): { id: string; echo?: JobEcho | undefined }[] | undefined {
    try {
      const bundle = BundleSchema.safeParse(JSON.parse(msg.content.toString('utf8')));
      if (!bundle.success) return undefined;
      return bundle.data.jobs.map(({ id, ...fields }) => {
        const parsed = def.schema.safeParse(fields);
        return { id, echo: parsed.success ? def.echo?.(parsed.data) : undefined };
      });
    } catch {
      return undefined;
    }
  }

  /**
   * Answers a job message that will not be run (refused, or a poison job) with `ok: false`:
   * every job of a bundle whose jobs can be read, each by its id; else one result, as for a job
   * alone (nothing when the message names nowhere to answer).
   */
  async function answerFailure(s: Session, msg: ConsumeMessage, error: { code: string; message: string }, echoed: boolean): Promise<void> {
    if (!answerable(msg)) return;
    const ids = isBundleType(msg.properties.type) ? bundleIds(msg) : undefined;
    if (ids) {
      const items = ids.map(({ id, echo }) => failureItem(id, echo, error));
      await reply(s, msg, Buffer.from(`{"results":[${items.join(',')}]}`), RESULTS_BUNDLE_TYPE);
      return;
    }
    const echo = echoed ? echoOf(msg) : undefined;
    await reply(s, msg, { ok: false, kind: def.kind, ...(echo ? { job: echo } : {}), error });
  }

  /**
   * A message that cannot be taken: dead-lettered with the reason, and acked. A client waiting
   * on reply_to hears about it too, instead of waiting forever (unless reply_to itself is what is
   * wrong: reply() sends nothing to a queue that is not a reply queue).
   */
  async function refuse(s: Session, msg: ConsumeMessage, err: PipelineError, jobLog: JobLog): Promise<JobOutcome> {
    jobLog.warn({ code: err.code, reason: err.message }, 'message refused; dead-lettered');
    await deadLetter(s, msg, err.code, err.message);
    await answerFailure(s, msg, { code: err.code, message: err.message }, false);
    s.acks.ack(msg);
    return 'dead_lettered';
  }

  function failureItem(id: string, echo: JobEcho | undefined, error: { code: string; message: string }): string {
    return JSON.stringify({ id, ok: false, kind: def.kind, ...(echo ? { job: echo } : {}), error });
  }

  /** One job's result inside a bundle's reply, as JSON: a list written out whole (a bundle's jobs are small). */
  async function successItem(id: string, echo: JobEcho | undefined, value: Record<string, unknown> | ListOutput): Promise<string> {
    if (!isListOutput(value)) return JSON.stringify({ id, ok: true, kind: def.kind, ...(echo ? { job: echo } : {}), ...value });
    const items: string[] = [];
    const take = (chunk: ArrayLike<number | string>) => {
      for (let i = 0; i < chunk.length; i++) {
        const v = chunk[i] as number | string;
        items.push(typeof v === 'number' ? String(v) : JSON.stringify(v));
      }
    };
    if (Symbol.iterator in value.chunks) for (const chunk of value.chunks) take(chunk);
    else for await (const chunk of value.chunks) take(chunk);
    return `{"id":${JSON.stringify(id)},"ok":true,"kind":${JSON.stringify(def.kind)},${echo ? `"job":${JSON.stringify(echo)},` : ''}${JSON.stringify(value.field)}:[${items.join(',')}]}`;
  }

  /**
   * A bundle delivered a third time (services died with it twice, perhaps killed by one of its
   * jobs): each of its jobs goes back to the work queue alone, carrying the bundle's delivery
   * count, and the bundle is acked once they are confirmed. A job that kills the service is then
   * counted and parked by itself, and its companions run as usual. False (nothing done) for a
   * body that is not a bundle: workBundle refuses it.
   */
  async function splitBundle(s: Session, msg: ConsumeMessage, redeliveries: number, jobLog: JobLog): Promise<boolean> {
    if (def.bundle?.type !== msg.properties.type) return false;
    let jobs: { id: string; [k: string]: unknown }[];
    try {
      const bundle = BundleSchema.safeParse(JSON.parse(msg.content.toString('utf8')));
      if (!bundle.success) return false;
      jobs = bundle.data.jobs;
    } catch {
      return false;
    }
    const headers = { ...withoutKeys(msg.properties.headers, 'x-delivery-count', REDELIVERIES_HEADER), [REDELIVERIES_HEADER]: redeliveries };
    await Promise.all(
      jobs.map(({ id, ...fields }) => {
        const { content, ...alone } = aloneCopy(msg, id, fields);
        return s.publisher.publish('', queue.name, content, { ...copiedProperties(msg.properties), ...alone, headers });
      }),
    );
    s.acks.ack(msg);
    jobLog.warn({ jobs: jobs.length, redeliveries }, 'a redelivered bundle split into its jobs, each alone again in the work queue');
    return true;
  }

  /**
   * A bundle (several jobs in one message): its jobs run one after another, or all at once for a
   * service that says so (pages to fetch), then all their results go in one reply, then the ack.
   * A job that fails for good is answered `ok: false` by itself. One that fails in a way worth
   * retrying goes to its retry tier alone, as a job alone in its message (its id as correlation
   * id, the job's type), and is answered from there: the others are answered now and never run
   * again. A bundle holding jobs that do not fit the schema, or that failed for good in a way
   * worth retrying, is also dead-lettered once, with the reasons, as a job alone would be.
   */
  async function workBundle(s: Session, msg: ConsumeMessage, attempt: number, jobLog: JobLog): Promise<JobOutcome> {
    const began = performance.now();
    let jobs: BundledJob<Job>[];
    try {
      jobs = parseBundle(msg);
    } catch (err) {
      if (!isPipelineError(err)) throw err;
      return refuse(s, msg, err, jobLog);
    }
    interface Done {
      outcome: JobOutcome;
      seconds: number;
      /** The job's result, as JSON; none for a job retried alone. */
      item?: string;
      /** Why the bundle is dead-lettered, for a job refused or given up. */
      reason?: { code: string; text: string };
      /** What a job retried alone failed with. */
      retry?: unknown;
    }
    const runOne = async (j: BundledJob<Job>): Promise<Done> => {
      const started = performance.now();
      const seconds = () => (performance.now() - started) / 1000;
      if (!j.job) {
        const problem = j.problem ?? 'not a job';
        return {
          outcome: 'dead_lettered',
          seconds: seconds(),
          item: failureItem(j.id, j.echo, { code: ErrorCodes.INVALID_MESSAGE, message: problem }),
          reason: { code: ErrorCodes.INVALID_MESSAGE, text: `job "${j.id}": ${problem}` },
        };
      }
      try {
        const job = j.job;
        const handle = () =>
          def.handle(job, {
            get log() {
              return log.child({ correlationId: j.id, bundle: msg.properties.correlationId, attempt });
            },
            correlationId: j.id,
            attempt,
            signal: shutdown.signal,
          });
        const value = tracing() ? await inSpan(`work ${def.kind}`, { [Attr.jobId]: j.id, [Attr.attempt]: attempt }, handle) : await handle();
        return { outcome: 'ok', seconds: seconds(), item: await successItem(j.id, j.echo, value) };
      } catch (err) {
        const retryable = !isPipelineError(err) || err.retryable;
        if (!isPipelineError(err) && !shutdown.signal.aborted) jobLog.error({ err, job: j.id }, 'handler failed unexpectedly');
        if (retryable && attempt < config.RETRY_ATTEMPTS) return { outcome: 'retried', seconds: seconds(), retry: err };
        const wire = toWireError(err);
        if (retryable && attempt > 1) wire.message = `${wire.message} (gave up after ${attempt} attempts)`;
        return {
          outcome: 'failed',
          seconds: seconds(),
          item: failureItem(j.id, j.echo, wire),
          ...(retryable ? { reason: { code: wire.code, text: `job "${j.id}": ${wire.message}` } } : {}),
        };
      }
    };
    let done: Done[];
    if (def.bundle?.concurrent) done = await Promise.all(jobs.map(runOne));
    else {
      done = [];
      for (const j of jobs) {
        done.push(await runOne(j));
        if (shutdown.signal.aborted) break;
      }
    }
    if (shutdown.signal.aborted) {
      // Cut short by shutdown: the whole message goes back untouched (results are not sent).
      s.acks.nack(msg, true);
      return 'handed_back';
    }
    for (const [i, d] of done.entries()) {
      if (d.retry === undefined) continue;
      const j = jobs[i]!;
      const delayMs = await retryLater(s, msg, attempt, d.retry, aloneCopy(msg, j.id, j.fields));
      jobLog.warn({ err: toWireError(d.retry), job: j.id, attempt, delayMs }, 'a job of a bundle failed; retrying it alone later');
    }
    const reasons = done.flatMap((d) => (d.reason ? [d.reason] : []));
    if (reasons.length) {
      const code = reasons.find((r) => r.code !== ErrorCodes.INVALID_MESSAGE)?.code ?? ErrorCodes.INVALID_MESSAGE;
      jobLog.warn({ code, reasons: reasons.slice(0, 5).map((r) => r.text) }, 'jobs of a bundle refused or given up; the bundle is dead-lettered, the other jobs answered');
      await deadLetter(s, msg, code, reasons.map((r) => r.text).join('; ').slice(0, 4000));
    }
    const items = done.flatMap((d) => (d.item === undefined ? [] : [d.item]));
    if (items.length) await reply(s, msg, Buffer.from(`{"results":[${items.join(',')}]}`), RESULTS_BUNDLE_TYPE);
    s.acks.ack(msg);
    if (log.isLevelEnabled('debug')) {
      // One line per job, as for a job alone (what an operator greps for by correlation id).
      const ms = Math.round(performance.now() - began);
      const bundle = msg.properties.correlationId;
      jobs.forEach((j, i) => done[i]!.outcome !== 'retried' && log.debug({ correlationId: j.id, bundle, attempt, ok: done[i]!.outcome === 'ok', ms }, 'job done'));
    }
    // The message is counted as its first job (handleDelivery); the others here, one by one.
    for (const o of done.slice(1)) {
      metrics.jobStarted();
      metrics.jobFinished(def.kind, o.outcome, o.seconds);
    }
    return done[0]!.outcome;
  }

  async function handleDelivery(s: Session, msg: ConsumeMessage, deliveredAt: number): Promise<JobOutcome> {
    const started = performance.now();
    metrics.jobStarted();
    let outcome: JobOutcome = 'handed_back';
    try {
      outcome = tracing() ? await tracedWork(s, msg) : await work(s, msg);
      if (outcome === 'ok') {
        // How long this job was in our hands: queued, worked on, answered (confirmed) and acked.
        const held = performance.now() - deliveredAt;
        s.holdMs = s.done++ === 0 ? held : s.holdMs * 0.9 + held * 0.1;
      }
    } finally {
      metrics.jobFinished(def.kind, outcome, (performance.now() - started) / 1000);
    }
    return outcome;
  }

  /**
   * `work` inside a `process <queue>` span, a child of the job's traceparent; the reply's
   * publish, the work of each job and the ack are spans inside it (see shared/src/tracing.ts).
   */
  async function tracedWork(s: Session, msg: ConsumeMessage): Promise<JobOutcome> {
    const t = tracing()!;
    const attempt = (Number(msg.properties.headers?.[RetryHeaders.attempts]) || 0) + 1;
    const { span, context } = processSpan(t, queue.name, msg, { [Attr.attempt]: attempt, [Attr.service]: def.service });
    return t.api.context.with(context, async () => {
      let outcome: JobOutcome = 'handed_back';
      try {
        outcome = await work(s, msg);
        settleSpan(t, queue.name, outcome === 'handed_back' ? 'nack' : 'ack');
        return outcome;
      } finally {
        endSpan(t, span, outcome);
      }
    });
  }

  /** Handles one delivery to its end (acked, or handed back); says how it ended. */
  async function work(s: Session, msg: ConsumeMessage): Promise<JobOutcome> {
    const correlationId = String(msg.properties.correlationId ?? '');
    const attempt = (Number(msg.properties.headers?.[RetryHeaders.attempts]) || 0) + 1;
    // A classic queue's redelivered job counts one more delivery than its header says.
    const recounted = countsOwnRedeliveries && msg.fields.redelivered;
    const redeliveries = deliveryCount(msg) + (recounted ? 1 : 0);
    // The job's logger is made when first used: most jobs log nothing at the default level,
    // and a pino child serialises its bindings when it is made.
    let child: Logger | undefined;
    const jobLogger = () => (child ??= log.child({ correlationId, messageId: msg.properties.messageId, attempt, ...(redeliveries ? { redeliveries } : {}) }));
    const jobLog: JobLog = {
      error: (obj: object, text: string) => jobLogger().error(obj, text),
      warn: (obj: object, text: string) => jobLogger().warn(obj, text),
      debug: (obj: object, text: string) => {
        if (log.isLevelEnabled('debug')) jobLogger().debug(obj, text);
      },
    };
    const started = performance.now();
    try {
      if (redeliveries >= DELIVERY_LIMIT - 1) {
        // Delivered this often without ever being finished: it keeps killing whoever runs it.
        // Do not run it again; park it with the reason and answer, rather than let the broker
        // drop it silently at the delivery limit.
        const reason = `delivered ${redeliveries + 1} times without being finished (the service died handling it each time); not run again`;
        jobLog.error({ reason }, 'poison job; dead-lettered');
        await deadLetter(s, msg, ErrorCodes.POISON_MESSAGE, reason);
        await answerFailure(s, msg, { code: ErrorCodes.POISON_MESSAGE, message: reason }, true);
        s.acks.ack(msg);
        return 'dead_lettered';
      }
      if (recounted) {
        await recount(s, msg, redeliveries);
        jobLog.warn({ redeliveries }, 'redelivered job put back with its delivery count (classic work queue)');
        return 'requeued';
      }
      if (isBundleType(msg.properties.type)) {
        if (redeliveries >= SPLIT_AT_REDELIVERIES && (await splitBundle(s, msg, redeliveries, jobLog))) return 'requeued';
        return await workBundle(s, msg, attempt, jobLog);
      }
      let job: Job;
      try {
        job = parse(msg);
      } catch (err) {
        if (!isPipelineError(err)) throw err;
        return refuse(s, msg, err, jobLog);
      }

      const echo = def.echo?.(job);
      let result: Result;
      try {
        const handle = () =>
          def.handle(job, {
            get log() {
              return jobLogger();
            },
            correlationId,
            attempt,
            signal: shutdown.signal,
          });
        const value = tracing() ? await inSpan(`work ${def.kind}`, { [Attr.jobId]: correlationId, [Attr.attempt]: attempt }, handle) : await handle();
        if (isListOutput(value)) {
          const parts = await replyList(s, msg, value, echo);
          s.acks.ack(msg);
          jobLog.debug({ ok: true, parts, ms: Math.round(performance.now() - started) }, 'job done');
          return 'ok';
        }
        result = { ok: true, kind: def.kind, ...(echo ? { job: echo } : {}), ...value } as Result;
      } catch (err) {
        if (shutdown.signal.aborted) {
          // Cut short by shutdown, not a failure of the job: hand it back untouched.
          s.acks.nack(msg, true);
          return 'handed_back';
        }
        const retryable = !isPipelineError(err) || err.retryable;
        if (!isPipelineError(err)) jobLog.error({ err }, 'handler failed unexpectedly');
        if (retryable && attempt < config.RETRY_ATTEMPTS) {
          const delayMs = await retryLater(s, msg, attempt, err);
          s.acks.ack(msg);
          jobLog.warn({ err: toWireError(err), attempt, delayMs }, 'job failed; retrying later');
          return 'retried';
        }
        const wire = toWireError(err);
        if (retryable && attempt > 1) wire.message = `${wire.message} (gave up after ${attempt} attempts)`;
        result = { ok: false, kind: def.kind, ...(echo ? { job: echo } : {}), error: wire };
        if (retryable) {
          // Out of attempts (or a bug): the sender gets the error, and operators find the job
          // in pipeline.dead with the reason. Permanent failures (a 404) are just answers.
          await deadLetter(s, msg, wire.code, wire.message);
        }
      }
      await reply(s, msg, result);
      s.acks.ack(msg);
      jobLog.debug({ ok: result.ok, ms: Math.round(performance.now() - started) }, 'job done');
      return result.ok ? 'ok' : 'failed';
    } catch (err) {
      // The channel or connection went away mid-job: the broker redelivers the job.
      jobLog.warn({ err }, 'could not finish the job on this channel; the broker will redeliver it');
      return 'handed_back';
    }
  }

  // Spans over OTLP when the OTEL_* variables ask for them (off by default: see tracing.ts).
  await startTracing(def.service, log);
  const model: RecoveringChannelModel = await connectBroker({
    url: config.AMQP_URL,
    urlOrder: config.AMQP_URL_ORDER,
    connectionName,
    heartbeatSeconds: config.HEARTBEAT_SECONDS,
    connectRetries: config.CONNECT_RETRIES,
    tls: tlsFiles(config),
    log,
    setup,
  });
  // Attached after the first connection, so every 'connect' from here on is a reconnect.
  model.on('connect', () => metrics.reconnected());
  model.on('disconnect', () => setSession(undefined));
  // A resource alarm on the broker: hold results back rather than pile them up in memory.
  model.on('blocked', () => session?.publisher.block());
  model.on('unblocked', () => session?.publisher.unblock());

  let health: HealthServer | undefined;
  if (config.HEALTH_PORT > 0) {
    health = await startHealthServer({
      port: config.HEALTH_PORT,
      host: config.HEALTH_HOST,
      ready: () => session !== undefined && !stopping,
      metrics,
      log,
    });
  }

  return {
    get ready() {
      return session !== undefined && !stopping;
    },
    get inFlight() {
      return inFlight.size;
    },
    metrics,
    healthPort: health?.port,
    async close() {
      if (stopping) return;
      stopping = true;
      metrics.setConsuming(false);
      const s = session;
      if (s) for (const tag of s.tags) await s.channel.cancel(tag).catch(() => {});
      log.info({ inFlight: inFlight.size }, 'stopped consuming; finishing in-flight jobs');
      const grace = new Promise<'timeout'>((resolve) => setTimeout(resolve, config.SHUTDOWN_GRACE_MS, 'timeout').unref());
      const outcome = await Promise.race([Promise.allSettled([...inFlight]).then(() => 'done' as const), grace]);
      if (outcome === 'timeout') {
        log.warn({ inFlight: inFlight.size }, 'grace period over; handing unfinished jobs back to the broker');
        shutdown.abort();
      }
      // Acks are sent at the end of a turn of the event loop: send the last ones, then close
      // the channel (its close frame follows them through amqplib's per-channel output), and
      // only then the connection. Closing the connection at once lost the last ack or two: the
      // connection's close frame went out ahead of the channel's pending frames, and the broker
      // requeued an answered job (a duplicate result).
      const last = session;
      last?.acks.flush();
      if (last) await within(last.channel.close().catch(() => {}), 5000);
      await model.close().catch(() => {});
      await health?.close();
      await flushTracing();
      log.info('closed');
    },
  };
}

/**
 * How many times this job has been delivered before: a quorum queue's x-delivery-count, or on
 * a classic queue the count its service put in REDELIVERIES_HEADER when it put the job back.
 */
/**
 * Deliveries a bundle has had before it is split (splitBundle). Not at the first: a replica
 * killed from outside hands back its whole prefetch, and its bundles, run whole again (one at a
 * time, as any redelivered job), are done at once; split, every job of them would be a suspect
 * run one at a time. Twice is a pattern: from then on each job is counted on its own, and a
 * job that crashes its service still reaches the delivery limit after four crashes in all.
 */
const SPLIT_AT_REDELIVERIES = 2;

/**
 * One job of a bundle as a job alone in its message: its fields as the body, its id as the
 * correlation id, the single job's type, and a message id made from the bundle's (the same
 * every time the bundle is split, so a copy made twice is recognisably the same job).
 */
function aloneCopy(bundle: ConsumeMessage, id: string, fields: Record<string, unknown>): { content: Buffer; correlationId: string; messageId: string; type: string } {
  return {
    content: Buffer.from(JSON.stringify(fields)),
    correlationId: id,
    messageId: `${String(bundle.properties.messageId ?? bundle.properties.correlationId)}/${id}`,
    type: BUNDLED_JOB_TYPES[String(bundle.properties.type)] as string,
  };
}

/**
 * Deliveries before this one: the broker's count (quorum) plus those a copy carries with it
 * (REDELIVERIES_HEADER: a classic queue's recount, or a job split out of a redelivered bundle).
 */
function deliveryCount(msg: ConsumeMessage): number {
  const h = msg.properties.headers;
  return (Number(h?.['x-delivery-count']) || 0) + (Number(h?.[REDELIVERIES_HEADER]) || 0);
}

function withoutKeys(headers: Record<string, unknown> | undefined, ...keys: string[]): Record<string, unknown> {
  const out = { ...headers };
  for (const k of keys) delete out[k];
  return out;
}

/**
 * A job's properties for a copy the service publishes (a retry, a recount, a dead letter):
 * all that are set, except `userId`: that was the job's sender's, and the broker closes the
 * channel of a publisher whose message claims another user's id (so any client could stop a
 * service's channel with a job that carries one).
 */
function copiedProperties<T extends { userId?: unknown }>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([k, v]) => v !== undefined && k !== 'userId')) as Partial<T>;
}

/**
 * Resolves with the first SIGINT or SIGTERM; a second one calls `onSecond` (main.ts passes
 * `process.exit`), so a stuck shutdown can always be cut short, even as a container's PID 1,
 * where signals have no default action.
 */
export function shutdownSignal(onSecond: (signal: NodeJS.Signals) => void): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let first: NodeJS.Signals | undefined;
    const on = (signal: NodeJS.Signals) => {
      if (first) return onSecond(signal);
      first = signal;
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
