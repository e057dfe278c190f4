/**
 * A service's clean stop against the real broker: every job it answered is acknowledged before
 * the connection closes (none comes back to be answered twice), and every job it did not get
 * to is handed back. Also: jobs in flight may all listen for shutdown without Node warning of a leak.
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

  /** A quorum work queue (named from `prefix`) holding jobs {i} for i < total, and its reply queue. */
  async function seed(prefix: string, total: number): Promise<{ queue: string; replies: string }> {
    const queue = `${prefix}.${randomUUID().slice(0, 8)}`;
    const replies = `${queue}.replies`;
    await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.assertQueue(replies, { durable: false });
    for (let i = 0; i < total; i++) {
      ch.sendToQueue(queue, Buffer.from(JSON.stringify({ i })), { correlationId: String(i), replyTo: replies, persistent: true });
    }
    await ch.waitForConfirms();
    return { queue, replies };
  }

  for (const round of [1, 2, 3]) {
    it(`when stopped mid-stream (round ${round}), then the jobs it answered are acked and only the others are handed back`, async () => {
      const total = 300;
      const { queue, replies } = await seed('test.close', total);

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

  it('when more jobs than ten listen for shutdown at once, then Node prints no listener-leak warning', async () => {
    const total = 40;
    const { queue, replies } = await seed('test.listeners', total);
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);

    const config = loadConfig({ ...process.env, AMQP_URL: amqpUrl(), PREFETCH: String(total), HEALTH_PORT: '0' });
    let listening = 0;
    let release!: () => void;
    const allListening = new Promise<void>((resolve) => (release = resolve));
    const consumer = await runConsumer(
      {
        service: 'listeners-test',
        queue: { name: queue, arguments: { 'x-queue-type': 'quorum' } },
        kind: 'title',
        schema: z.object({ i: z.number() }),
        // As the title fetcher does: every job in flight listens for shutdown until it is done.
        // (The first job runs alone, as every session starts one job at a time; the rest wait
        // until 20 of them listen at once.)
        async handle(job, { signal }) {
          const onAbort = () => {};
          signal.addEventListener('abort', onAbort);
          if (++listening === 20) release();
          if (job.i > 0) await allListening;
          signal.removeEventListener('abort', onAbort);
          return { title: String(job.i) };
        },
      },
      { config, log: createLogger('listeners-test', { level: 'warn' }) },
    );
    try {
      await allListening;
      let replied = 0;
      while (replied < total) {
        const m = await ch.get(replies, { noAck: true });
        if (m) replied++;
        else await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // Node emits its warning on the next tick after the listener is added.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
      await consumer.close();
      await ch.deleteQueue(queue);
      await ch.deleteQueue(replies);
    }
    expect(listening).toBe(total);
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message)).toEqual([]);
  });
});
