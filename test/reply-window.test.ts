/**
 * The reply window against a real broker, when the broker misbehaves: a consumer it answered
 * with consume-ok but never sends anything to (what RabbitMQ 3.10 did to the CLI's reply
 * consumer in row c4 of test/faults/cluster.test.ts, a quorum reply queue whose leader had been
 * cut off). The broker is real; only that one consumer is cancelled behind the window's back,
 * which leaves the window exactly as the broker did: consuming, and getting nothing.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger } from '@amqp-pipeline/shared';
import { connect, type Channel, type ConsumeMessage, type RecoveringChannelModel } from 'amqplib';
import { expect, it } from 'vitest';
import { ReplyWindow, STALL_MS } from '../producer/src/reply-window.js';
import { amqpUrl } from './helpers.js';

it('when the broker stops delivering to the reply consumer while replies wait, then the window logs a stall, consumes again on a new channel, and gets every reply once', async () => {
  const conn = await connect(amqpUrl());
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(...chunk.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)), done()) });
  const log = createLogger('test', { level: 'info' }, sink);
  const queue = `pipeline.replies.test-stall-${randomUUID()}`;
  const admin = await conn.createChannel();
  let window: ReplyWindow | undefined;
  try {
    await admin.assertQueue(queue, { durable: false });
    let opened = 0;
    // Every channel the window opens is real; the first one's consumer is cancelled as soon as
    // the broker has registered it, so the window believes it is consuming and gets nothing.
    const model = {
      createChannel: async (): Promise<Channel> => {
        const ch = await conn.createChannel();
        if (opened++ === 0) {
          const consume = ch.consume.bind(ch);
          ch.consume = async (...args: Parameters<Channel['consume']>) => {
            const ok = await consume(...args);
            await ch.cancel(ok.consumerTag);
            return ok;
          };
        }
        return ch;
      },
    } as unknown as RecoveringChannelModel;
    const got: string[] = [];
    window = new ReplyWindow({
      model,
      queue,
      prefetch: 16,
      log,
      onMessage: (msg: ConsumeMessage | null) => {
        if (!msg) return;
        got.push(msg.content.toString());
        window?.ack(msg);
      },
      closing: () => false,
      onGone: () => {},
    });
    await window.start();
    const N = 100; // more than the prefetch
    for (let i = 0; i < N; i++) admin.sendToQueue(queue, Buffer.from(String(i)));
    // As gather.ts does: a look every second.
    const started = Date.now();
    while (got.length < N && Date.now() - started < STALL_MS + 15_000) {
      await window.watch(0, {});
      await new Promise((r) => setTimeout(r, 1000));
    }
    window.flush();
    expect(got.length, 'every reply, after one stall').toBe(N);
    expect(new Set(got).size).toBe(N);
    expect(window.stalls).toBe(1);
    expect(lines.some((l) => String(l.msg).startsWith('reply path stalled') && l.level === 'error')).toBe(true);
    expect(lines.some((l) => l.msg === 'reply channel closed after a stall; consuming again')).toBe(true);
    // Once consuming again, nothing more is wrong: no second stall while the queue is empty.
    await window.watch(0, {});
    expect(window.stalls).toBe(1);
    await expect.poll(async () => (await admin.checkQueue(queue)).messageCount, { timeout: 5000 }).toBe(0);
  } finally {
    await window?.close();
    await admin.deleteQueue(queue).catch(() => {});
    await conn.close();
  }
}, 60_000);
