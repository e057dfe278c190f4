/**
 * The Publisher's window against the real broker: many more publishes than slots wait their
 * turn in order, every one is confirmed, and a channel that closes fails the ones waiting.
 */
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { ErrorCodes, Publisher, connectBroker, createLogger } from '@amqp-pipeline/shared';
import { ReliablePublisher } from '../producer/src/job-publisher.js';
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

  it('when the broker nacks a publish, then the channel is retired: the publish fails as refused, the ones in flight as a lost channel', async () => {
    // A full queue that refuses what does not fit: the broker's nack, on a one-node broker.
    const queue = `test.publisher.${randomUUID().slice(0, 8)}`;
    const admin = await conn.createChannel();
    await admin.assertQueue(queue, { durable: false, arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
    const publisher = new Publisher(await conn.createConfirmChannel());
    await publisher.publish('', queue, Buffer.from('fits'));
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        publisher.publish('', queue, Buffer.from(String(i))).then(
          () => 'ok',
          (err: { code?: string }) => err.code,
        ),
      ),
    );
    expect(outcomes).toContain(ErrorCodes.NACKED);
    expect(outcomes.filter((o) => o !== ErrorCodes.NACKED && o !== ErrorCodes.CHANNEL_CLOSED)).toEqual([]);
    expect(publisher.refused).toBe(true);
    expect(publisher.closed).toBe(true);
    await expect(publisher.publish('', queue, Buffer.from('late'))).rejects.toMatchObject({ code: ErrorCodes.CHANNEL_CLOSED });
    expect((await admin.checkQueue(queue)).messageCount).toBe(1);
    await admin.deleteQueue(queue);
    await admin.close();
  });

  it('when a job publish is nacked until the queue has room, then ReliablePublisher sends it again on a new channel, after a wait, and it lands once', async () => {
    const queue = `test.publisher.${randomUUID().slice(0, 8)}`;
    const admin = await conn.createChannel();
    await admin.assertQueue(queue, { durable: false, arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
    const lines: string[] = [];
    const sink = new PassThrough().setEncoding('utf8');
    sink.on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
    const log = createLogger('test', { level: 'info' }, sink);
    const model = await connectBroker({ url: amqpUrl(), connectionName: 'test-reliable', heartbeatSeconds: 10, connectRetries: 1, log });
    try {
      const reliable = await ReliablePublisher.open(model, log);
      await reliable.publish('', queue, Buffer.from('first'), { messageId: 'a' }, Date.now() + 10_000);
      const started = Date.now();
      const second = reliable.publish('', queue, Buffer.from('second'), { messageId: 'b' }, Date.now() + 20_000);
      // Refused while the queue is full; room is made after a second.
      await new Promise((r) => setTimeout(r, 1000));
      const first = await admin.get(queue, { noAck: true });
      expect(first && first.content.toString()).toBe('first');
      await second;
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
      const got = await admin.get(queue, { noAck: true });
      expect(got && got.content.toString()).toBe('second');
      expect(await admin.get(queue, { noAck: true })).toBe(false);
      const refusals = lines.filter((l) => l.includes('opening a new publish channel'));
      // Waits of 0.2, 0.4, 0.8 s...: a few new channels in that second, not a busy loop.
      expect(refusals.length).toBeGreaterThanOrEqual(1);
      expect(refusals.length).toBeLessThanOrEqual(5);
    } finally {
      await model.close();
      await admin.deleteQueue(queue);
      await admin.close();
    }
  });
});
