/**
 * A service's clean stop against the real broker: every job it answered is acknowledged before
 * the connection closes (none comes back to be answered twice), and every job it did not get
 * to is handed back.
 */
import { randomUUID } from 'node:crypto';
import { createLogger, loadConfig, runConsumer } from '@amqp-pipeline/shared';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl } from './helpers.js';

describe('runConsumer close()', () => {
  let conn: ChannelModel;
  let ch: ConfirmChannel;
  beforeAll(async () => {
    conn = await amqp.connect(amqpUrl());
    ch = await conn.createConfirmChannel();
  });
  afterAll(async () => {
    await conn?.close();
  });

  for (const round of [1, 2, 3]) {
    it(`when stopped mid-stream (round ${round}), then the jobs it answered are acked and only the others are handed back`, async () => {
      const queue = `test.close.${randomUUID().slice(0, 8)}`;
      const replies = `${queue}.replies`;
      await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      await ch.assertQueue(replies, { durable: false });
      const total = 300;
      for (let i = 0; i < total; i++) {
        ch.sendToQueue(queue, Buffer.from(JSON.stringify({ i })), { correlationId: String(i), replyTo: replies, persistent: true });
      }
      await ch.waitForConfirms();

      const config = loadConfig({ ...process.env, AMQP_URL: amqpUrl(), PREFETCH: '40', HEALTH_PORT: '0' });
      let answered = 0;
      const consumer = await runConsumer(
        {
          service: 'close-test',
          queue: { name: queue, arguments: { 'x-queue-type': 'quorum' } },
          kind: 'title',
          schema: z.object({ i: z.number() }),
          async handle(job) {
            await new Promise((resolve) => setTimeout(resolve, 5 + ((job.i * 37) % 55)));
            answered++;
            return { title: String(job.i) };
          },
        },
        { config, log: createLogger('close-test', { level: 'warn' }) },
      );
      while (answered < 100) await new Promise((resolve) => setTimeout(resolve, 5));
      await consumer.close();

      const replied = new Set<string>();
      for (;;) {
        const m = await ch.get(replies, { noAck: true });
        if (!m) break;
        replied.add(String(m.properties.correlationId));
      }
      const back: string[] = [];
      for (;;) {
        const m = await ch.get(queue, { noAck: true });
        if (!m) break;
        back.push(String(m.properties.correlationId));
      }
      await ch.deleteQueue(queue);
      await ch.deleteQueue(replies);
      expect(replied.size).toBe(answered);
      expect(back.filter((id) => replied.has(id)), 'answered jobs handed back (their ack was lost)').toEqual([]);
      expect(replied.size + back.length).toBe(total);
    });
  }
});
