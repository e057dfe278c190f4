/**
 * Quorum reply queues (REPLY_QUEUE_TYPE=quorum, a cluster's default) on the real broker. A
 * quorum queue's declaration takes tens of milliseconds, and amqplib sends a channel's
 * declarations one after another, so a one-job batch is often answered before its last queue
 * is declared and its manifest published: its queues must not be deleted until then.
 */
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, rangeJob, rangeJobs } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { amqpUrl, batchQueue, withChannel } from './helpers.js';

let service: ServiceProcess;
let client: PipelineClient | undefined;

beforeAll(async () => {
  service = new ServiceProcess('prime-filter', { env: { AMQP_URL: amqpUrl() } });
  await service.ready;
  client = await PipelineClient.connect(loadConfig({ ...process.env, AMQP_URL: amqpUrl(), REPLY_QUEUE_TYPE: 'quorum' }), createLogger('quorum-replies', { level: 'error' }, 2));
});

afterAll(async () => {
  await client?.close();
  await service?.stop();
});

it('when one-job batches run on quorum reply queues, then every one completes and leaves no queue behind', async () => {
  const c = client as PipelineClient;
  const batches: string[] = [];
  for (let i = 0; i < 30; i++) {
    const outcome = await c.submit([rangeJob('primes', { from: 1, to: 10 })], { wait: true, output: 'independent', timeoutMs: 30_000 });
    expect(outcome.complete, `batch ${i}`).toBe(true);
    batches.push(outcome.batch);
  }
  // A batch over 1,024 results (the reply window's prefetch): checkpoints and acks keep it going.
  const big = await c.submit(rangeJobs('primes', { from: 1, to: 30_000 }, 10), { wait: true, output: 'ordered', timeoutMs: 120_000 });
  expect(big).toMatchObject({ complete: true, jobs: 3000, failed: 0 });
  expect(big.window.stalls).toBe(0);
  batches.push(big.batch);
  // The client's close waits for its batches' clean-up.
  await c.close();
  client = undefined;
  // Deleted at the end, each batch's reply, manifest and progress queues.
  for (const b of batches) {
    for (const q of [batchQueue(b), `${batchQueue(b)}.manifest`, `${batchQueue(b)}.progress`]) {
      const exists = await withChannel((ch) => {
        ch.on('error', () => {}); // a passive declare of a missing queue closes the channel
        return ch.checkQueue(q).then(() => true, () => false);
      });
      expect(exists, q).toBe(false);
    }
  }
});
