#!/usr/bin/env node
/**
 * square-mapper: takes range jobs from `pipeline.squares` and answers with the exact
 * square of every number in each range.
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
import { squareChunks, summarizeSquares } from './squares.js';

const SERVICE = 'square-mapper';

await serviceMain(SERVICE, async () => {
  const config = loadConfig(process.env, { PREFETCH: '128' });
  const log = createLogger(SERVICE, { level: config.LOG_LEVEL });

  const consumer = await runConsumer(
    {
      service: SERVICE,
      queue: Queues.squares,
      kind: 'squares',
      schema: RangeJobSchema,
      echo: rangeEcho,
      // Small jobs: up to PREFETCH in flight; large ones: as few as keep it busy (no hoarding).
      adaptivePrefetch: { min: 2 },
      // Several small jobs in one message (docs/protocol.md): up to MAX_BUNDLE_NUMBERS numbers in all, run in turn.
      bundle: { type: RANGE_BUNDLE_TYPE, numbers: rangeWidth },
      handle(job) {
        assertRangeWidth(job, { maxListWidth: config.MAX_RANGE_WIDTH, maxCountWidth: config.MAX_COUNT_WIDTH });
        if (job.count) return { summary: summarizeSquares(job.from, job.to) };
        return listOutput('squares', squareChunks(job.from, job.to));
      },
    },
    { config, log },
  );

  const signal = await shutdownSignal(() => process.exit(130));
  log.info({ signal }, 'shutting down');
  await consumer.close();
});
