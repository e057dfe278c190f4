import { describe, expect, it } from 'vitest';
import { MAX_BUNDLE_NUMBERS } from '@amqp-pipeline/shared/client';
import { PRIME_COUNT_CHUNK, bundleMessage, countJobs, messageUnits, primeCountChunk, primeCountRanges, rangeJob, rangeJobs, urlJob, URLS_PER_MESSAGE, type JobSpec } from './jobs.js';

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

describe('jobs several to a message', () => {
  /** The units cover the jobs in order, each once. */
  function covers(units: { first: number; count: number }[], n: number): boolean {
    let next = 0;
    for (const u of units) {
      if (u.first !== next || u.count < 1) return false;
      next += u.count;
    }
    return next === n;
  }

  it('when small jobs to one service follow each other, then they go JOBS_PER_MESSAGE to a message, the last message taking the rest', () => {
    const jobs = rangeJobs('primes', { from: 1, to: 12_345 }, 100); // 124 jobs
    const units = messageUnits(jobs, 50, 64 * 1024);
    expect(units.map((u) => u.count)).toEqual([50, 50, 24]);
    expect(covers(units, jobs.length)).toBe(true);
  });

  it('when JOBS_PER_MESSAGE is 1, then every job goes alone', () => {
    const jobs = rangeJobs('squares', { from: 1, to: 1000 }, 10);
    expect(messageUnits(jobs, 1, 64 * 1024).every((u) => u.count === 1)).toBe(true);
  });

  it('when jobs go to different services, are wide, ask for both kinds or are URLs, then a message never mixes them and wide ones go alone', () => {
    const jobs: JobSpec[] = [
      ...rangeJobs('primes', { from: 1, to: 300 }, 100),
      ...rangeJobs('squares', { from: 1, to: 300 }, 100),
      rangeJob('primes', { from: 1, to: MAX_BUNDLE_NUMBERS + 1 }),
      rangeJob('all', { from: 1, to: 10 }),
      urlJob('http://127.0.0.1/'),
      urlJob('http://127.0.0.1/2'),
      ...rangeJobs('primes', { from: 1, to: 200 }, 100),
    ];
    const units = messageUnits(jobs, 50, 64 * 1024);
    expect(units.map((u) => u.count)).toEqual([3, 3, 1, 1, 2, 2]);
    expect(covers(units, jobs.length)).toBe(true);
  });

  it('when a batch has many URL jobs, then they go URLS_PER_MESSAGE to a message (fewer if JOBS_PER_MESSAGE says so, or if long URLs would make the reply too big), as pipeline.url-jobs.v1', () => {
    const urls = Array.from({ length: 25 }, (_, i) => urlJob(`http://127.0.0.1/page/${i}`));
    expect(messageUnits(urls, 50, 64 * 1024).map((u) => u.count)).toEqual([URLS_PER_MESSAGE, URLS_PER_MESSAGE, 25 - 2 * URLS_PER_MESSAGE]);
    expect(messageUnits(urls, 4, 64 * 1024).map((u) => u.count)).toEqual([4, 4, 4, 4, 4, 4, 1]);
    expect(messageUnits(urls, 1, 64 * 1024).every((u) => u.count === 1)).toBe(true);
    const long = Array.from({ length: 10 }, (_, i) => urlJob(`http://127.0.0.1/${String(i).padStart(8000, 'x')}`));
    expect(messageUnits(long, 50, 64 * 1024).map((u) => u.count)).toEqual([3, 3, 3, 1]); // ~16.7 KB of result each
    const m = bundleMessage(urls.slice(0, 2), ['t.0', 't.1'], 'pipeline.replies.u:t');
    expect(JSON.parse(m.content.toString())).toEqual({ jobs: [{ id: 't.0', url: 'http://127.0.0.1/page/0' }, { id: 't.1', url: 'http://127.0.0.1/page/1' }] });
    expect(m.options).toMatchObject({ correlationId: 't.0+2', type: 'pipeline.url-jobs.v1' });
  });

  it('when the jobs would cover more than MAX_BUNDLE_NUMBERS numbers or their results more than the bytes given, then a message stops short of it', () => {
    const wide = rangeJobs('primes', { from: 1, to: 10 * 20_000, count: true }, 20_000);
    expect(messageUnits(wide, 50, 64 * 1024).map((u) => u.count)).toEqual([3, 3, 3, 1]); // 3 x 20,000 <= 65,536
    // Squares of 1,000 numbers near 10^6: ~13 KB of result each, so about 4 fit in 64 KiB.
    const squares = rangeJobs('squares', { from: 1_000_001, to: 1_020_000 }, 1000);
    const units = messageUnits(squares, 50, 64 * 1024);
    expect(covers(units, squares.length)).toBe(true);
    expect(Math.max(...units.map((u) => u.count))).toBeLessThanOrEqual(5);
    expect(Math.max(...units.map((u) => u.count))).toBeGreaterThan(1);
  });

  it('when jobs are bundled, then each carries its id (its correlation id) and the message its own correlation id and type', () => {
    const jobs = rangeJobs('primes', { from: 1, to: 300, count: true }, 100);
    const m = bundleMessage(jobs, ['b.0', 'b.1', 'b.2'], 'pipeline.replies.u:b');
    expect(JSON.parse(m.content.toString())).toEqual({
      jobs: [
        { id: 'b.0', from: 1, to: 100, count: true },
        { id: 'b.1', from: 101, to: 200, count: true },
        { id: 'b.2', from: 201, to: 300, count: true },
      ],
    });
    expect(m.options).toMatchObject({ correlationId: 'b.0+3', replyTo: 'pipeline.replies.u:b', type: 'pipeline.range-jobs.v1', persistent: true });
  });
});
