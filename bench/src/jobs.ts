import { rangeJob, type JobSpec } from '@amqp-pipeline/producer';

/** `n` small jobs: 100-wide prime ranges, the `offset`-th onwards (the pipeline suite's unit of work). */
export function smallJobs(n: number, offset = 0): JobSpec[] {
  return Array.from({ length: n }, (_, i) => rangeJob('primes', { from: (offset + i) * 100, to: (offset + i) * 100 + 99 }));
}
