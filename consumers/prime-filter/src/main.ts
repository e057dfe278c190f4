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
import { primesBetween } from './primes.js';

const SERVICE = 'prime-filter';

await serviceMain(SERVICE, async () => {
  const config = loadConfig(process.env, { PREFETCH: '4' });
  const log = createLogger(SERVICE, { level: config.LOG_LEVEL });

  const consumer = await runConsumer(
    {
      service: SERVICE,
      queue: Queues.primes,
      kind: 'primes',
      schema: RangeJobSchema,
      handle(job) {
        assertRangeWidth(job, { maxListWidth: config.MAX_RANGE_WIDTH, maxCountWidth: config.MAX_COUNT_WIDTH });
        const primes = primesBetween(job.from, job.to);
        if (job.count) {
          let sum = 0n;
          for (const p of primes) sum += BigInt(p);
          const summary = { count: primes.length, first: primes[0] ?? null, last: primes[primes.length - 1] ?? null, sum: sum.toString() };
          return { summary };
        }
        return listOutput('primes', [primes]);
      },
    },
    { config, log },
  );

  const signal = await shutdownSignal();
  log.info({ signal }, 'shutting down');
  await consumer.close();
});
