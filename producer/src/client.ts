import {
  Bindings,
  ErrorCodes,
  PipelineError,
  within,
  connectBroker,
  connectionNameFor,
  tlsFiles,
  declareReplyQueues,
  declareTopology,
  topologyOf,
  type WorkQueueType,
  manifestQueueName,
  progressQueueName,
  replyQueueName,
  ManifestSchema,
  MANIFEST_TYPE,
  ProgressSchema,
  type Config,
  type Logger,
  type Manifest,
  type OutputMode,
  replyQueueType,
  brokerUser,
  serviceUsers,
  ownedQueueId,
  producerExchangeName,
  declareProducerExchange,
  TraceAttributes,
  endSpan,
  flushTracing,
  publishSpan,
  startTracing,
  tracing,
  type TraceSpan as Span,
} from '@amqp-pipeline/shared/client';
import type { RecoveringChannelModel } from 'amqplib';
import { mergeProgress } from './checkpoint.js';
import type { Emitted } from './collector.js';
import { ownProblem, type Senders } from './fit.js';
import { gather, type BatchOutcome, type BatchPlace, type GatherOptions } from './gather.js';
import { PUBLISH_WINDOW, ReliablePublisher, runLanes } from './job-publisher.js';
import { bundleMessage, correlationIdFor, jobMessage, messageUnits, newBatchId, type JobSpec } from './jobs.js';
import type { WindowLimits } from './reply-window.js';
import { PipelineSession, type SessionOptions } from './session.js';

export type { BatchOutcome } from './gather.js';

export interface SubmitOptions {
  /** Batch id; a new one by default. */
  batch?: string;
  /** How results are presented (see OutputMode). */
  output: OutputMode;
  /** The whole request, for printing combined results (e.g. the range before chunking). */
  request?: Record<string, unknown>;
  /**
   * Called for every result (or part, or combined summary) in presentation order; if it
   * returns a promise, the reply is acknowledged only once it resolves (e.g. stdout drained).
   */
  onResult?: (r: Emitted) => void | Promise<void>;
  /** Called after each result arrives: results complete so far, and in all. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Says whether the output already holds a piece of this batch (by `outputKey`), e.g. a
   * `ResultFile` written by a session that was killed: such pieces are not emitted again.
   */
  written?: (key: string) => boolean;
  /** Wait for every result; false returns as soon as every job is confirmed. */
  wait: boolean;
  /** Longest wait for results, ms. */
  timeoutMs: number;
  /** Stops waiting early (e.g. Ctrl-C): what has not arrived stays queued for `collect`. */
  signal?: AbortSignal;
  /** The reply window's limits (tuning and tests); by default chosen from the jobs. */
  window?: WindowLimits;
}

export interface CollectOptions {
  onResult?: (r: Emitted) => void | Promise<void>;
  onProgress?: (done: number, total: number) => void;
  /** See SubmitOptions.written. */
  written?: (key: string) => boolean;
  timeoutMs: number;
  signal?: AbortSignal;
  /** See SubmitOptions.window. */
  window?: WindowLimits;
}

/**
 * An RPC that failed because its channel or connection went before the broker answered
 * (amqplib's errors carry no AMQP code then), not because the broker refused it.
 */
function lostBeforeAnswer(err: unknown): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === undefined && !(err instanceof PipelineError);
}

/** Longest wait for batch clean-ups, and then for the connection to close, in close(). */
const CLOSE_WAIT_MS = 10_000;

/**
 * Declares the topology so jobs have somewhere to wait even before any service has run.
 * A least-privilege producer user may not configure exchanges and work queues: then the
 * topology is left to the services and the broker's definitions.
 */
async function ensureTopology(model: RecoveringChannelModel, log: Logger, type: WorkQueueType, retryType: WorkQueueType): Promise<void> {
  const ch = await model.createChannel();
  ch.on('error', () => {});
  try {
    // The retry tiers are the services' own (their type follows REPLY_QUEUE_TYPE in each service).
    const t = topologyOf(type, retryType);
    await declareTopology(ch, { ...t, queues: t.queues.filter((q) => !q.name.includes('.retry.')) });
  } catch (err) {
    if ((err as { code?: number }).code !== 403) throw err;
    log.debug('not allowed to declare the topology; relying on it being there');
    return;
  }
  await ch.close().catch(() => {});
}

/**
 * The producer side of the pipeline: publishes batches of jobs through a confirm channel
 * and gathers their results from the batch's durable reply queue.
 */
export class PipelineClient {
  /** Set by close(): a batch whose reply channel goes now ends instead of waiting for a reconnect. */
  private closing = false;
  /** Batch clean-ups still running (acks, queue deletion); `close()` waits for them. */
  private readonly cleanups = new Set<Promise<void>>();
  /** Sessions opened and not yet closed; `close()` closes them. */
  private readonly sessions = new Set<PipelineSession>();

  /** Who may write into this producer's queues (fit.ts). */
  private readonly senders: Senders;
  /** The producer's own exchange, to which its batches' queues are bound. */
  private readonly exchange: string;

  private constructor(
    private readonly model: RecoveringChannelModel,
    private readonly publisher: ReliablePublisher,
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    const own = brokerUser(config);
    const services = serviceUsers(config);
    this.senders = { own, services: services === 'off' ? undefined : services };
    this.exchange = producerExchangeName(own);
    ownedQueueId(own, 'x'); // a user name that cannot name queues of its own is refused now, at connect
  }

  /**
   * Declares a batch's queues, exchange and bindings again (all idempotent), on a live channel,
   * until they are answered or `deadline` passes; a refusal by the broker is thrown.
   */
  private async declareAgain(place: BatchPlace, deadline: number, log: Logger): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const d = declareReplyQueues((await this.publisher.live()).channel, place.queueId, this.config.REPLY_QUEUE_TTL_MS, replyQueueType(this.config), place.exchange);
      try {
        await Promise.all([d.reply, d.manifest, d.progress]);
        log.info({ attempt }, "the batch's queues declared again after a lost connection");
        return;
      } catch (err) {
        if (!lostBeforeAnswer(err) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * attempt)));
      }
    }
  }

  /** Where a batch of this producer's lives: `pipeline.replies.<user>:<batch>` and its siblings. */
  private placeOf(batch: string): BatchPlace {
    return { queueId: ownedQueueId(this.senders.own, batch), exchange: this.exchange, senders: this.senders };
  }

  /**
   * Says, once, whose results are taken: with one user shared by every process the broker's
   * user_id check proves nothing, so results are checked only for fitting their jobs.
   */
  private logSenderPolicy(): void {
    const { own, services } = this.senders;
    if (services) {
      this.log.debug({ user: own, services }, 'results are taken only from the service users (SERVICE_USERS)');
    } else {
      this.log.warn(
        { user: own },
        `results are not bound to their senders: this producer runs as broker user "${own}" with SERVICE_USERS=off, so any client of the broker can answer its jobs with a result that fits; run the services and producers as their own users (rabbitmq/definitions.json) and set SERVICE_USERS (docs/protocol.md)`,
      );
    }
  }

  static async connect(config: Config, log: Logger, connectionName = connectionNameFor('pipeline-cli')): Promise<PipelineClient> {
    // Spans over OTLP when the OTEL_* variables ask for them (off by default; see shared/src/tracing.ts).
    await startTracing('pipeline', log);
    const model = await connectBroker({
      url: config.AMQP_URL,
      urlOrder: config.AMQP_URL_ORDER,
      connectionName,
      heartbeatSeconds: config.HEARTBEAT_SECONDS,
      connectRetries: config.CONNECT_RETRIES,
      tls: tlsFiles(config),
      log,
    });
    try {
      await ensureTopology(model, log, config.WORK_QUEUE_TYPE, replyQueueType(config));
      const client = new PipelineClient(model, await ReliablePublisher.open(model, log), config, log);
      client.logSenderPolicy();
      return client;
    } catch (err) {
      await model.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Publishes the jobs as one batch (each confirmed, mandatory), then writes the batch's
   * manifest into its reply queue. With `wait`, gathers the results until all are in or
   * the timeout passes; results not gathered stay in the queue for `collect`.
   */
  async submit(jobs: JobSpec[], opts: SubmitOptions): Promise<BatchOutcome> {
    const t = tracing();
    if (!t) return this.submitJobs(jobs, opts);
    // Traced: a `pipeline batch` span for the whole batch, the parent of each message's publish
    // span: one trace per batch (`range` is two jobs, and its trace shows both services; see docs/protocol.md, Tracing).
    const batch = opts.batch ?? newBatchId();
    const span = t.tracer.startSpan('pipeline batch', { attributes: { [TraceAttributes.batch]: batch, [TraceAttributes.jobs]: jobs.length, 'pipeline.wait': opts.wait } });
    try {
      const outcome = await this.submitJobs(jobs, { ...opts, batch }, span);
      span.setAttribute('pipeline.results.failed', outcome.failed);
      endSpan(t, span, outcome.complete || !opts.wait ? 'ok' : 'incomplete');
      return outcome;
    } catch (err) {
      endSpan(t, span, 'failed', (err as { code?: string }).code ?? 'Error', (err as Error).message);
      throw err;
    }
  }

  private async submitJobs(jobs: JobSpec[], opts: SubmitOptions, batchSpan?: Span): Promise<BatchOutcome> {
    const batch = opts.batch ?? newBatchId();
    const place = this.placeOf(batch);
    // The batch's queues are declared at once; the jobs go out as soon as the reply queue is
    // there, while the manifest and progress queues' declarations (and the manifest) follow.
    const declaring = declareReplyQueues((await this.publisher.live()).channel, place.queueId, this.config.REPLY_QUEUE_TTL_MS, replyQueueType(this.config), place.exchange);
    declaring.manifest.catch(() => {}); // awaited below
    declaring.progress.catch(() => {}); // awaited by the first checkpoint
    await declaring.reply;
    const replyQueue = replyQueueName(place.queueId);
    const deadline = Date.now() + opts.timeoutMs;
    const manifest: Manifest = {
      batch,
      createdAt: new Date().toISOString(),
      revision: 0,
      output: opts.output,
      ...(opts.request ? { request: opts.request } : {}),
      jobs: jobs.map((j, i) => ({ id: correlationIdFor(batch, i), kinds: j.kinds, input: j.body })),
    };
    const log = this.log.child({ batch });

    // At most PUBLISH_WINDOW jobs in flight, and a job's message built only when its turn comes
    // (for an ordered batch being gathered, also when the reply window can hold its result: `admit`).
    // Small range jobs go several to a message (JOBS_PER_MESSAGE): the broker's work is per
    // message. For an ordered batch being gathered, a message holds no more jobs than the lead
    // gate lets past the head, and goes once its last job may: its results then fit the window
    // as single jobs' would, and the last job is within reach as soon as the first is the head.
    const publishJobs = (gate?: { admit: (i: number) => Promise<void> | undefined; lead: number }) => {
      const perMessage = Math.max(1, Math.min(this.config.JOBS_PER_MESSAGE, gate?.lead ?? Infinity));
      const units = messageUnits(jobs, perMessage, this.config.RESULT_PART_BYTES);
      return runLanes(units.length, PUBLISH_WINDOW, async (u) => {
        const { first, count } = units[u]!;
        const turn = gate?.admit(first + count - 1);
        if (turn) await turn;
        const job = jobs[first]!;
        // For `npm run bench -- cli-start`: how long after the process started the first job goes.
        if (u === 0) log.debug({ sinceStartMs: Math.round(performance.now()), jobsPerMessage: count }, 'publishing the first job');
        const message =
          count === 1
            ? jobMessage(job, correlationIdFor(batch, first), replyQueue)
            : bundleMessage(
                jobs.slice(first, first + count),
                Array.from({ length: count }, (_, k) => correlationIdFor(batch, first + k)),
                replyQueue,
              );
        const t = batchSpan && tracing();
        if (!t) return this.publisher.publish(job.exchange, job.routingKey, message.content, message.options, deadline);
        const { span, headers } = publishSpan(t, job.exchange, job.routingKey, message.options, {
          parent: batchSpan,
          attributes: { [TraceAttributes.batch]: batch, [TraceAttributes.jobs]: count },
        });
        try {
          await this.publisher.publish(job.exchange, job.routingKey, message.content, { ...message.options, headers: { ...message.options.headers, ...headers } }, deadline);
          span.end();
        } catch (err) {
          endSpan(t, span, 'failed', (err as { code?: string }).code ?? 'Error');
          throw err;
        }
      });
    };
    const publishManifest = async () => {
      // A connection lost before the broker answered the declarations (they take a few round
      // trips, a channel's RPCs going one at a time): declare them again on the next channel.
      await declaring.manifest.catch((err: unknown) => (lostBeforeAnswer(err) ? this.declareAgain(place, deadline, log) : Promise.reject(err)));
      await this.publisher.publish(
        this.exchange,
        manifestQueueName(place.queueId),
        Buffer.from(JSON.stringify(manifest)),
        { messageId: `${batch}.manifest`, contentType: 'application/json', persistent: true, type: MANIFEST_TYPE, appId: 'pipeline', userId: this.senders.own },
        deadline,
      );
    };

    if (!opts.wait) {
      // The manifest promises these jobs to a later `collect`: only once all are confirmed.
      await publishJobs();
      await publishManifest();
      await declaring.progress.catch((err: unknown) => (lostBeforeAnswer(err) ? this.declareAgain(place, deadline, log) : Promise.reject(err)));
      log.debug({ jobs: jobs.length }, 'batch published');
      return { batch, jobs: jobs.length, complete: false, missing: [], stats: { received: 0, duplicates: 0, unexpected: 0 }, failed: 0, window: { prefetch: 0, spilled: 0, stalls: 0 } };
    }
    // Waiting: start reading replies, publish the jobs and the manifest, all at once (results
    // that come before the consumer is ready simply wait in the queue).
    let publishedAll: () => void = () => {};
    const gatheringP = this.gather(batch, replyQueue, {
      place,
      published: new Promise<void>((resolve) => (publishedAll = resolve)),
      onResult: opts.onResult,
      onProgress: opts.onProgress,
      written: opts.written,
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      manifest,
      progressQueue: declaring.progress,
      window: opts.window,
    });
    const published = Promise.all([gatheringP.then((g) => publishJobs(g)), publishManifest()]);
    published.catch(() => {}); // handled below, once the consumer is ready; not "unhandled" meanwhile
    void published.finally(publishedAll).catch(() => {});
    const gathering = await gatheringP.catch(async (err: unknown) => {
      await published.catch(() => {});
      throw err;
    });
    try {
      await published;
    } catch (err) {
      await gathering.stop(false);
      throw err;
    }
    log.debug({ jobs: jobs.length }, 'batch published');
    return gathering.done;
  }

  /**
   * A session: one long-lived reply queue for jobs sent one at a time, each call resolving
   * with its result (see PipelineSession). Much less broker work per job than a one-job
   * batch; close it (or the client) when done.
   */
  async session(opts: SessionOptions = {}): Promise<PipelineSession> {
    const session = await PipelineSession.open(
      {
        model: this.model,
        config: this.config,
        log: this.log,
        senders: this.senders,
        publish: (exchange, routingKey, body, options, deadline) => this.publisher.publish(exchange, routingKey, body, options, deadline),
        closing: () => this.closing,
        closed: (s) => this.sessions.delete(s),
      },
      opts,
    );
    this.sessions.add(session);
    return session;
  }

  /**
   * Work queues the jobs will land in that no service is consuming right now
   * (their jobs wait there until one starts).
   */
  async idleQueues(jobs: readonly JobSpec[]): Promise<string[]> {
    const queues = new Set<string>();
    for (const job of jobs) {
      for (const b of Bindings) if (b.exchange === job.exchange && b.routingKey === job.routingKey) queues.add(b.queue);
    }
    const idle: string[] = [];
    for (const q of queues) {
      // One channel per check: a refused or failed check closes its channel.
      const ch = await this.model.createChannel();
      ch.on('error', () => {});
      try {
        if ((await ch.checkQueue(q)).consumerCount === 0) idle.push(q);
      } catch {
        // Not allowed to look, or the queue is missing: no warning to give.
      } finally {
        await ch.close().catch(() => {});
      }
    }
    return idle;
  }

  /** Gathers the results of an earlier batch (`pipeline collect`). */
  async collect(batch: string, opts: CollectOptions): Promise<BatchOutcome> {
    // This producer user's batch; else, where results are not checked for their senders (a
    // shared user), one submitted before queues were named by their user
    // (`pipeline.replies.<batch>`, unsigned). A producer with its own user has no rights on
    // those names (a passive check would pass, and reading then be refused).
    const owned = this.placeOf(batch);
    const candidates: BatchPlace[] = this.senders.services ? [owned] : [owned, { queueId: batch }];
    let place: BatchPlace | undefined;
    let cause: unknown;
    for (const p of candidates) {
      const check = await this.model.createChannel();
      check.on('error', () => {});
      try {
        await check.checkQueue(replyQueueName(p.queueId));
        if (p.exchange) {
          // The exchange and the reply queue's binding again (idempotent), for the spills.
          await declareProducerExchange(check, p.exchange);
          await check.bindQueue(replyQueueName(p.queueId), p.exchange, replyQueueName(p.queueId));
        }
        await check.close();
        place = p;
        break;
      } catch (err) {
        cause ??= err;
      }
    }
    if (!place) {
      const replyQueue = replyQueueName(owned.queueId);
      throw new PipelineError(
        ErrorCodes.BATCH_NOT_FOUND,
        `no results are waiting for batch ${batch}: its reply queue ${replyQueue} does not exist (already collected, expired, never submitted, or submitted by another broker user than "${this.senders.own}")`,
        { cause },
      );
    }
    const replyQueue = replyQueueName(place.queueId);
    const mine = (m: { properties: { userId?: unknown } }) => ownProblem(place.senders, m) === undefined;
    const manifest = (await this.peek(manifestQueueName(place.queueId), (v) => ManifestSchema.safeParse(v), mine)).find((m) => m.batch === batch);
    const records = manifest ? await this.peek(progressQueueName(place.queueId), (v) => ProgressSchema.safeParse(v), mine) : [];
    const progress = mergeProgress(records.filter((p) => p.batch === batch));
    this.log.debug({ batch, queue: replyQueue, manifest: manifest !== undefined, progressRecords: records.length, revisions: records.map((p) => p.revision) }, 'collecting');
    const gathering = await this.gather(batch, replyQueue, { ...opts, place, ...(manifest ? { manifest, ...(progress ? { progress } : {}) } : {}) });
    return gathering.done;
  }

  /**
   * The messages of a keep-newest queue (a batch's manifest or progress), read without taking
   * them out; none if there is no such queue (the producer died before writing it, or never
   * needed to). Normally there is one, but a broker that was killed may bring back an older
   * one beside the newest (its removal had not reached the disk), so all are read.
   */
  private async peek<T>(
    queue: string,
    parse: (v: unknown) => { success: true; data: T } | { success: false },
    /** Whether a message's sender may have written it (a forged manifest or checkpoint is skipped, and logged). */
    trusted: (msg: { properties: { userId?: unknown } }) => boolean,
  ): Promise<T[]> {
    const ch = await this.model.createChannel();
    ch.on('error', () => {});
    const found: T[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        const msg = await ch.get(queue, { noAck: false });
        if (!msg) break;
        if (!trusted(msg)) {
          this.log.warn({ queue, userId: msg.properties.userId ?? null, appId: msg.properties.appId ?? null }, `a message in ${queue} not written by this producer's broker user was ignored`);
          continue;
        }
        let parsed: { success: true; data: T } | { success: false } = { success: false };
        try {
          parsed = parse(JSON.parse(msg.content.toString('utf8')));
        } catch {
          /* not JSON: skipped */
        }
        if (parsed.success) found.push(parsed.data);
      }
    } catch {
      // no such queue
    } finally {
      await ch.close().catch(() => {}); // hands every message back, unacknowledged
    }
    return found;
  }

  /**
   * Waits for the batches' clean-ups (acks, queue deletion), then closes the connection; both
   * bounded, so a clean-up stuck on a connection that went away cannot keep the process alive
   * (what it did not finish stays in the queues for `collect`).
   */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.sessions].map((s) => s.close()));
    if (!(await within(Promise.allSettled([...this.cleanups]), CLOSE_WAIT_MS))) {
      this.log.warn({ waitedMs: CLOSE_WAIT_MS }, 'batch clean-up did not finish; closing anyway (unfinished results stay queued for collect)');
    }
    await within(this.model.close().catch(() => {}), CLOSE_WAIT_MS);
    await flushTracing();
  }

  /** Reads a batch's results (gather.ts): the reply window, the collector and checkpoints wired together. */
  private gather(batch: string, replyQueue: string, opts: GatherOptions): ReturnType<typeof gather> {
    return gather(
      {
        model: this.model,
        publisher: this.publisher,
        log: this.log,
        replyTtlMs: this.config.REPLY_QUEUE_TTL_MS,
        replyQueueType: replyQueueType(this.config),
        closing: () => this.closing,
        track: (cleanup) => {
          this.cleanups.add(cleanup);
          void cleanup.finally(() => this.cleanups.delete(cleanup));
        },
      },
      batch,
      replyQueue,
      opts,
    );
  }
}
