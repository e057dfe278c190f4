import { z } from 'zod';
import { RoutingKeys } from '../topology.js';

export const URL_JOB_VERSION = 1;
export const URL_JOB_TYPE = 'pipeline.url-job.v1';
export const URL_JOB_ROUTING_KEY = RoutingKeys.title;

/** Longest URL accepted, characters. */
export const MAX_URL_LENGTH = 8192;

/**
 * A URL job. The schema only asks for a string: whether it is a fetchable
 * http(s) URL is the title fetcher's call, answered with an `ok: false` result.
 */
export const UrlJobSchema = z.object({
  url: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(MAX_URL_LENGTH),
});

export type UrlJob = z.infer<typeof UrlJobSchema>;
