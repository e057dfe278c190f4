/**
 * Publishing jobs: every publish confirmed and `mandatory`, sent again (same message id and
 * correlation id) on a new channel when its channel was lost, until a deadline.
 *
 * State kept:
 * - `ReliablePublisher`: the current Publisher (one confirm channel), and the re-open under
 *   way if that channel is gone (one at a time, shared by every waiting publish);
 * - `runLanes`: the next index to start, and whether a lane failed (then no new one starts).
 */
import { ErrorCodes, PipelineError, Publisher, isPipelineError, type Logger } from '@amqp-pipeline/shared/client';
import type { Options, RecoveringChannelModel } from 'amqplib';

/** Jobs of a batch published and awaiting their confirms at once (the publisher's own bound). */
export const PUBLISH_WINDOW = 1000;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs `task(i)` for i = 0..count-1, at most `width` at once, each started only when a slot
 * is free (a batch of a million jobs does not become a million pending promises). The first
 * failure stops new starts and rejects once the running ones have settled.
 */
export async function runLanes(count: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (next < count && !failed) {
      const i = next++;
      try {
        await task(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const lanes = Array.from({ length: Math.min(width, count) }, lane);
  const settled = await Promise.allSettled(lanes);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure) throw failure.reason;
}

export class ReliablePublisher {
  private publisher: Publisher;
  private reopening: Promise<Publisher> | undefined;
  /** Publish channels retired by a nack one after another (reset by a channel lost otherwise, or a confirmed publish). */
  private refusedInARow = 0;

  constructor(
    private readonly model: RecoveringChannelModel,
    publisher: Publisher,
    private readonly log: Logger,
  ) {
    this.publisher = publisher;
    // While the broker blocks publishers (a memory or disk alarm), stop sending: what is
    // written now would only pile up in this process's socket buffers.
    model.on('blocked', () => this.publisher.block());
    model.on('unblocked', () => this.publisher.unblock());
  }

  static async open(model: RecoveringChannelModel, log: Logger): Promise<ReliablePublisher> {
    const channel = await model.createConfirmChannel();
    channel.on('error', (err: Error) => log.warn({ err }, 'publish channel error'));
    return new ReliablePublisher(model, new Publisher(channel), log);
  }

  /** A publisher on a live channel: the current one, or a new one once the connection is back. */
  async live(): Promise<Publisher> {
    if (!this.publisher.closed) return this.publisher;
    this.reopening ??= (async () => {
      // A channel retired by a nack (see Publisher): the next one waits, longer each time in a
      // row (0.2 s doubling to 5 s), so that it is opened once the broker can take the message.
      if (this.publisher.refused) {
        const waitMs = Math.min(5000, 200 * 2 ** this.refusedInARow++);
        this.log.warn({ waitMs, refusedInARow: this.refusedInARow }, 'the broker refused a publish; opening a new publish channel');
        await delay(waitMs);
      } else {
        this.refusedInARow = 0;
      }
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
   * duplicate harmless. A nack retires the channel and is sent again on a new one, after a
   * wait (see `live`). Refusals (unroutable) are not retried. Gives up at `deadline`.
   */
  async publish(exchange: string, routingKey: string, body: Buffer, options: Options.Publish, deadline: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let publisher: Publisher;
      try {
        publisher = await this.live();
      } catch (err) {
        // The connection is down (or going down): wait for recovery, within the deadline.
        if (Date.now() >= deadline) throw new PipelineError(ErrorCodes.CHANNEL_CLOSED, 'the broker connection did not come back in time', { cause: err });
        await delay(250);
        continue;
      }
      try {
        await publisher.publish(exchange, routingKey, body, options);
        this.refusedInARow = 0;
        return;
      } catch (err) {
        const again = isPipelineError(err) && err.retryable && Date.now() < deadline;
        if (!again) throw err;
        this.log.warn({ err, attempt, messageId: options.messageId }, 'publish not confirmed; sending it again');
      }
    }
  }
}
