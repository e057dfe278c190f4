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
  .object({ from: safeInt, to: safeInt })
  .refine((j) => j.from <= j.to, { error: '"from" must not be greater than "to"', path: ['from'] });

export type RangeJob = z.infer<typeof RangeJobSchema>;

/** Which services a range job goes to, by routing key on the `pipeline.ranges` exchange. */
export const RangeRoutes = {
  primes: RoutingKeys.primes,
  squares: RoutingKeys.squares,
  all: RoutingKeys.rangeAll,
} as const;

/** How many integers a range covers. */
export function rangeWidth(job: RangeJob): number {
  return job.to - job.from + 1;
}

/**
 * Refuses (PIPELINE_ERR_LIMIT_EXCEEDED, not retryable) a range with more numbers than
 * a list result may hold, saying what to do instead.
 */
export function assertRangeWidth(job: RangeJob, max: number): void {
  const width = rangeWidth(job);
  if (width > max) {
    throw new PipelineError(
      ErrorCodes.LIMIT_EXCEEDED,
      `range ${job.from}..${job.to} holds ${width} numbers; one job may list at most ${max} (MAX_RANGE_WIDTH): split it into smaller ranges`,
      { details: { from: job.from, to: job.to, width, max } },
    );
  }
}
