import { z } from 'zod';
import { RANGE_JOB_TYPE } from './range-job.js';
import { URL_JOB_TYPE } from './url-job.js';

/**
 * Several range jobs in one message, and their results in one reply (docs/protocol.md,
 * "Several jobs in one message"): an extension for small jobs, whose cost is mostly the
 * broker's work per message. A job alone in its message (`pipeline.range-job.v1`) works as
 * before; a service tells the two apart by the message's `type`.
 */
export const RANGE_BUNDLE_TYPE = 'pipeline.range-jobs.v1';
/** Several URL jobs in one message, for the title fetcher: the same shape, each job `{"id", "url"}`. */
export const URL_BUNDLE_TYPE = 'pipeline.url-jobs.v1';
/** Most jobs a URL bundle may carry: its reply waits for its slowest page. */
export const MAX_URL_BUNDLE_JOBS = 100;

/** The type of a job alone, by the type of a bundle of such jobs. */
export const BUNDLED_JOB_TYPES: Readonly<Record<string, string>> = {
  [RANGE_BUNDLE_TYPE]: RANGE_JOB_TYPE,
  [URL_BUNDLE_TYPE]: URL_JOB_TYPE,
};

/** Whether a message's `type` says it carries several jobs. */
export function isBundleType(type: unknown): type is string {
  return typeof type === 'string' && Object.hasOwn(BUNDLED_JOB_TYPES, type);
}
/** The reply to a bundle: one result per job, each with the job's id. */
export const RESULTS_BUNDLE_TYPE = 'pipeline.results.v1';

/** Most jobs one bundle may carry. */
export const MAX_BUNDLE_JOBS = 1000;
/**
 * Most numbers a bundle's jobs may cover together (lists and counts alike): a bundle is a few
 * small jobs, never more work than one small sieve, so that replicas still share a batch and
 * its reply stays a few MB at most.
 */
export const MAX_BUNDLE_NUMBERS = 1 << 16;

/** A job's id within its bundle: what its result carries back (our producer: its correlation id). */
const BundleJobId = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(256, { error: 'must be at most 256 characters' });

/** `{"jobs": [{"id": "...", ...the job's own fields}, ...]}`; unknown fields are ignored. */
export const BundleSchema = z.object({
  jobs: z
    .array(z.looseObject({ id: BundleJobId }), { error: 'must be an array of jobs' })
    .min(1, { error: 'must hold at least one job' })
    .max(MAX_BUNDLE_JOBS, { error: `may hold at most ${MAX_BUNDLE_JOBS} jobs` })
    .refine((jobs) => new Set(jobs.map((j) => j.id)).size === jobs.length, { error: 'job ids must be distinct' }),
});
export type Bundle = z.infer<typeof BundleSchema>;

/** `{"results": [{"id": "...", ...a result as docs/protocol.md describes it}, ...]}`, in the jobs' order. */
export const ResultsBundleSchema = z.object({
  results: z.array(z.looseObject({ id: BundleJobId })).min(1),
});
