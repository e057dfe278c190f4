import { randomUUID } from 'node:crypto';
import {
  Bindings,
  ErrorCodes,
  MANIFEST_TYPE,
  PipelineError,
  Publisher,
  connectBroker,
  connectionNameFor,
  declareReplyQueue,
  declareTopology,
  replyQueueName,
  type Config,
  type Logger,
  type Manifest,
} from '@amqp-pipeline/shared';
import type { Channel, ConsumeMessage, RecoveringChannelModel } from 'amqplib';
import { BatchCollector, type CollectedResult, type CollectorStats, type MissingResult } from './collector.js';
import { correlationIdFor, newBatchId, type JobSpec } from './jobs.js';

export interface SubmitOptions {
  /** Batch id; a new one by default. */
  batch?: string;
  /** Called for every result as it arrives (when waiting). */
  onResult?: (r: CollectedResult) => void;
  /** Wait for every result; false returns as soon as every job is confirmed. */
  wait: boolean;
  /** Longest wait for results, ms. */
  timeoutMs: number;
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
  onResult?: (r: CollectedResult) => void;
  timeoutMs: number;
}

/**
 * The producer side of the pipeline: publishes batches of jobs through a confirm channel
 * and gathers their results from the batch's durable reply queue.
 */
export class PipelineClient {
  private constructor(
    private readonly model: RecoveringChannelModel,
    private readonly publisher: Publisher,
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  static async connect(config: Config, log: Logger, connectionName = connectionNameFor('pipeline-cli')): Promise<PipelineClient> {
    const model = await connectBroker({
      url: config.AMQP_URL,
      connectionName,
      heartbeatSeconds: config.HEARTBEAT_SECONDS,
      connectRetries: config.CONNECT_RETRIES,
      log,
    });
    try {
      const channel = await model.createConfirmChannel();
      channel.on('error', (err: Error) => log.warn({ err }, 'publish channel error'));
      await declareTopology(channel);
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
    const replyQueue = await declareReplyQueue(this.publisher.channel, batch, this.config.REPLY_QUEUE_TTL_MS);
    const manifest: Manifest = {
      batch,
      createdAt: new Date().toISOString(),
      jobs: jobs.map((j, i) => ({ id: correlationIdFor(batch, i), kinds: j.kinds, input: j.body })),
    };
    const log = this.log.child({ batch });

    const gathering = opts.wait
      ? await this.gather(batch, replyQueue, { onResult: opts.onResult, timeoutMs: opts.timeoutMs, manifest })
      : undefined;
    try {
      await Promise.all(
        jobs.map((job, i) =>
          this.publisher.publish(job.exchange, job.routingKey, Buffer.from(JSON.stringify(job.body)), {
            messageId: randomUUID(),
            correlationId: correlationIdFor(batch, i),
            replyTo: replyQueue,
            contentType: 'application/json',
            persistent: true,
            type: job.type,
            appId: 'pipeline',
            timestamp: Math.floor(Date.now() / 1000),
            headers: { 'x-pipeline-batch': batch },
          }),
        ),
      );
      await this.publisher.publish('', replyQueue, Buffer.from(JSON.stringify(manifest)), {
        contentType: 'application/json',
        persistent: true,
        type: MANIFEST_TYPE,
        appId: 'pipeline',
      });
    } catch (err) {
      await gathering?.stop(false);
      throw err;
    }
    log.debug({ jobs: jobs.length }, 'batch published');
    if (!gathering) return { batch, jobs: jobs.length, complete: false, missing: [], stats: { received: 0, duplicates: 0, unexpected: 0 }, failed: 0 };
    return gathering.done;
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
    const ch = await this.model.createChannel();
    ch.on('error', () => {});
    try {
      const idle: string[] = [];
      for (const q of queues) if ((await ch.checkQueue(q)).consumerCount === 0) idle.push(q);
      return idle;
    } finally {
      await ch.close().catch(() => {});
    }
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
    const gathering = await this.gather(batch, replyQueue, { onResult: opts.onResult, timeoutMs: opts.timeoutMs });
    return gathering.done;
  }

  async close(): Promise<void> {
    await this.model.close().catch(() => {});
  }

  /**
   * Consumes a reply queue without acking until the batch is complete: then everything
   * is acked and the queue deleted. On timeout (or failure) the channel closes unacked,
   * so every result goes back to the queue for a later `collect`.
   */
  private async gather(
    batch: string,
    replyQueue: string,
    opts: { onResult?: ((r: CollectedResult) => void) | undefined; timeoutMs: number; manifest?: Manifest },
  ): Promise<{ done: Promise<BatchOutcome>; stop: (completed: boolean) => Promise<void> }> {
    let failed = 0;
    const collector = new BatchCollector(
      batch,
      (r) => {
        if (!r.result.ok) failed++;
        opts.onResult?.(r);
      },
      opts.manifest,
    );
    const channel: Channel = await this.model.createChannel();
    channel.on('error', (err: Error) => this.log.warn({ err }, 'reply channel error'));

    let settle!: (completed: boolean) => void;
    const finished = new Promise<boolean>((resolve) => (settle = resolve));
    let lost: Error | undefined;
    channel.on('close', () => {
      lost = new PipelineError(ErrorCodes.CHANNEL_CLOSED, `lost the connection while collecting; the results wait in ${replyQueue}: run \`pipeline collect ${batch}\``, { retryable: true });
      settle(false);
    });
    await channel.consume(
      replyQueue,
      (msg: ConsumeMessage | null) => {
        if (msg === null) return settle(false);
        collector.accept(msg);
        if (collector.complete) settle(true);
      },
      { noAck: false },
    );
    const timer = setTimeout(() => settle(false), opts.timeoutMs);

    let stopped = false;
    const stop = async (completed: boolean) => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      if (completed) {
        channel.ackAll();
        await channel.deleteQueue(replyQueue).catch(() => {});
      }
      await channel.close().catch(() => {});
    };
    const done = finished.then(async (completed) => {
      const wasLost = lost && !completed;
      if (!completed && !collector.knowsJobs) collector.flushUnmatched();
      await stop(completed && !wasLost);
      if (wasLost && lost) throw lost;
      return { batch, jobs: collector.jobCount, complete: completed, missing: collector.missing(), stats: { ...collector.stats }, failed };
    });
    return { done, stop };
  }
}
