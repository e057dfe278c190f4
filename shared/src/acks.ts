import type { Channel, Message } from 'amqplib';

/**
 * Acknowledges deliveries of one channel in as few frames as it safely can.
 *
 * Every ack asked for in one turn of the event loop is sent at the end of that turn (no job
 * waits longer than that), as ONE `basic.ack` with `multiple` for the longest run of finished
 * deliveries starting at the oldest delivery still open, and single acks for finished ones
 * after a gap (a job still running, whose delivery a `multiple` ack would wrongly cover). For
 * small jobs, which mostly finish in order, that is one ack frame per turn instead of one per
 * job; on a quorum queue every ack frame is a log entry, so this is broker work saved too.
 *
 * Every delivery must be registered with `delivered` before it is acked or nacked, and all
 * acks, nacks and rejects of the channel must go through this object.
 */
export class AckBatcher {
  /** Deliveries not yet acked or nacked, oldest first (a Set keeps insertion order). */
  private readonly open = new Set<number>();
  private finished: number[] = [];
  private scheduled = false;

  /** `onError` hears about acks the channel refused (it closed meanwhile). */
  constructor(
    private readonly channel: Channel,
    private readonly onError: (err: unknown) => void,
  ) {}

  delivered(msg: Message): void {
    this.open.add(msg.fields.deliveryTag);
  }

  /** Acks `msg` at the end of this turn of the event loop. */
  ack(msg: Message): void {
    this.ackTag(msg.fields.deliveryTag);
  }

  /** Acks the delivery with this tag at the end of this turn of the event loop. */
  ackTag(deliveryTag: number): void {
    this.finished.push(deliveryTag);
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  /** Nacks (`requeue` or not) at once. Throws as `channel.nack` does. */
  nack(msg: Message, requeue: boolean): void {
    this.open.delete(msg.fields.deliveryTag);
    this.channel.nack(msg, false, requeue);
  }

  /** Sends the acks asked for so far (also done by itself at the end of each turn). */
  flush(): void {
    this.scheduled = false;
    if (this.finished.length === 0) return;
    const done = new Set(this.finished);
    this.finished = [];
    let upTo = -1;
    for (const tag of this.open) {
      if (!done.has(tag)) break;
      this.open.delete(tag);
      done.delete(tag);
      upTo = tag;
    }
    try {
      if (upTo >= 0) this.channel.ack(fake(upTo), true);
      for (const tag of done) {
        this.open.delete(tag);
        this.channel.ack(fake(tag), false);
      }
    } catch (err) {
      // The channel is gone: the broker redelivers what it did not see acked (a duplicate
      // result at worst, which the producer drops).
      this.onError(err);
    }
  }

  /** Deliveries registered and not yet acked or nacked (tests, diagnostics). */
  get openCount(): number {
    return this.open.size;
  }
}

/** `channel.ack` only reads the delivery tag. */
function fake(deliveryTag: number): Message {
  return { fields: { deliveryTag } } as Message;
}
