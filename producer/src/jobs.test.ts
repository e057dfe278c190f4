import { describe, expect, it } from 'vitest';
import { PRIME_COUNT_CHUNK, countJobs, primeCountChunk, rangeJobs } from './jobs.js';

const ranges = (jobs: ReturnType<typeof countJobs>) => jobs.map((j) => [j.routingKey, j.body.from, j.body.to, j.body.count]);

describe('count jobs when no chunk is given', () => {
  it('when a prime count fits in one chunk, then it is one job', () => {
    expect(primeCountChunk(PRIME_COUNT_CHUNK)).toBeUndefined();
    expect(ranges(countJobs('primes', { from: 1, to: PRIME_COUNT_CHUNK }))).toEqual([['range.primes', 1, PRIME_COUNT_CHUNK, true]]);
  });

  it('when a prime count is wider, then it is split into PRIME_COUNT_CHUNK-wide jobs that cover it exactly once', () => {
    const jobs = countJobs('primes', { from: 5, to: 2 * PRIME_COUNT_CHUNK + 10 });
    expect(ranges(jobs)).toEqual([
      ['range.primes', 5, PRIME_COUNT_CHUNK + 4, true],
      ['range.primes', PRIME_COUNT_CHUNK + 5, 2 * PRIME_COUNT_CHUNK + 4, true],
      ['range.primes', 2 * PRIME_COUNT_CHUNK + 5, 2 * PRIME_COUNT_CHUNK + 10, true],
    ]);
    expect(jobs).toEqual(rangeJobs('primes', { from: 5, to: 2 * PRIME_COUNT_CHUNK + 10, count: true }, PRIME_COUNT_CHUNK));
  });

  it('when the range would make more jobs than allowed, then the chunk grows instead', () => {
    const width = 1e15;
    expect(primeCountChunk(width, 1000)).toBe(1e12);
    expect(countJobs('primes', { from: 1, to: width }, 1000)).toHaveLength(1000);
  });

  it('when squares are counted, then they stay one job whatever the width (the service uses a formula)', () => {
    expect(ranges(countJobs('squares', { from: -1e12, to: 1e12 }))).toEqual([['range.squares', -1e12, 1e12, true]]);
  });

  it('when both are counted, then the primes are split and the squares are one job', () => {
    const jobs = countJobs('all', { from: 1, to: 3 * PRIME_COUNT_CHUNK });
    expect(jobs.map((j) => j.routingKey)).toEqual(['range.primes', 'range.primes', 'range.primes', 'range.squares']);
    expect(jobs.every((j) => j.kinds.length === 1)).toBe(true);
  });
});
