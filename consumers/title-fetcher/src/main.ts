#!/usr/bin/env node
/**
 * title-fetcher: takes URL jobs from `pipeline.titles`, fetches each page and answers
 * with its title. Many fetches run at once (prefetch = concurrency), at most a few per
 * host; non-public addresses are refused unless FETCH_ALLOW_PRIVATE is set.
 */
import { Queues, UrlJobSchema, createLogger, loadConfig, runConsumer, serviceMain, shutdownSignal } from '@amqp-pipeline/shared';
import { createTitleFetcher, titleFetcherOptions } from './title-fetcher.js';

const SERVICE = 'title-fetcher';

await serviceMain(SERVICE, async () => {
  const config = loadConfig(process.env, { PREFETCH: '64' });
  const log = createLogger(SERVICE, { level: config.LOG_LEVEL });
  const fetcher = createTitleFetcher(titleFetcherOptions(config));

  const consumer = await runConsumer(
    {
      service: SERVICE,
      queue: Queues.titles,
      kind: 'title',
      schema: UrlJobSchema,
      echo: (job) => ({ url: job.url }),
      async handle(job, { signal }) {
        const page = await fetcher.fetch(job.url, signal);
        return { title: page.title, source: page.source, url: page.url };
      },
    },
    { config, log },
  );

  const signal = await shutdownSignal(() => process.exit(130));
  log.info({ signal }, 'shutting down');
  // In-flight jobs finish (or are handed back) first; then the connection pool goes.
  await consumer.close();
  await fetcher.close();
});
