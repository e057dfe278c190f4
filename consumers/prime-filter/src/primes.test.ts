import { describe, expect, it } from 'vitest';
import { primesBetween } from './primes.js';

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

function reference(from: number, to: number): number[] {
  const out: number[] = [];
  for (let n = from; n <= to; n++) if (isPrime(n)) out.push(n);
  return out;
}

describe('primesBetween', () => {
  it('when asked for 2..100, then it returns the 25 primes of the original example', () => {
    expect(primesBetween(2, 100)).toEqual([2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]);
  });

  it('when the range is at or below 2, then edges are right (0, 1, 2, negatives)', () => {
    expect(primesBetween(0, 1)).toEqual([]);
    expect(primesBetween(-50, -1)).toEqual([]);
    expect(primesBetween(-10, 2)).toEqual([2]);
    expect(primesBetween(2, 2)).toEqual([2]);
    expect(primesBetween(4, 4)).toEqual([]);
  });

  it('when given many random small ranges, then it agrees with trial division', () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 300; i++) {
      const from = rand(200_000) - 100;
      const to = from + rand(3000);
      expect(primesBetween(from, to), `${from}..${to}`).toEqual(reference(from, to));
    }
  });

  it('when a range crosses segment boundaries, then nothing is lost or doubled at the seams', () => {
    const seg = 1 << 16;
    for (const k of [1, 2, 3]) {
      expect(primesBetween(k * seg - 500, k * seg + 500)).toEqual(reference(k * seg - 500, k * seg + 500));
    }
    expect(primesBetween(1, 300_000).length).toBe(25997);
  });

  it('when the range is near 2^53, then it finds the known largest primes below 2^53', () => {
    const top = Number.MAX_SAFE_INTEGER; // 2^53 - 1
    // 2^53 - 111 is the largest prime below 2^53 and 2^53 - 145 the one before it
    // (checked once by trial division, which is exact below 2^53).
    expect(primesBetween(top - 200, top)).toEqual([2 ** 53 - 145, 2 ** 53 - 111]);
  });

  it('when the range is around 10^12, then the count matches the known value', () => {
    // pi(10^12 + 10^4) - pi(10^12) = 335 (counted once by trial division).
    const from = 1e12;
    const to = 1e12 + 1e4;
    const found = primesBetween(from, to);
    expect(found.length).toBe(335);
    for (const p of found.slice(0, 5)) expect(isPrime(p)).toBe(true);
  });
});
