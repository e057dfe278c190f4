#!/usr/bin/env node
/**
 * prime-filter: takes range jobs from `pipeline.primes` and answers with the primes in each range.
 */
import {
  Queues,
  RangeJobSchema,
  rangeEcho,
  rangeWidth,
  RANGE_BUNDLE_TYPE,
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
  // The sieve runs in worker threads, so heartbeats and acks keep flowing on this one. They start
  // and warm up before the first job is taken, so a first large range costs what any other does.
  const pool = new PrimePool({ threads: config.WORKERS });
  const failedStart = async (err: unknown): Promise<never> => {
    await pool.close(); // or its threads would keep the process alive
    throw err;
  };
  const { threads, ms } = await pool.warm().catch(failedStart);
  log.info({ workers: threads.length, kernel: threads[0]?.kernel, ms: Math.round(ms) }, 'sieve worker threads warm');

  const consumer = await runConsumer(
    {
      service: SERVICE,
      queue: Queues.primes,
      kind: 'primes',
      schema: RangeJobSchema,
      echo: rangeEcho,
      // Small jobs: up to PREFETCH in flight; large ones: as few as keep it busy (no hoarding).
      adaptivePrefetch: { min: pool.threads + 1 },
      // Several small jobs in one message (docs/protocol.md): up to MAX_BUNDLE_NUMBERS numbers in all, run in turn.
      bundle: { type: RANGE_BUNDLE_TYPE, numbers: rangeWidth },
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
  ).catch(failedStart);

  const signal = await shutdownSignal(() => process.exit(130));
  log.info({ signal }, 'shutting down');
  await consumer.close();
  await pool.close();
});
