import type { Channel, Message } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { AckBatcher } from './acks.js';

/** Records what would go on the wire (the batching is pure logic; the broker tests run it for real). */
function recorder() {
  const frames: string[] = [];
  const channel = {
    ack: (m: Message, multiple?: boolean) => frames.push(`ack ${m.fields.deliveryTag}${multiple ? ' multiple' : ''}`),
    nack: (m: Message, _all?: boolean, requeue?: boolean) => frames.push(`nack ${m.fields.deliveryTag}${requeue ? ' requeue' : ''}`),
  } as unknown as Channel;
  return { channel, frames };
}
const msg = (tag: number) => ({ fields: { deliveryTag: tag } }) as Message;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('AckBatcher', () => {
  it('when jobs finish in order within a turn, then one multiple ack covers them all', async () => {
    const { channel, frames } = recorder();
    const acks = new AckBatcher(channel, () => {});
    for (let t = 1; t <= 5; t++) acks.delivered(msg(t));
    for (let t = 1; t <= 5; t++) acks.ack(msg(t));
    expect(frames).toEqual([]); // nothing before the end of the turn
    await turn();
    expect(frames).toEqual(['ack 5 multiple']);
    expect(acks.openCount).toBe(0);
  });

  it('when a job before them is still running, then the finished ones after it are acked one by one, never covered', async () => {
    const { channel, frames } = recorder();
    const acks = new AckBatcher(channel, () => {});
    for (let t = 1; t <= 6; t++) acks.delivered(msg(t));
    for (const t of [1, 2, 4, 6]) acks.ack(msg(t));
    await turn();
    expect(frames).toEqual(['ack 2 multiple', 'ack 4', 'ack 6']);
    expect(acks.openCount).toBe(2); // 3 and 5 still running
    acks.ack(msg(3));
    acks.ack(msg(5));
    await turn();
    expect(frames.slice(3)).toEqual(['ack 5 multiple']);
    expect(acks.openCount).toBe(0);
  });

  it('when a job is handed back, then it is nacked at once and a later multiple ack may pass over it', async () => {
    const { channel, frames } = recorder();
    const acks = new AckBatcher(channel, () => {});
    for (let t = 1; t <= 3; t++) acks.delivered(msg(t));
    acks.nack(msg(2), true);
    expect(frames).toEqual(['nack 2 requeue']);
    acks.ack(msg(1));
    acks.ack(msg(3));
    await turn();
    expect(frames).toEqual(['nack 2 requeue', 'ack 3 multiple']);
  });

  it('when flushed by hand, then the pending acks go at once and the end of the turn sends nothing more', async () => {
    const { channel, frames } = recorder();
    const acks = new AckBatcher(channel, () => {});
    acks.delivered(msg(7));
    acks.ack(msg(7));
    acks.flush();
    expect(frames).toEqual(['ack 7 multiple']);
    await turn();
    expect(frames).toEqual(['ack 7 multiple']);
  });

  it('when the channel refuses the ack (closed), then the error is reported, not thrown', async () => {
    const errors: unknown[] = [];
    const channel = {
      ack: () => {
        throw new Error('Channel closed');
      },
    } as unknown as Channel;
    const acks = new AckBatcher(channel, (err) => errors.push(err));
    acks.delivered(msg(1));
    acks.ack(msg(1));
    await turn();
    expect(errors).toHaveLength(1);
  });
});
