import { describe, expect, it } from 'vitest';
import { PRIME_COUNT_CHUNK, countJobs, primeCountChunk, primeCountRanges } from './jobs.js';

const ranges = (jobs: ReturnType<typeof countJobs>) => jobs.map((j) => [j.routingKey, j.body.from, j.body.to, j.body.count]);

/** The ranges cover [from, to] exactly once, in order. */
function expectCover(rs: Array<[number, number]>, from: number, to: number): void {
  expect(rs[0]![0]).toBe(from);
  expect(rs.at(-1)![1]).toBe(to);
  for (let i = 1; i < rs.length; i++) expect(rs[i]![0]).toBe(rs[i - 1]![1] + 1);
  for (const [a, b] of rs) expect(b).toBeGreaterThanOrEqual(a);
}

describe('count jobs when no chunk is given', () => {
  it('when a prime count fits in one chunk, then it is one job', () => {
    expect(primeCountChunk(PRIME_COUNT_CHUNK)).toBeUndefined();
    expect(ranges(countJobs('primes', { from: 1, to: PRIME_COUNT_CHUNK }))).toEqual([['range.primes', 1, PRIME_COUNT_CHUNK, true]]);
  });

  it('when a prime count is wider, then it is split into jobs of at most PRIME_COUNT_CHUNK, shrinking towards the end, that cover it exactly once', () => {
    const rs = primeCountRanges(1, 1e10);
    expectCover(rs, 1, 1e10);
    const widths = rs.map(([a, b]) => b - a + 1);
    expect(Math.max(...widths)).toBe(PRIME_COUNT_CHUNK);
    expect(widths.slice(0, 7)).toEqual(Array(7).fill(PRIME_COUNT_CHUNK)); // the bulk: widest jobs
    for (let i = 1; i < widths.length - 1; i++) expect(widths[i]).toBeLessThanOrEqual(widths[i - 1]!); // then shorter and shorter
    expect(Math.min(...widths.slice(0, -1))).toBeGreaterThanOrEqual(PRIME_COUNT_CHUNK / 4); // never tiny (but the very last)
    expect(rs.length).toBe(15);
    expect(ranges(countJobs('primes', { from: 1, to: 1e10 }))).toEqual(rs.map(([a, b]) => ['range.primes', a, b, true]));
  });

  it('when the range is odd-sized or starts anywhere, then the cover is still exact', () => {
    for (const [from, to] of [
      [5, 2 * PRIME_COUNT_CHUNK + 10],
      [-3, 1e9 + 1],
      [1e12, 1e12 + 7_777_777_777],
    ] as const) {
      expectCover(primeCountRanges(from, to), from, to);
    }
  });

  it('when the range would make more jobs than allowed, then the jobs grow instead', () => {
    const width = 1e15;
    expect(primeCountChunk(width, 1000)).toBe(2e12);
    const rs = primeCountRanges(1, width, 1000);
    expectCover(rs, 1, width);
    expect(rs.length).toBeLessThanOrEqual(1000);
  });

  it('when squares are counted, then they stay one job whatever the width (the service uses a formula)', () => {
    expect(ranges(countJobs('squares', { from: -1e12, to: 1e12 }))).toEqual([['range.squares', -1e12, 1e12, true]]);
  });

  it('when both are counted, then the primes are split and the squares are one job', () => {
    const jobs = countJobs('all', { from: 1, to: 3 * PRIME_COUNT_CHUNK });
    expect(jobs.filter((j) => j.routingKey === 'range.primes').length).toBe(primeCountRanges(1, 3 * PRIME_COUNT_CHUNK).length);
    expect(jobs.at(-1)?.routingKey).toBe('range.squares');
    expect(jobs.every((j) => j.kinds.length === 1)).toBe(true);
  });
});
