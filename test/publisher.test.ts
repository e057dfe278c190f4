/**
 * The Publisher's window against the real broker: many more publishes than slots wait their
 * turn in order, every one is confirmed, and a channel that closes fails the ones waiting.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCodes, Publisher } from '@amqp-pipeline/shared';
import amqp, { type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl } from './helpers.js';

describe('Publisher', () => {
  let conn: ChannelModel;
  beforeAll(async () => {
    conn = await amqp.connect(amqpUrl(), { noDelay: true });
  });
  afterAll(async () => {
    await conn?.close();
  });

  it('keeps at most maxInFlight unconfirmed, and sends thousands of waiting publishes in call order', async () => {
    const queue = `test.publisher.${randomUUID().slice(0, 8)}`;
    const admin = await conn.createChannel();
    await admin.assertQueue(queue, { durable: false, autoDelete: false });
    const publisher = new Publisher(await conn.createConfirmChannel(), { maxInFlight: 8 });
    const n = 3000; // well past the point where the waiting list is compacted (1024)
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, publisher.inFlight)), 1);
    try {
      await Promise.all(
        Array.from({ length: n }, (_, i) => {
          most = Math.max(most, publisher.inFlight);
          return publisher.publish('', queue, Buffer.from(String(i)));
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(8);
    expect(publisher.inFlight).toBe(0);

    const seen: number[] = [];
    for (;;) {
      const m = await admin.get(queue, { noAck: true });
      if (!m) break;
      seen.push(Number(m.content.toString()));
    }
    expect(seen).toEqual(Array.from({ length: n }, (_, i) => i));
    await admin.deleteQueue(queue);
    await publisher.channel.close();
    await admin.close();
  });

  it('rejects the publishes still waiting for a slot when the channel closes', async () => {
    const queue = `test.publisher.${randomUUID().slice(0, 8)}`;
    const admin = await conn.createChannel();
    await admin.assertQueue(queue, { durable: false });
    const channel = await conn.createConfirmChannel();
    const publisher = new Publisher(channel, { maxInFlight: 2 });
    const outcomes = Array.from({ length: 2000 }, (_, i) =>
      publisher.publish('', queue, Buffer.from(String(i))).then(
        () => 'ok',
        (err: { code?: string }) => err.code,
      ),
    );
    await channel.close();
    const results = await Promise.all(outcomes);
    // Most were still waiting for a slot: they fail as closed, none hangs, none is left over.
    expect(results.filter((r) => r === ErrorCodes.CHANNEL_CLOSED).length).toBeGreaterThan(1900);
    expect([...new Set(results)].sort()).toEqual(expect.arrayContaining([ErrorCodes.CHANNEL_CLOSED]));
    expect(results.filter((r) => r !== 'ok' && r !== ErrorCodes.CHANNEL_CLOSED)).toEqual([]);
    expect(publisher.closed).toBe(true);
    await expect(publisher.publish('', queue, Buffer.from('late'))).rejects.toMatchObject({ code: ErrorCodes.CHANNEL_CLOSED });
    await admin.deleteQueue(queue);
    await admin.close();
  });
});
