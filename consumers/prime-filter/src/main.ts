#!/usr/bin/env node
/**
 * prime-filter: takes range jobs from `pipeline.primes` and answers with the primes in each range.
 */
import {
  Queues,
  RangeJobSchema,
  assertRangeWidth,
  createLogger,
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
        assertRangeWidth(job, config.MAX_RANGE_WIDTH);
        return { primes: primesBetween(job.from, job.to) };
      },
    },
    { config, log },
  );

  const signal = await shutdownSignal();
  log.info({ signal }, 'shutting down');
  await consumer.close();
});
