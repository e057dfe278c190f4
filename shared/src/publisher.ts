import type { ConfirmChannel, Message, Options } from 'amqplib';
import { ErrorCodes, PipelineError } from './errors.js';
import { publishFields } from './frames.js';

/** What amqplib's ConfirmChannel.publish does in two steps: send the message, then queue its confirm callback. */
interface ChannelSteps {
  sendMessage(fields: object, properties: object, content: Buffer): boolean;
  pushConfirmCallback(cb: (err: unknown) => void): void;
}

function hasSteps(channel: unknown): channel is ChannelSteps {
  const c = channel as Partial<ChannelSteps>;
  return typeof c.sendMessage === 'function' && typeof c.pushConfirmCallback === 'function';
}

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
  exchange: string;
  routingKey: string;
  messageId: unknown;
  correlationId: unknown;
  returned: boolean;
}

export interface PublisherOptions {
  /**
   * Most publishes awaiting their confirm at once; `publish` waits for a free slot.
   * @defaultValue 1000
   */
  maxInFlight?: number;
}

/**
 * Publishes through one confirm channel. Every publish is `mandatory`:
 * the returned promise resolves only when the broker has confirmed it AND routed it
 * to at least one queue; a return (no queue bound) rejects with PIPELINE_ERR_UNROUTABLE,
 * a nack with PIPELINE_ERR_NACKED (and retires the channel: see `retire`), a closed channel
 * with PIPELINE_ERR_CHANNEL_CLOSED.
 * Honours the socket's backpressure ('drain') and bounds unconfirmed publishes.
 */
export class Publisher {
  readonly channel: ConfirmChannel;
  private readonly maxInFlight: number;
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private closedError: PipelineError | undefined;
  private drained: Promise<void> | undefined;
  private wakeDrained: (() => void) | undefined;
  /**
   * Publishes waiting for a slot, oldest first (`slotHead` is the next to wake). A plain
   * array's shift() copies the whole array once it is large (tens of thousands of waiters
   * live in V8's large-object space, which cannot be trimmed in place).
   */
  private slotWaiters: (() => void)[] = [];
  private slotHead = 0;
  private blocked: Promise<void> | undefined;
  private wakeBlocked: (() => void) | undefined;
  /** The channel's two steps of a publish, when it has them (see `send`). */
  private readonly steps: ChannelSteps | undefined;

  constructor(channel: ConfirmChannel, options: PublisherOptions = {}) {
    this.channel = channel;
    this.steps = hasSteps(channel) ? channel : undefined;
    this.maxInFlight = options.maxInFlight ?? 1000;
    // A return comes before the confirm of its publish, and returns come in publish order: it
    // belongs to the oldest publish not yet returned with the same exchange, routing key and
    // ids (publishes that alike would all be returned). Matching by properties, not by a
    // header of ours, spares the broker a headers table on every message.
    channel.on('return', (msg: Message) => {
      const { exchange, routingKey } = msg.fields;
      const { messageId, correlationId } = msg.properties as { messageId?: unknown; correlationId?: unknown };
      for (const p of this.pending.values()) {
        if (!p.returned && p.exchange === exchange && p.routingKey === routingKey && p.messageId === messageId && p.correlationId === correlationId) {
          p.returned = true;
          return;
        }
      }
    });
    channel.on('drain', () => this.wakeDrained?.());
    channel.on('close', () => this.failAll(new PipelineError(ErrorCodes.CHANNEL_CLOSED, 'channel closed before the publish was confirmed', { retryable: true })));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** True once the channel has closed: nothing more can be published through it. */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** True once a nack has retired the channel (see `retire`): the next one should wait a little. */
  refused = false;

  /**
   * Holds new publishes back until `unblock` (the broker's connection.blocked: a resource
   * alarm). Publishes already written still get their confirms.
   */
  block(): void {
    if (this.blocked) return;
    this.blocked = new Promise<void>((resolve) => (this.wakeBlocked = resolve));
  }

  unblock(): void {
    const wake = this.wakeBlocked;
    this.blocked = undefined;
    this.wakeBlocked = undefined;
    wake?.();
  }

  async publish(exchange: string, routingKey: string, content: Buffer, options: Options.Publish = {}): Promise<void> {
    while (this.pending.size >= this.maxInFlight && !this.closedError) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    }
    while ((this.drained || this.blocked) && !this.closedError) await (this.drained ?? this.blocked);
    if (this.closedError) throw this.closedError;

    const seq = ++this.seq;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, exchange, routingKey, messageId: options.messageId, correlationId: options.correlationId, returned: false });
      let writable: boolean;
      try {
        writable = this.send(exchange, routingKey, content, options, (err: unknown) => this.settle(seq, err));
      } catch (err) {
        this.pending.delete(seq);
        reject(new PipelineError(ErrorCodes.CHANNEL_CLOSED, 'channel is closed', { cause: err, retryable: true }));
        return;
      }
      if (!writable && !this.drained) {
        this.drained = new Promise<void>((wake) => {
          this.wakeDrained = () => {
            this.drained = undefined;
            this.wakeDrained = undefined;
            wake();
          };
        });
      }
    });
  }

  /**
   * `channel.publish(..., { ...options, mandatory: true }, cb)`, done in amqplib's own two steps
   * with the fields built here: amqplib's options-to-fields step copies the options and makes a
   * headers object for every message (~2 µs), where most of ours have none. Falls back to
   * `channel.publish` for a channel without those steps, or options that step is needed for.
   */
  private send(exchange: string, routingKey: string, content: Buffer, options: Options.Publish, cb: (err: unknown) => void): boolean {
    const fields = this.steps ? publishFields(exchange, routingKey, options) : undefined;
    if (!this.steps || !fields) return this.channel.publish(exchange, routingKey, content, { ...options, mandatory: true }, cb);
    const writable = this.steps.sendMessage(fields, fields, content);
    this.steps.pushConfirmCallback(cb);
    return writable;
  }

  private settle(seq: number, err: unknown): void {
    const p = this.pending.get(seq);
    if (!p) return;
    this.pending.delete(seq);
    this.wakeOneWaiter();
    if (err) {
      // amqplib fails the confirms still outstanding with 'channel closed' just before the
      // channel's 'close' event reaches us: that is a lost channel, not a refusal.
      const closed =
        this.closedError ??
        ((err as { message?: unknown }).message === 'channel closed'
          ? new PipelineError(ErrorCodes.CHANNEL_CLOSED, 'channel closed before the publish was confirmed', { cause: err, retryable: true })
          : undefined);
      p.reject(closed ?? new PipelineError(ErrorCodes.NACKED, `broker refused the message for ${p.exchange || '(default)'}/${p.routingKey}`, { cause: err, retryable: true }));
      if (!closed) this.retire();
    } else if (p.returned) {
      p.reject(
        new PipelineError(ErrorCodes.UNROUTABLE, `no queue is bound for routing key "${p.routingKey}" on exchange "${p.exchange || '(default)'}"`, {
          details: { exchange: p.exchange, routingKey: p.routingKey },
        }),
      );
    } else {
      p.resolve();
    }
  }

  /**
   * A nack retires the channel: nothing more is published through it, what is in flight fails
   * as a lost channel (retryable), and the channel is closed. On a cluster a channel can stay
   * refused: one opened just after a quorum queue's leader went down keeps being nacked for
   * that queue after a new leader is elected (RabbitMQ 3.10, seen for 15 s and more), while a
   * channel opened later is not. So whoever publishes again does it on a new channel.
   */
  private retire(): void {
    if (this.closedError) return;
    this.refused = true;
    this.failAll(new PipelineError(ErrorCodes.CHANNEL_CLOSED, 'channel retired: the broker refused a message on it', { retryable: true }));
    this.channel.close().catch(() => {});
  }

  private wakeOneWaiter(): void {
    if (this.slotHead >= this.slotWaiters.length) return;
    const wake = this.slotWaiters[this.slotHead]!;
    this.slotHead++;
    if (this.slotHead === this.slotWaiters.length) {
      this.slotWaiters = [];
      this.slotHead = 0;
    } else if (this.slotHead >= 1024 && this.slotHead * 2 >= this.slotWaiters.length) {
      this.slotWaiters = this.slotWaiters.slice(this.slotHead);
      this.slotHead = 0;
    }
    wake();
  }

  private failAll(err: PipelineError): void {
    this.closedError = err;
    for (const [seq, p] of this.pending) {
      this.pending.delete(seq);
      p.reject(err);
    }
    const waiters = this.slotWaiters.slice(this.slotHead);
    this.slotWaiters = [];
    this.slotHead = 0;
    for (const wake of waiters) wake();
    this.wakeDrained?.();
    this.unblock();
  }
}
