import { describe, expect, it } from 'vitest';
import { countPrimes, primesBetween } from './primes.js';
import { SMALL_MAX_TO, SMALL_MAX_WIDTH, smallPrimeSummary, smallPrimesBetween } from './small-range.js';

describe('small-range sieve (the service thread\'s path for small ranges)', () => {
  it('when given edges and random small ranges up to 2^32, then it lists and counts exactly as the main kernel', () => {
    const ranges: Array<[number, number]> = [
      [0, 0], [0, 1], [0, 2], [2, 2], [-50, 30], [10, 9], [0, 100],
      [SMALL_MAX_TO - SMALL_MAX_WIDTH + 1, SMALL_MAX_TO], [65_000, 66_000], [4_294_910_000, 4_294_967_291],
    ];
    // Ranges that start on a multiple of a base prime, or one past it, and around prime squares.
    for (const p of [2, 3, 7, 251, 257, 65_521]) {
      for (const k of [1, 2, 997, Math.floor(SMALL_MAX_TO / p) - 1]) ranges.push([k * p, k * p + 99], [k * p + 1, k * p + 100], [k * p - 1, k * p + 98]);
      ranges.push([p * p - 50, p * p + 50], [p * p, p * p + 10]);
    }
    for (let i = ranges.length - 1; i >= 0; i--) if ((ranges[i] as [number, number])[1] > SMALL_MAX_TO) ranges.splice(i, 1);
    let seed = 7;
    const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 200; i++) {
      const width = Math.floor(rand() * SMALL_MAX_WIDTH);
      const from = Math.floor(rand() * (SMALL_MAX_TO - width));
      ranges.push([from, from + width]);
    }
    for (const [from, to] of ranges) {
      expect(Array.from(smallPrimesBetween(from, to)), `${from}..${to}`).toEqual(Array.from(primesBetween(from, to)));
      expect(smallPrimeSummary(from, to), `${from}..${to}`).toEqual(countPrimes(from, to));
    }
  });

  it('when a range is not small or not integers, then it refuses it', () => {
    expect(() => smallPrimesBetween(0.5, 10)).toThrow(/safe integers/);
    expect(() => smallPrimesBetween(0, SMALL_MAX_WIDTH)).toThrow(/not a small range/);
    expect(() => smallPrimesBetween(SMALL_MAX_TO, SMALL_MAX_TO + 1)).toThrow(/not a small range/);
  });
});
