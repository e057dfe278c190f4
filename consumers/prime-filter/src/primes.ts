/**
 * Primes in [from, to] by a segmented Sieve of Eratosthenes.
 * Works for any safe integers; numbers below 2 are never prime, so a range
 * entirely below 2 (including negative ranges) has no primes.
 */

/** Base primes found so far, ascending, and the bound they are complete up to. */
let basePrimes: Uint32Array = new Uint32Array(0);
let baseLimit = 1;

/** All primes <= limit (a plain sieve), cached and grown on demand. */
function primesUpTo(limit: number): Uint32Array {
  if (limit <= baseLimit) {
    let n = basePrimes.length;
    while (n > 0 && (basePrimes[n - 1] as number) > limit) n--;
    return basePrimes.subarray(0, n);
  }
  const composite = new Uint8Array(limit + 1);
  const found: number[] = [];
  for (let i = 2; i <= limit; i++) {
    if (composite[i]) continue;
    found.push(i);
    for (let m = i * i; m <= limit; m += i) composite[m] = 1;
  }
  basePrimes = Uint32Array.from(found);
  baseLimit = limit;
  return basePrimes;
}

/** Numbers sieved per segment: small enough to stay in the CPU cache. */
const SEGMENT = 1 << 16;

export function primesBetween(from: number, to: number): number[] {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to)) throw new RangeError('bounds must be safe integers');
  const out: number[] = [];
  const lo = Math.max(from, 2);
  if (to < lo) return out;
  const base = primesUpTo(Math.floor(Math.sqrt(to)));
  const mark = new Uint8Array(SEGMENT);
  for (let segLo = lo; segLo <= to; segLo += SEGMENT) {
    const segHi = Math.min(segLo + SEGMENT - 1, to);
    const size = segHi - segLo + 1;
    mark.fill(0, 0, size);
    for (const p of base) {
      const pp = p * p;
      if (pp > segHi) break;
      // First multiple of p in the segment, not below p*p; `%` is exact on safe integers.
      const start = pp >= segLo ? pp : segLo + ((p - (segLo % p)) % p);
      for (let m = start - segLo; m < size; m += p) mark[m] = 1;
    }
    for (let i = 0; i < size; i++) if (mark[i] === 0) out.push(segLo + i);
  }
  return out;
}
