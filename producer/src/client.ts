import {
  Bindings,
  ErrorCodes,
  MANIFEST_TYPE,
  PipelineError,
  Publisher,
  AckBatcher,
  within,
  connectBroker,
  connectionNameFor,
  tlsFiles,
  declareReplyQueues,
  declareTopology,
  topologyOf,
  type WorkQueueType,
  isPipelineError,
  manifestQueueName,
  progressQueueName,
  declareProgressQueue,
  replyQueueName,
  ManifestSchema,
  ProgressSchema,
  PROGRESS_TYPE,
  type Config,
  type Logger,
  type Manifest,
  type OutputMode,
  type Progress,
} from '@amqp-pipeline/shared';
import type { Channel, ConsumeMessage, Options, RecoveringChannelModel } from 'amqplib';
import { BatchCollector, type CollectorStats, type Emitted, type MissingResult } from './collector.js';
import { correlationIdFor, jobMessage, newBatchId, type JobSpec } from './jobs.js';
import { PipelineSession, type SessionOptions } from './session.js';

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
}

export interface BatchOutcome {
  batch: string;
  jobs: number;
  /** Every expected result arrived. */
  complete: boolean;
  /** Results that did not arrive in time (they stay in the reply queue for `collect`). */
  missing: MissingResult[];
  stats: CollectorStats;
  /** How many results were `ok: false`. */
  failed: number;
}

export interface CollectOptions {
  onResult?: (r: Emitted) => void | Promise<void>;
  onProgress?: (done: number, total: number) => void;
  /** See SubmitOptions.written. */
  written?: (key: string) => boolean;
  timeoutMs: number;
  signal?: AbortSignal;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Jobs of a batch published and awaiting their confirms at once (the publisher's own bound). */
const PUBLISH_WINDOW = 1000;
/** Unacknowledged replies the producer takes at once, for small results. */
const REPLY_PREFETCH = 256;
/** ...but no more than about this many bytes of them (long lists come in parts of RESULT_PART_BYTES, 64 KiB by default). */
const REPLY_WINDOW_BYTES = 16 * 1024 * 1024;
/** Never fewer than this, so parts keep flowing. */
const REPLY_PREFETCH_MIN = 4;
/** Longest wait for batch clean-ups, and then for the connection to close, in close(). */
const CLOSE_WAIT_MS = 10_000;
/** How often printed replies are checkpointed (manifest rewritten, then acked), ms... */
const CHECKPOINT_MS = 1000;
/**
 * ...or sooner, once this many are waiting: a 64th of the batch's results, at least
 * CHECKPOINT_REPLIES_MIN and at most CHECKPOINT_REPLIES_MAX. Each checkpoint writes a progress
 * record of one bit per result (base64), so a 64th keeps that near 11 bytes per reply; and fewer
 * replies left unacknowledged cost the broker less: a classic reply queue holding runs of
 * 2,000 unacked replies cost it ~30 µs more per job (15% fewer jobs/s) than runs of ~300
 * (bench/probes/broker-cost.mjs, V=replylate).
 */
const CHECKPOINT_REPLIES_MIN = 250;
const CHECKPOINT_REPLIES_MAX = 2000;
/** Replies written out that make a checkpoint due, for a batch of `expected` results. */
export function checkpointReplies(expected: number): number {
  return Math.min(CHECKPOINT_REPLIES_MAX, Math.max(CHECKPOINT_REPLIES_MIN, Math.ceil(expected / 64)));
}
/**
 * ...or this many bytes of them. Replies written out but not yet checkpointed are not acked,
 * so they hold prefetch slots; the window grows past them (else small results would flow at
 * one window per checkpoint), but only up to this many bytes: past it the window stops
 * growing, the checkpoint (after the output has drained) acks them, and a slow output holds
 * back the broker instead of filling this process's memory (a second's worth of parts,
 * written to stdout unawaited, is unbounded on a fast broker).
 */
const CHECKPOINT_BYTES = 8 * 1024 * 1024;

/**
 * Declares the topology so jobs have somewhere to wait even before any service has run.
 * A least-privilege producer user may not configure exchanges and work queues: then the
 * topology is left to the services and the broker's definitions.
 */
async function ensureTopology(model: RecoveringChannelModel, log: Logger, type: WorkQueueType): Promise<void> {
  const ch = await model.createChannel();
  ch.on('error', () => {});
  try {
    await declareTopology(ch, topologyOf(type));
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
  private publisher: Publisher;
  private reopening: Promise<Publisher> | undefined;
  /** Set by close(): a batch whose reply channel goes now ends instead of waiting for a reconnect. */
  private closing = false;
  /** Batch clean-ups still running (acks, queue deletion); `close()` waits for them. */
  private readonly cleanups = new Set<Promise<void>>();
  /** Sessions opened and not yet closed; `close()` closes them. */
  private readonly sessions = new Set<PipelineSession>();

  private constructor(
    private readonly model: RecoveringChannelModel,
    publisher: Publisher,
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.publisher = publisher;
    // While the broker blocks publishers (a memory or disk alarm), stop sending: what is
    // written now would only pile up in this process's socket buffers.
    model.on('blocked', () => this.publisher.block());
    model.on('unblocked', () => this.publisher.unblock());
  }

  /** A publisher on a live channel: the current one, or a new one once the connection is back. */
  private async livePublisher(): Promise<Publisher> {
    if (!this.publisher.closed) return this.publisher;
    this.reopening ??= (async () => {
      // createConfirmChannel waits for the recovering connection to be re-established.
      const channel = await this.model.createConfirmChannel();
      channel.on('error', (err: Error) => this.log.warn({ err }, 'publish channel error'));
      this.publisher = new Publisher(channel);
      this.log.info('publish channel re-opened');
      return this.publisher;
    })().finally(() => {
      this.reopening = undefined;
    });
    return this.reopening;
  }

  /**
   * Publishes until confirmed. A publish lost with its channel (connection dropped, broker
   * restarted) is sent again, with the same message id and correlation id, on a new channel
   * once the connection is back; the consumer side and the collector make the possible
   * duplicate harmless. Refusals (unroutable) are not retried. Gives up at `deadline`.
   */
  private async publishReliably(
    exchange: string,
    routingKey: string,
    body: Buffer,
    options: Options.Publish,
    deadline: number,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let publisher: Publisher;
      try {
        publisher = await this.livePublisher();
      } catch (err) {
        // The connection is down (or going down): wait for recovery, within the deadline.
        if (Date.now() >= deadline) throw new PipelineError(ErrorCodes.CHANNEL_CLOSED, 'the broker connection did not come back in time', { cause: err });
        await delay(250);
        continue;
      }
      try {
        await publisher.publish(exchange, routingKey, body, options);
        return;
      } catch (err) {
        const again = isPipelineError(err) && err.retryable && Date.now() < deadline;
        if (!again) throw err;
        this.log.warn({ err, attempt, messageId: options.messageId }, 'publish not confirmed; sending it again');
      }
    }
  }

  static async connect(config: Config, log: Logger, connectionName = connectionNameFor('pipeline-cli')): Promise<PipelineClient> {
    const model = await connectBroker({
      url: config.AMQP_URL,
      connectionName,
      heartbeatSeconds: config.HEARTBEAT_SECONDS,
      connectRetries: config.CONNECT_RETRIES,
      tls: tlsFiles(config),
      log,
    });
    try {
      await ensureTopology(model, log, config.WORK_QUEUE_TYPE);
      const channel = await model.createConfirmChannel();
      channel.on('error', (err: Error) => log.warn({ err }, 'publish channel error'));
      return new PipelineClient(model, new Publisher(channel), config, log);
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
    const batch = opts.batch ?? newBatchId();
    // Both queues are declared at once; the jobs go out as soon as the reply queue is there,
    // while the manifest queue's declaration (and the manifest) follow.
    const declaring = declareReplyQueues((await this.livePublisher()).channel, batch, this.config.REPLY_QUEUE_TTL_MS);
    declaring.manifest.catch(() => {}); // awaited below
    await declaring.reply;
    const replyQueue = replyQueueName(batch);
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

    // A window of lanes, each publishing one job at a time until confirmed: at most
    // PUBLISH_WINDOW jobs are in flight, and a job's message is built only when its turn
    // comes (a batch of a million jobs does not become a million pending promises).
    const publishJobs = async () => {
      let next = 0;
      let failed = false;
      const lane = async () => {
        while (next < jobs.length && !failed) {
          const i = next++;
          const job = jobs[i]!;
          try {
            const message = jobMessage(job, correlationIdFor(batch, i), replyQueue);
            await this.publishReliably(job.exchange, job.routingKey, message.content, message.options, deadline);
          } catch (err) {
            failed = true;
            throw err;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(PUBLISH_WINDOW, jobs.length) }, lane));
    };
    const publishManifest = async () => {
      await declaring.manifest;
      await this.publishReliably(
        '',
        manifestQueueName(batch),
        Buffer.from(JSON.stringify(manifest)),
        { messageId: `${batch}.manifest`, contentType: 'application/json', persistent: true, type: MANIFEST_TYPE, appId: 'pipeline' },
        deadline,
      );
    };

    if (!opts.wait) {
      // The manifest promises these jobs to a later `collect`: only once all are confirmed.
      await publishJobs();
      await publishManifest();
      log.debug({ jobs: jobs.length }, 'batch published');
      return { batch, jobs: jobs.length, complete: false, missing: [], stats: { received: 0, duplicates: 0, unexpected: 0 }, failed: 0 };
    }
    // Waiting: start reading replies, publish the jobs and the manifest, all at once (results
    // that come before the consumer is ready simply wait in the queue).
    const gatheringP = this.gather(batch, replyQueue, {
      onResult: opts.onResult,
      onProgress: opts.onProgress,
      written: opts.written,
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      manifest,
    });
    const published = Promise.all([publishJobs(), publishManifest()]);
    published.catch(() => {}); // handled below, once the consumer is ready; not "unhandled" meanwhile
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
        publish: (exchange, routingKey, body, options, deadline) => this.publishReliably(exchange, routingKey, body, options, deadline),
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
    const replyQueue = replyQueueName(batch);
    const check = await this.model.createChannel();
    check.on('error', () => {});
    try {
      await check.checkQueue(replyQueue);
      await check.close();
    } catch (cause) {
      throw new PipelineError(
        ErrorCodes.BATCH_NOT_FOUND,
        `no results are waiting for batch ${batch}: its reply queue ${replyQueue} does not exist (already collected, expired, or never submitted)`,
        { cause },
      );
    }
    const manifest = (await this.peek(manifestQueueName(batch), (v) => ManifestSchema.safeParse(v))).find((m) => m.batch === batch);
    const records = manifest ? await this.peek(progressQueueName(batch), (v) => ProgressSchema.safeParse(v)) : [];
    const progress = mergeProgress(records.filter((p) => p.batch === batch));
    this.log.debug({ batch, manifest: manifest !== undefined, progressRecords: records.length, revisions: records.map((p) => p.revision) }, 'collecting');
    const gathering = await this.gather(batch, replyQueue, { ...opts, ...(manifest ? { manifest, ...(progress ? { progress } : {}) } : {}) });
    return gathering.done;
  }

  /**
   * The messages of a keep-newest queue (a batch's manifest or progress), read without taking
   * them out; none if there is no such queue (the producer died before writing it, or never
   * needed to). Normally there is one, but a broker that was killed may bring back an older
   * one beside the newest (its removal had not reached the disk), so all are read.
   */
  private async peek<T>(queue: string, parse: (v: unknown) => { success: true; data: T } | { success: false }): Promise<T[]> {
    const ch = await this.model.createChannel();
    ch.on('error', () => {});
    const found: T[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        const msg = await ch.get(queue, { noAck: false });
        if (!msg) break;
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
  }

  /**
   * Consumes a batch's reply queue. Replies whose results were written out are acknowledged
   * at checkpoints (about every second): first a progress record (a bitmap of the results
   * written out) replaces the old one in the batch's progress queue (confirmed), then the
   * acks go. So a producer killed at any moment leaves a record and a queue that agree, and
   * `collect` writes only what was never written (on stdout, the last second's results,
   * written but not yet checkpointed, may come again; an output file skips them).
   * Summaries to be added up are held until the batch is complete; then everything is acked
   * and the queues deleted.
   */
  private async gather(
    batch: string,
    replyQueue: string,
    opts: {
      onResult?: ((r: Emitted) => void | Promise<void>) | undefined;
      onProgress?: ((done: number, total: number) => void) | undefined;
      written?: ((key: string) => boolean) | undefined;
      timeoutMs: number;
      signal?: AbortSignal | undefined;
      manifest?: Manifest;
      progress?: Progress;
    },
  ): Promise<{ done: Promise<BatchOutcome>; stop: (completed: boolean) => Promise<void> }> {
    // Replies are acknowledged at checkpoints, after what they carried has been written out,
    // so a slow reader (a pipe) holds back the broker instead of filling this process's memory.
    let written: Promise<void> = Promise.resolve();
    // The channel each delivery came on: a message is acknowledged only on its own channel,
    // and only while that channel is the current one (never a tag of a dead channel).
    const origin = new WeakMap<object, Channel>();
    let channel: Channel | undefined;
    const alive = (m: object) => channel !== undefined && origin.get(m) === channel;
    /** Released replies waiting for the next checkpoint: just channel and tag, not content. */
    let pendingAcks: { ch: Channel; tag: number }[] = [];
    /** Their size: what was written out since the last checkpoint. */
    let pendingBytes = 0;
    const manifestQueue = manifestQueueName(batch);
    const progressQueue = progressQueueName(batch);
    let progressDeclared = opts.progress !== undefined;
    let revision = opts.progress?.revision ?? 0;
    let emittedAtCheckpoint = 0;
    const collector = new BatchCollector(
      batch,
      (r) => {
        const w = opts.onResult?.(r);
        if (w) written = w;
      },
      opts.manifest ? { manifest: opts.manifest, progress: opts.progress } : undefined,
      alive,
      opts.written,
    );
    // Acks go out in as few frames as they can: one `multiple` ack for a run of replies
    // (the broker's work per reply drops ~10%); never for a reply held back out of turn.
    const ackers = new WeakMap<Channel, AckBatcher>();
    const ack = (m: object) => {
      const ch = origin.get(m);
      if (ch && ch === channel) ackers.get(ch)?.ackTag((m as ConsumeMessage).fields.deliveryTag);
    };
    const ackTag = ({ ch, tag }: { ch: Channel; tag: number }) => {
      if (ch === channel) ackers.get(ch)?.ackTag(tag);
    };
    /** Sends the acks asked for so far at once (before a queue delete or a channel close). */
    const flushAcks = () => {
      if (channel) ackers.get(channel)?.flush();
    };

    /** Records what was written out (if anything was since the last time), then acks. */
    const checkpoint = async (): Promise<void> => {
      await written.catch(() => {});
      const toAck = pendingAcks;
      pendingAcks = [];
      pendingBytes = 0;
      if (collector.emittedCount > emittedAtCheckpoint) {
        const emitted = collector.emittedCount;
        const progress = collector.progress(revision + 1);
        if (progress) {
          const publisher = await this.livePublisher();
          if (!progressDeclared) {
            await declareProgressQueue(publisher.channel, batch, this.config.REPLY_QUEUE_TTL_MS);
            progressDeclared = true;
          }
          await publisher.publish('', progressQueue, Buffer.from(JSON.stringify(progress)), {
            contentType: 'application/json',
            persistent: true,
            type: PROGRESS_TYPE,
            appId: 'pipeline',
          });
          revision++;
          emittedAtCheckpoint = emitted;
        }
      }
      for (const a of toAck) ackTag(a);
      flushAcks();
    };
    let checkpointing: Promise<void> | undefined;
    const checkpointSoon = () => {
      checkpointing ??= checkpoint()
        .catch((err: unknown) => this.log.debug({ err }, 'checkpoint failed; the replies stay unacknowledged'))
        .finally(() => {
          checkpointing = undefined;
        });
      return checkpointing;
    };
    const ticker = setInterval(() => {
      if (pendingAcks.length) void checkpointSoon();
    }, CHECKPOINT_MS);
    let prefetch = REPLY_PREFETCH;
    let avgBytes = 256;
    const checkpointEvery = checkpointReplies(collector.expectedCount);

    let settle!: (completed: boolean) => void;
    const finished = new Promise<boolean>((resolve) => (settle = resolve));
    let stopping = false;
    let stopped = false;

    const onMessage = (ch: Channel) => (msg: ConsumeMessage | null) => {
      if (msg === null) return settle(false); // the queue was deleted
      // After the end nothing more is emitted: what arrives now stays unacknowledged, and
      // goes back to the queue (for `collect`) when the channel closes.
      if (stopping) return;
      origin.set(msg, ch);
      ackers.get(ch)?.delivered(msg);
      for (const m of collector.accept(msg)) {
        const from = origin.get(m);
        if (from) {
          pendingAcks.push({ ch: from, tag: (m as ConsumeMessage).fields.deliveryTag });
          pendingBytes += (m as ConsumeMessage).content.length;
        }
      }
      opts.onProgress?.(collector.doneCount, collector.expectedCount);
      if (collector.complete) return settle(true);
      if (pendingAcks.length >= checkpointEvery || pendingBytes >= CHECKPOINT_BYTES) void checkpointSoon();
      // The window: about REPLY_WINDOW_BYTES of replies in flight, plus room for replies held
      // back out of turn (they must never fill it, or the one in turn could not arrive), plus
      // room for those written out and awaiting the checkpoint, up to CHECKPOINT_BYTES of them.
      avgBytes = avgBytes * 0.8 + msg.content.length * 0.2;
      const byBytes = Math.floor(REPLY_WINDOW_BYTES / Math.max(1, avgBytes));
      const pendingRoom = pendingBytes < CHECKPOINT_BYTES ? pendingAcks.length : 0;
      const unacked = collector.held + pendingRoom;
      const wanted = Math.max(REPLY_PREFETCH_MIN, Math.min(REPLY_PREFETCH, byBytes)) + unacked;
      // Each change is a new consumer (below): grow early, shrink only for a big change (results
      // much larger than so far), not at every checkpoint.
      if (wanted > prefetch * 1.5 || wanted < prefetch / 4 || unacked >= prefetch - 2) {
        resize(ch, Math.max(wanted, unacked + REPLY_PREFETCH_MIN));
      }
    };

    /** The reply channel's consumer, and whether a switch to another one is under way. */
    let consumerTag: string | undefined;
    let resizing = false;
    /**
     * Changes the window. The prefetch is per consumer, the kind the broker keeps in the queue
     * itself: a channel-wide one costs it more per reply (RabbitMQ 3.10, 20,000 jobs: ~215 vs
     * ~190 µs/job, 10% fewer jobs/s; bench/probes/broker-cost.mjs V=globalqos / consumerqos).
     * A consumer's prefetch is fixed when it starts, so a new consumer with the new prefetch
     * takes over and the old one is cancelled; what the old one was sent stays on the channel
     * and is acked as before. Until the cancel, both may be sent replies (in queue order): the
     * window is then at most the old one plus the new one.
     */
    const resize = (ch: Channel, n: number): void => {
      if (resizing) return;
      resizing = true;
      prefetch = n;
      void (async () => {
        await ch.prefetch(n, false);
        if (channel !== ch || stopping) return;
        const old = consumerTag;
        consumerTag = (await ch.consume(replyQueue, onMessage(ch), { noAck: false })).consumerTag;
        if (old !== undefined) await ch.cancel(old);
      })()
        .catch((err: unknown) => this.log.debug({ err }, 'reply window not changed (channel closing?)'))
        .finally(() => {
          resizing = false;
        });
    };

    /** (Re)opens the reply channel; after a connection loss, once the connection is back. */
    const open = async (): Promise<void> => {
      const ch = await this.model.createChannel();
      ch.on('error', (err: Error) => this.log.warn({ err }, 'reply channel error'));
      ch.on('close', () => {
        if (channel !== ch) return;
        channel = undefined;
        if (stopping) return;
        this.log.warn({ batch }, 'reply channel lost; resuming when the connection is back');
        void reopen();
      });
      await ch.prefetch(prefetch, false);
      if (stopped) {
        // The batch ended while the connection was coming back: nobody reads this channel.
        await ch.close().catch(() => {});
        return;
      }
      ackers.set(ch, new AckBatcher(ch, (err) => this.log.debug({ err }, 'replies not acknowledged (channel closed); they stay in the queue')));
      channel = ch;
      consumerTag = undefined;
      consumerTag = (await ch.consume(replyQueue, onMessage(ch), { noAck: false })).consumerTag;
      if (stopped && channel === ch) {
        // The clean-up ran while the consume was under way and could not see this channel.
        channel = undefined;
        await ch.close().catch(() => {});
      }
    };
    /** Tries again until it works or the batch is over (the timeout settles it). */
    const reopen = async (): Promise<void> => {
      while (!stopping) {
        if (this.closing) {
          // The client is being closed: its connection will not come back. The batch ends
          // now (incomplete, unless it already was complete), not at its timeout.
          this.log.info({ batch }, 'client closed while collecting; what is still owed stays queued for collect');
          settle(false);
          return;
        }
        try {
          await open();
          this.log.info({ batch }, 'collecting again');
          return;
        } catch (err) {
          this.log.debug({ err }, 'reply channel not back yet');
          await delay(250);
        }
      }
    };
    await open();
    const timer = setTimeout(() => settle(false), opts.timeoutMs);
    if (opts.signal?.aborted) settle(false);
    opts.signal?.addEventListener('abort', () => settle(false), { once: true });

    /**
     * Ends the batch: on completion the held messages are acked and the queue deleted; on an
     * early stop the manifest is replaced by what is still owed. The outcome is known before
     * this cleanup, so callers get it at once; `close()` waits for the cleanup.
     */
    const stop = async (completed: boolean) => {
      if (stopping) return;
      stopping = true;
      clearTimeout(timer);
      clearInterval(ticker);
      const finalMessages = completed ? collector.finish() : []; // emits combined results now
      const cleanup = (async () => {
        // Bounded: with the connection down, a checkpoint under way cannot finish.
        if (checkpointing) await within(checkpointing.catch(() => {}), 5000);
        await written.catch(() => {});
        stopped = true;
        const ch = channel;
        try {
          if (completed && ch) {
            for (const a of pendingAcks) ackTag(a);
            for (const m of finalMessages) ack(m);
            flushAcks();
            await ch.deleteQueue(replyQueue).catch(() => {});
            await ch.deleteQueue(manifestQueue).catch(() => {});
            if (progressDeclared) await ch.deleteQueue(progressQueue).catch(() => {});
          } else if (ch) {
            // A last checkpoint; bounded, since with the connection down there is nothing to write.
            await within(checkpoint().catch(() => {}), 5000);
          }
        } finally {
          channel = undefined;
          if (ch) await within(ch.close().catch(() => {}), 5000);
        }
      })();
      this.cleanups.add(cleanup);
      void cleanup.finally(() => this.cleanups.delete(cleanup));
      if (!completed) {
        // An early stop must have its manifest written before anyone may `collect`.
        await cleanup.catch(() => {});
        collector.flushUnmatched();
      }
    };
    const done = finished.then(async (completed) => {
      await stop(completed).catch(() => {});
      return {
        batch,
        jobs: collector.jobCount,
        complete: completed,
        missing: collector.missing(),
        stats: { ...collector.stats },
        failed: collector.failedCount,
      };
    });
    return { done, stop };
  }

}

/**
 * One record of everything several progress records say: written-out results only ever
 * grow, so their union (and for a list in parts, the furthest part) is the most that is known.
 */
export function mergeProgress(records: readonly Progress[]): Progress | undefined {
  const [first, ...rest] = records;
  if (!first) return undefined;
  if (rest.length === 0) return first;
  const bits = Buffer.from(first.done, 'base64');
  let done = Buffer.from(bits);
  let revision = first.revision;
  const nextPart: Record<string, number> = { ...first.nextPart };
  for (const p of rest) {
    const b = Buffer.from(p.done, 'base64');
    if (b.length > done.length) done = Buffer.concat([done, Buffer.alloc(b.length - done.length)]);
    for (let i = 0; i < b.length; i++) done[i] = (done[i] as number) | (b[i] as number);
    for (const [k, v] of Object.entries(p.nextPart)) nextPart[k] = Math.max(nextPart[k] ?? 0, v);
    revision = Math.max(revision, p.revision);
  }
  for (const k of Object.keys(nextPart)) {
    const i = Number(k);
    if (((done[i >> 3] ?? 0) >> (i & 7)) & 1) delete nextPart[k];
  }
  return { batch: first.batch, revision, done: done.toString('base64'), nextPart };
}
