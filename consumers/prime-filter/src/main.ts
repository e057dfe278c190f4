#!/usr/bin/env node
/**
 * prime-filter: takes range jobs from `pipeline.primes` and answers with the primes in each range.
 */
import {
  Queues,
  RangeJobSchema,
  assertRangeWidth,
  createLogger,
  listOutput,
  loadConfig,
  runConsumer,
  serviceMain,
  shutdownSignal,
} from '@amqp-pipeline/shared';
import { PrimePool } from './pool.js';

const SERVICE = 'prime-filter';

await serviceMain(SERVICE, async () => {
  const config = loadConfig(process.env, { PREFETCH: '128' });
  const log = createLogger(SERVICE, { level: config.LOG_LEVEL });
  // The sieve runs in worker threads, so heartbeats and acks keep flowing on this one.
  const pool = new PrimePool({ threads: config.WORKERS });

  const consumer = await runConsumer(
    {
      service: SERVICE,
      queue: Queues.primes,
      kind: 'primes',
      schema: RangeJobSchema,
      // Small jobs: up to PREFETCH in flight; large ones: as few as keep it busy (no hoarding).
      adaptivePrefetch: { min: pool.threads + 1 },
      async handle(job) {
        assertRangeWidth(job, { maxListWidth: config.MAX_RANGE_WIDTH, maxCountWidth: config.MAX_COUNT_WIDTH });
        if (job.count) {
          const { count, first, last, sum } = await pool.summary(job.from, job.to);
          return { summary: { count, first, last, sum: sum.toString() } };
        }
        return listOutput('primes', [await pool.list(job.from, job.to)]);
      },
    },
    { config, log },
  ).catch(async (err: unknown) => {
    await pool.close(); // or its threads would keep the process alive
    throw err;
  });
  log.info({ workers: pool.threads }, 'sieve worker pool ready (threads start with the first large range)');

  const signal = await shutdownSignal(() => process.exit(130));
  log.info({ signal }, 'shutting down');
  await consumer.close();
  await pool.close();
});
