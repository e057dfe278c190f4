import { z } from 'zod';
import { ErrorCodes, PipelineError } from '../errors.js';
import { RoutingKeys } from '../topology.js';

/** Wire version of the range job body. */
export const RANGE_JOB_VERSION = 1;
export const RANGE_JOB_TYPE = 'pipeline.range-job.v1';

const safeInt = z
  .number({ error: 'must be a number' })
  .int({ error: 'must be an integer' })
  .refine(Number.isSafeInteger, { error: 'must be a safe integer (|n| <= 2^53 - 1)' });

/**
 * A range job: every integer n with from <= n <= to (both inclusive).
 * Unknown extra fields are ignored, so clients may add their own.
 */
export const RangeJobSchema = z
  .object({
    from: safeInt,
    to: safeInt,
    /** Answer with a summary (count, first, last, sum) instead of the list. */
    count: z.boolean({ error: 'must be true or false' }).optional(),
  })
  .refine((j) => j.from <= j.to, { error: '"from" must not be greater than "to"', path: ['from'] });

export type RangeJob = z.infer<typeof RangeJobSchema>;

/** Which services a range job goes to, by routing key on the `pipeline.ranges` exchange. */
export const RangeRoutes = {
  primes: RoutingKeys.primes,
  squares: RoutingKeys.squares,
  all: RoutingKeys.rangeAll,
} as const;

/** What a result echoes of its range job (see JobEcho): the range, and `count` when asked. */
export function rangeEcho(job: RangeJob): { from: number; to: number; count?: true } {
  return job.count ? { from: job.from, to: job.to, count: true } : { from: job.from, to: job.to };
}

/** How many integers a range covers. */
export function rangeWidth(job: RangeJob): number {
  return job.to - job.from + 1;
}

export interface RangeLimits {
  /** MAX_RANGE_WIDTH: most numbers a list job may cover. */
  maxListWidth: number;
  /** MAX_COUNT_WIDTH: most numbers a count job may cover. */
  maxCountWidth: number;
}

/**
 * Refuses (PIPELINE_ERR_LIMIT_EXCEEDED, not retryable) a range wider than its mode allows,
 * naming the limit and saying what to do instead.
 */
export function assertRangeWidth(job: RangeJob, limits: RangeLimits): void {
  const width = rangeWidth(job);
  const [max, setting, advice] = job.count
    ? [limits.maxCountWidth, 'MAX_COUNT_WIDTH', 'split it into smaller jobs (pipeline ... --chunk N)']
    : [limits.maxListWidth, 'MAX_RANGE_WIDTH', 'ask for a summary (--count) or split it (--chunk N)'];
  if (width > max) {
    throw new PipelineError(
      ErrorCodes.LIMIT_EXCEEDED,
      `range ${job.from}..${job.to} holds ${width} numbers; one ${job.count ? 'count' : 'list'} job may cover at most ${max} (${setting}): ${advice}`,
      { details: { from: job.from, to: job.to, width, max, setting } },
    );
  }
}
