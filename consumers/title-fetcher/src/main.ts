#!/usr/bin/env node
/**
 * title-fetcher: takes URL jobs from `pipeline.titles`, fetches each page and answers
 * with its title. Many fetches run at once (at most PREFETCH, whether the jobs come one to a
 * message or several), at most a few per host; non-public addresses are refused unless
 * FETCH_ALLOW_PRIVATE is set.
 */
import {
  MAX_URL_BUNDLE_JOBS,
  Queues,
  URL_BUNDLE_TYPE,
  UrlJobSchema,
  createLogger,
  loadConfig,
  runConsumer,
  serviceMain,
  shutdownSignal,
} from '@amqp-pipeline/shared';
import { HostLimiter } from './host-limiter.js';
import { createTitleFetcher, titleFetcherOptions } from './title-fetcher.js';

const SERVICE = 'title-fetcher';

await serviceMain(SERVICE, async () => {
  const config = loadConfig(process.env, { PREFETCH: '64' });
  const log = createLogger(SERVICE, { level: config.LOG_LEVEL });
  const fetcher = createTitleFetcher(titleFetcherOptions(config));
  // The prefetch counts messages, and a message may carry several jobs: fetches wait for one of
  // PREFETCH slots (one key: a limit for the whole service, not per host).
  const fetches = config.PREFETCH ?? 64;
  const slots = new HostLimiter({ concurrency: fetches });

  const consumer = await runConsumer(
    {
      service: SERVICE,
      queue: Queues.titles,
      kind: 'title',
      schema: UrlJobSchema,
      echo: (job) => ({ url: job.url }),
      // Several pages in one message (docs/protocol.md), fetched at once.
      bundle: { type: URL_BUNDLE_TYPE, maxJobs: MAX_URL_BUNDLE_JOBS, concurrent: true },
      async handle(job, { signal }) {
        const release = await slots.acquire('all', signal);
        try {
          const page = await fetcher.fetch(job.url, signal);
          return { title: page.title, source: page.source, url: page.url };
        } finally {
          release();
        }
      },
    },
    { config, log },
  );

  const signal = await shutdownSignal(() => process.exit(130));
  log.info({ signal }, 'shutting down');
  // In-flight jobs finish (or are handed back) first; then the connection pool goes.
  await consumer.close();
  slots.close();
  await fetcher.close();
});
