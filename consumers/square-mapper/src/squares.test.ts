import { describe, expect, it } from 'vitest';
import { MAX_SAFE_ROOT, square, squareChunks, squaresBetween, summarizeSquares } from './squares.js';

describe('squares', () => {
  it('when mapping 1..100, then it returns 1, 4, ..., 10000', () => {
    expect(squaresBetween(1, 100)).toEqual(Array.from({ length: 100 }, (_, i) => (i + 1) ** 2));
  });

  it('when n is negative or zero, then the square is the same as for |n|', () => {
    expect(squaresBetween(-3, 3)).toEqual([9, 4, 1, 0, 1, 4, 9]);
  });

  it('when the square is still a safe integer, then it is a JSON number; above that, exact decimal digits', () => {
    expect(square(MAX_SAFE_ROOT)).toBe(9007199136250225);
    expect(Number.isSafeInteger(square(MAX_SAFE_ROOT))).toBe(true);
    expect(square(MAX_SAFE_ROOT + 1)).toBe((BigInt(MAX_SAFE_ROOT + 1) ** 2n).toString());
    expect(square(-(MAX_SAFE_ROOT + 1))).toBe((BigInt(MAX_SAFE_ROOT + 1) ** 2n).toString());
  });

  it('when n is near 2^53, then the square is exact (BigInt), not rounded', () => {
    const n = Number.MAX_SAFE_INTEGER;
    expect(square(n)).toBe('81129638414606663681390495662081');
    const [a, b] = squaresBetween(n - 1, n);
    expect(a).toBe((BigInt(n - 1) ** 2n).toString());
    expect(b).toBe('81129638414606663681390495662081');
  });

  it('when n is not a safe integer, then it refuses', () => {
    expect(() => square(2 ** 53)).toThrow(RangeError);
    expect(() => square(1.5)).toThrow(RangeError);
  });
});

describe('streamed and summarised squares', () => {
  it('when squares are streamed in chunks, then the chunks join to the plain list', () => {
    const joined = [...squareChunks(-70_000, 70_000)].flat();
    expect(joined).toEqual(squaresBetween(-70_000, 70_000));
  });

  it('when the range ends at 2^53 - 1, then chunking stops there', () => {
    const top = Number.MAX_SAFE_INTEGER;
    expect([...squareChunks(top - 2, top)].flat()).toEqual(squaresBetween(top - 2, top));
  });

  it('when summarised, then the sum matches adding the exact squares one by one', () => {
    for (const [from, to] of [
      [1, 100],
      [-50, 20],
      [-30, -5],
      [0, 0],
      [MAX_SAFE_ROOT - 10, MAX_SAFE_ROOT + 10],
    ] as const) {
      let sum = 0n;
      for (let n = from; n <= to; n++) sum += BigInt(n) ** 2n;
      expect(summarizeSquares(from, to), `${from}..${to}`).toEqual({
        count: to - from + 1,
        first: square(from),
        last: square(to),
        sum: sum.toString(),
      });
    }
  });
});
