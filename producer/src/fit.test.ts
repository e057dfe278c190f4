import type { Result } from '@amqp-pipeline/shared';
import { describe, expect, it } from 'vitest';
import { misfit } from './fit.js';

const r = (v: Record<string, unknown>) => v as unknown as Result;
const sq = (n: bigint) => (n * n).toString();

describe('misfit: does a result fit the job it claims to answer', () => {
  it('when a result lacks its echo or echoes another job, then it is refused', () => {
    expect(misfit({ from: 1, to: 3 }, r({ ok: true, kind: 'squares', squares: [1, 4, 9] }))).toMatch(/does not echo/);
    expect(misfit({ from: 1, to: 3 }, r({ ok: true, kind: 'squares', job: { from: 1, to: 4 }, squares: [1, 4, 9, 16] }))).toMatch(/answers \{"from":1,"to":4\}/);
    expect(misfit({ from: 1, to: 3, count: true }, r({ ok: true, kind: 'squares', job: { from: 1, to: 3 }, squares: [1, 4, 9] }))).toMatch(/answers/);
    expect(misfit({ url: 'http://a/' }, r({ ok: true, kind: 'title', job: { url: 'http://b/' }, title: 'B' }))).toMatch(/not this job's url/);
  });

  it('when the result is what the job can have produced, then it fits', () => {
    expect(misfit({ from: 1, to: 3 }, r({ ok: true, kind: 'squares', job: { from: 1, to: 3 }, squares: [1, 4, 9] }))).toBeUndefined();
    expect(misfit({ from: 1, to: 30 }, r({ ok: true, kind: 'primes', job: { from: 1, to: 30 }, primes: [2, 3, 5, 7, 11, 13, 17, 19, 23, 29] }))).toBeUndefined();
    expect(misfit({ url: 'http://a/' }, r({ ok: true, kind: 'title', job: { url: 'http://a/' }, title: 'A', url: 'http://a/final' }))).toBeUndefined();
    expect(misfit({ from: 5, to: 9 }, r({ ok: false, kind: 'primes', job: { from: 5, to: 9 }, error: { code: 'X', message: 'y' } }))).toBeUndefined();
  });

  it('when squares are not exactly the squares of the range, then they are refused (the forged reply of issue 23)', () => {
    const job = { from: 1, to: 3 };
    expect(misfit(job, r({ ok: true, kind: 'squares', job, squares: [666, 777, 888] }))).toMatch(/entry 0 is 666, not the square of 1/);
    expect(misfit(job, r({ ok: true, kind: 'squares', job, squares: [1, 4] }))).toMatch(/end at the square of 2/);
    expect(misfit(job, r({ ok: true, kind: 'squares', job, squares: [1, 4, 9, 16] }))).toMatch(/outside 1..3/);
    expect(misfit(job, r({ ok: true, kind: 'squares', job, squares: [] }))).toMatch(/empty/);
  });

  it('when a list comes in parts, then each part is checked as a run within the range: the first from `from`, the last to `to`', () => {
    const job = { from: -3, to: 3 };
    const part = (squares: unknown[], index: number, last: boolean) => r({ ok: true, kind: 'squares', job, squares, part: { index, last } });
    expect(misfit(job, part([9, 4, 1], 0, false))).toBeUndefined();
    expect(misfit(job, part([0, 1], 1, false))).toBeUndefined();
    expect(misfit(job, part([4, 9], 2, true))).toBeUndefined();
    expect(misfit(job, part([4, 1], 0, false))).toMatch(/not the square of -3/);
    expect(misfit(job, part([1, 4], 2, true))).toMatch(/end at the square of 2, not of 3/);
    // Beyond 2^53 squares travel as digit strings; they are compared exactly.
    const big = { from: 94_906_266, to: 94_906_267 };
    expect(misfit(big, r({ ok: true, kind: 'squares', job: big, squares: [sq(94_906_266n), sq(94_906_267n)] }))).toBeUndefined();
    expect(misfit(big, r({ ok: true, kind: 'squares', job: big, squares: [sq(94_906_266n), (94_906_267n * 94_906_267n + 1n).toString()] }))).toMatch(/entry 1/);
  });

  it('when primes are outside the range or out of order, then they are refused', () => {
    const job = { from: 10, to: 20 };
    const primes = (list: number[]) => r({ ok: true, kind: 'primes', job, primes: list });
    expect(misfit(job, primes([11, 13, 17, 19]))).toBeUndefined();
    expect(misfit(job, primes([7, 11]))).toMatch(/prime 7 is outside 10..20/);
    expect(misfit(job, primes([11, 23]))).toMatch(/prime 23 is outside/);
    expect(misfit(job, primes([13, 11]))).toMatch(/prime 11 is out of order/);
  });

  it('when a summary comes for a list job, a list for a count job, or a summary that is not the range\'s, then it is refused', () => {
    const list = { from: 1, to: 10 };
    const count = { from: 1, to: 10, count: true };
    const summary = (job: object, kind: string, s: object) => r({ ok: true, kind, job, summary: s });
    expect(misfit(list, summary(list, 'primes', { count: 4, first: 2, last: 7, sum: '17' }))).toMatch(/asked for the list/);
    expect(misfit(count, r({ ok: true, kind: 'primes', job: count, primes: [2, 3, 5, 7] }))).toMatch(/asked for a count/);
    expect(misfit(count, summary(count, 'squares', { count: 10, first: 1, last: 100, sum: '385' }))).toBeUndefined();
    expect(misfit(count, summary(count, 'squares', { count: 10, first: 1, last: 100, sum: '386' }))).toMatch(/not the one of 1..10/);
    const neg = { from: -2, to: 3, count: true };
    expect(misfit(neg, summary(neg, 'squares', { count: 6, first: 4, last: 9, sum: '19' }))).toBeUndefined();
    expect(misfit(count, summary(count, 'primes', { count: 4, first: 2, last: 7, sum: '17' }))).toBeUndefined();
    expect(misfit(count, summary(count, 'primes', { count: 11, first: 2, last: 7, sum: '17' }))).toMatch(/11 primes for 10 numbers/);
    expect(misfit(count, summary(count, 'primes', { count: 2, first: 2, last: 11, sum: '13' }))).toMatch(/do not fit 1..10/);
    expect(misfit(count, summary(count, 'primes', { count: 0, first: null, last: null, sum: '0' }))).toBeUndefined();
  });
});
