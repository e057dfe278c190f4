/**
 * The reply window: one consumer on a batch's reply queue, with a prefetch fixed for the whole
 * batch. It never changes while consuming, so there is no resize to skip or to stall: the only
 * things that free room in it are acks (after checkpoints) and spills (collector.ts), and both
 * are always possible. Reopens the channel after a connection loss (reconnect.ts).
 *
 * State kept:
 * - the current channel (undefined while the connection is down, and after `close`), its
 *   consumer, and one AckBatcher per channel;
 * - the channel each delivery came on: a reply is acked only on its own channel, and only
 *   while that channel is the current one (never a tag of a dead channel);
 * - when the last reply arrived, and how many stalls were seen (see `watch`); a stall ends
 *   with the channel closed and opened again, by the same path as a lost connection.
 */
import { AckBatcher, type Logger } from '@amqp-pipeline/shared/client';
import type { Channel, ConsumeMessage, RecoveringChannelModel } from 'amqplib';
import { reopen } from './reconnect.js';

export interface WindowLimits {
  /** Unacknowledged replies the broker may send at once (the consumer's prefetch). */
  prefetch: number;
  /** Most replies held back ahead of their turn; past it the furthest are spilled. */
  holdMessages: number;
  /** ...and most bytes of them. */
  holdBytes: number;
}

/** Small results (summaries, titles, short lists): a wide window. */
export const SMALL_RESULTS_WINDOW: WindowLimits = { prefetch: 1024, holdMessages: 512, holdBytes: 16 * 1024 * 1024 };
/** Lists that may come in parts of up to RESULT_PART_BYTES (64 KiB): a window of ~16 MiB. */
export const LARGE_RESULTS_WINDOW: WindowLimits = { prefetch: 256, holdMessages: 128, holdBytes: 16 * 1024 * 1024 };
/** Widest list job whose result surely fits one small message (primes or squares of 2,000 numbers: ~30 KB). */
const SMALL_LIST_WIDTH = 2000;

/**
 * The window for a batch, chosen once from its jobs: lists of wide ranges come as parts of up
 * to 64 KiB, so fewer of them in flight keep this process's memory near 16 MiB.
 */
export function windowFor(jobs: readonly { input: Record<string, unknown> }[]): WindowLimits {
  for (const j of jobs) {
    const { from, to, count } = j.input as { from?: unknown; to?: unknown; count?: unknown };
    if (typeof from === 'number' && typeof to === 'number' && count !== true && to - from + 1 > SMALL_LIST_WIDTH) return LARGE_RESULTS_WINDOW;
  }
  return SMALL_RESULTS_WINDOW;
}

/** Fewest jobs an ordered batch keeps published past its head (enough to keep a few services busy). */
export const MIN_LEAD = 8;
/** Most bytes a number takes in a list result (a square below 2^64 and its comma). */
const BYTES_PER_NUMBER = 21;
const PART_BYTES = 64 * 1024;

/**
 * How far past the head (the earliest job whose result is not yet complete) an `ordered` batch
 * publishes: results of jobs after the head must be held until their turn, so publishing no
 * more than the window can hold keeps them within it, and no reply need ever be sent round.
 * Each job may bring one result per kind, and a wide list several parts: the lead is the
 * window's `holdMessages` shared out among them (never below MIN_LEAD: a list so wide that
 * fewer fit may still be sent round, by the bytes bound).
 */
export function leadFor(jobs: readonly { kinds: readonly string[]; input: Record<string, unknown> }[], limits: WindowLimits): number {
  let perJob = 1;
  for (const j of jobs) {
    const { from, to, count } = j.input as { from?: unknown; to?: unknown; count?: unknown };
    const width = typeof from === 'number' && typeof to === 'number' && count !== true ? to - from + 1 : 0;
    const parts = Math.max(1, Math.ceil((width * BYTES_PER_NUMBER) / PART_BYTES));
    perJob = Math.max(perJob, j.kinds.length * parts);
  }
  return Math.max(MIN_LEAD, Math.floor(limits.holdMessages / perJob));
}

/**
 * Nothing arrived for this long while results were ready and the window had room: a stall.
 * It is logged, and the window consumes again on a new channel.
 */
export const STALL_MS = 5000;

export interface ReplyWindowOptions {
  model: RecoveringChannelModel;
  queue: string;
  prefetch: number;
  log: Logger;
  /** Every reply, with the channel it came on already recorded. `null`: the queue was deleted. */
  onMessage: (msg: ConsumeMessage | null) => void;
  /** True once the client is closing: its connection will not come back. */
  closing: () => boolean;
  /** Told when the connection is gone for good (the client closed while reconnecting). */
  onGone: () => void;
}

export class ReplyWindow {
  private channel: Channel | undefined;
  private readonly origin = new WeakMap<object, Channel>();
  private readonly ackers = new WeakMap<Channel, AckBatcher>();
  private stopped = false;
  private lastArrival = Date.now();
  /** The channel `watch` is closing to consume again (its close is not a lost connection). */
  private resubscribing: Channel | undefined;
  /** Stalls seen: results ready in the queue, room in the window, and nothing arriving. */
  stalls = 0;

  constructor(private readonly o: ReplyWindowOptions) {}

  /** Opens the channel and starts consuming. */
  start(): Promise<void> {
    return this.openChannel();
  }

  /** Whether `msg` came on the current channel (so it can still be acknowledged). */
  alive(msg: object): boolean {
    return this.channel !== undefined && this.origin.get(msg) === this.channel;
  }

  /** Acknowledges `msg` (in as few frames as can be), if its channel is the current one. */
  ack(msg: object): void {
    const ch = this.origin.get(msg);
    if (ch && ch === this.channel) this.ackers.get(ch)?.ackTag((msg as ConsumeMessage).fields.deliveryTag);
  }

  /** Sends the acks asked for so far at once (before a queue delete or a channel close). */
  flush(): void {
    if (this.channel) this.ackers.get(this.channel)?.flush();
  }

  /** Whether the window is consuming now (false while the connection is down). */
  get open(): boolean {
    return this.channel !== undefined;
  }

  /** Deletes queues on the reply channel (at the end of a complete batch). */
  async deleteQueues(names: readonly string[]): Promise<void> {
    const ch = this.channel;
    if (!ch) return;
    for (const q of names) await ch.deleteQueue(q).catch(() => {});
  }

  /** Stops consuming for good; what is unacknowledged goes back to the queue. */
  async close(): Promise<void> {
    this.stopped = true;
    const ch = this.channel;
    this.channel = undefined;
    if (ch) await ch.close().catch(() => {});
  }

  /**
   * Checks for a stall: nothing arrived for STALL_MS although the window has room (`unacked`,
   * what the caller holds, is below the prefetch) and the queue has replies ready. The window
   * itself cannot cause that; the broker can: on RabbitMQ 3.10, a consumer that a quorum reply
   * queue took while its leader was cut off from the cluster (row c4 of
   * test/faults/cluster.test.ts) was answered consume-ok but never sent a reply. So a stall is
   * logged as an error, with what the window holds, and the window consumes again: the channel
   * is closed and opened afresh, by the path a lost connection takes. Nothing is lost by that:
   * what was delivered and not acknowledged goes back to the queue, and a reply delivered twice
   * is a duplicate the collector drops.
   */
  async watch(unacked: number, state: Record<string, unknown>): Promise<boolean> {
    if (!this.channel || this.stopped || this.resubscribing === this.channel || Date.now() - this.lastArrival < STALL_MS || unacked >= this.o.prefetch) return false;
    const ch = await this.o.model.createChannel().catch(() => undefined);
    if (!ch) return false;
    ch.on('error', () => {});
    let stuck: Channel | undefined;
    try {
      const { messageCount } = await ch.checkQueue(this.o.queue);
      if (messageCount === 0 || Date.now() - this.lastArrival < STALL_MS || !this.channel || this.stopped) return false;
      this.stalls++;
      this.o.log.error(
        { queue: this.o.queue, ready: messageCount, unacked, prefetch: this.o.prefetch, idleMs: Date.now() - this.lastArrival, stalls: this.stalls, ...state },
        'reply path stalled: results are ready in the queue and the window has room, but none arrive; consuming again on a new channel',
      );
      stuck = this.channel;
      return true;
    } catch {
      return false;
    } finally {
      await ch.close().catch(() => {});
      if (stuck && stuck === this.channel) {
        this.resubscribing = stuck;
        await stuck.close().catch(() => {});
      }
    }
  }

  private async openChannel(): Promise<void> {
    const { model, log } = this.o;
    const ch = await model.createChannel();
    ch.on('error', (err: Error) => log.warn({ err }, 'reply channel error'));
    ch.on('close', () => {
      if (this.channel !== ch) return;
      this.channel = undefined;
      if (this.stopped) return;
      if (this.resubscribing === ch) log.warn({ queue: this.o.queue }, 'reply channel closed after a stall; consuming again');
      else log.warn({ queue: this.o.queue }, 'reply channel lost; resuming when the connection is back');
      void this.reopenChannel();
    });
    try {
      // Per consumer (not channel-wide), the kind the broker keeps in the queue itself: a
      // channel-wide one costs it ~10% more per reply (bench/probes/broker-cost.mjs).
      await ch.prefetch(this.o.prefetch, false);
      if (this.stopped) throw new Error('closed');
      const acks = new AckBatcher(ch, (err) => log.debug({ err }, 'replies not acknowledged (channel closed); they stay in the queue'));
      this.ackers.set(ch, acks);
      this.channel = ch;
      await ch.consume(
        this.o.queue,
        (msg) => {
          if (msg) {
            this.lastArrival = Date.now();
            this.origin.set(msg, ch);
            acks.delivered(msg);
          }
          this.o.onMessage(msg);
        },
        { noAck: false },
      );
      this.lastArrival = Date.now();
      if (this.stopped) throw new Error('closed');
    } catch (err) {
      if (this.channel === ch) this.channel = undefined;
      await ch.close().catch(() => {});
      throw err;
    }
  }

  private async reopenChannel(): Promise<void> {
    const outcome = await reopen(() => this.openChannel(), {
      stop: () => (this.stopped ? 'stopped' : this.o.closing() ? 'closing' : false),
      onRetry: (err) => this.o.log.debug({ err }, 'reply channel not back yet'),
    });
    if ('value' in outcome) this.o.log.info({ queue: this.o.queue }, 'collecting again');
    else if (outcome.stopped === 'closing') {
      this.o.log.info({ queue: this.o.queue }, 'client closed while collecting; what is still owed stays queued for collect');
      this.o.onGone();
    }
  }
}
