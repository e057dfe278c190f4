/**
 * AMQP_URL naming several nodes, against the real broker: a node that refuses connections is
 * skipped for the next one, at the first connection and at every reconnect.
 */
import { startServices, stopServices } from '@amqp-pipeline/devtools';
import { PipelineClient, rangeJobs } from '@amqp-pipeline/producer';
import { connectBroker, createLogger, loadConfig } from '@amqp-pipeline/shared';
import { describe, expect, it } from 'vitest';
import { amqpUrl, batchQueue, freePort, withChannel } from './helpers.js';

describe('several broker URLs', () => {
  it('when one of the nodes named is down, then connecting goes on to the next and works, whichever comes first', async () => {
    const dead = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
    const lines: string[] = [];
    const log = createLogger('urls', { level: 'info' }, { write: (l: string) => (lines.push(l), true) } as never);
    for (let round = 0; round < 4; round++) {
      const model = await connectBroker({ url: `${dead},${amqpUrl()}`, connectionName: 'urls-test', heartbeatSeconds: 5, connectRetries: 3, log });
      const ch = await model.createChannel();
      await ch.checkQueue('pipeline.primes').catch(() => undefined);
      await model.close();
    }
    const connected = lines.filter((l) => l.includes('"msg":"connected to broker"'));
    expect(connected).toHaveLength(4);
    // Each names the node it is on (the live one), and how many were given.
    const live = new URL(amqpUrl());
    for (const l of connected) {
      const { broker, nodes } = JSON.parse(l) as { broker: string; nodes: number };
      expect(new URL(broker).port).toBe(live.port || '5672');
      expect(broker).not.toContain(':guest@');
      expect(nodes).toBe(2);
    }
  });

  it('when the producer is given several nodes, then its batch queues are quorum queues, and a batch completes', async () => {
    const dead = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
    // The shared broker's retry tiers are classic queues (one node): the service keeps them so.
    const [filter] = await startServices(['prime-filter'], { env: { AMQP_URL: `${dead},${amqpUrl()}`, REPLY_QUEUE_TYPE: 'classic' } });
    const client = await PipelineClient.connect(loadConfig({ AMQP_URL: `${dead},${amqpUrl()}` }), createLogger('urls', { level: 'warn' }, 2));
    try {
      const sent = await client.submit(rangeJobs('primes', { from: 1, to: 100 }), { wait: false, timeoutMs: 10_000, output: 'ordered' });
      // Declaring the same queue as a quorum queue is a no-op only if it is one (else a 406).
      await withChannel((ch) =>
        ch.assertQueue(batchQueue(sent.batch), { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-expires': 24 * 3600 * 1000 } }),
      );
      const out = await client.collect(sent.batch, { timeoutMs: 30_000 });
      expect(out.complete).toBe(true);
      expect(out.stats.received).toBe(1);
    } finally {
      await client.close();
      await stopServices([filter!]);
    }
  });
});
