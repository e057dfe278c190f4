#!/usr/bin/env node
/**
 * title-fetcher: takes URL jobs from `pipeline.titles`, fetches each page and answers
 * with its title. Many fetches run at once (prefetch = concurrency).
 */
import { Queues, UrlJobSchema, createLogger, loadConfig, runConsumer, serviceMain, shutdownSignal } from '@amqp-pipeline/shared';
import { fetchTitle } from './fetch-title.js';

const SERVICE = 'title-fetcher';

await serviceMain(SERVICE, async () => {
  const config = loadConfig(process.env, { PREFETCH: '64' });
  const log = createLogger(SERVICE, { level: config.LOG_LEVEL });

  const consumer = await runConsumer(
    {
      service: SERVICE,
      queue: Queues.titles,
      kind: 'title',
      schema: UrlJobSchema,
      async handle(job, { signal }) {
        const page = await fetchTitle(job.url, {
          timeoutMs: config.FETCH_TIMEOUT_MS,
          maxBytes: config.FETCH_MAX_BYTES,
          maxRedirects: config.FETCH_MAX_REDIRECTS,
          signal,
        });
        return { title: page.title, source: page.source, url: page.url };
      },
    },
    { config, log },
  );

  const signal = await shutdownSignal();
  log.info({ signal }, 'shutting down');
  await consumer.close();
});
