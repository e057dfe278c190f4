/**
 * Primes of small ranges, on the service's own thread: one segment, a byte per number, base
 * primes below 2^16 (6,542 of them, 26 KB). For ranges the pool would spend longer posting to a
 * worker than sieving (see `isSmallRange` in pool.ts), without loading the big kernel (and its
 * WebAssembly memory) into the main thread.
 */
import type { PrimeSummary } from './primes.js';

/** Widest range this handles. */
export const SMALL_MAX_WIDTH = 1 << 16;
/** Highest `to`: sqrt(2^32) = 2^16, so the base primes below 2^16 are enough. */
export const SMALL_MAX_TO = 2 ** 32;

let base: Uint32Array | undefined;

function basePrimes(): Uint32Array {
  if (base) return base;
  const n = 1 << 16;
  const composite = new Uint8Array(n);
  const found: number[] = [];
  for (let i = 2; i < n; i++) {
    if (composite[i]) continue;
    found.push(i);
    for (let j = i * i; j < n; j += i) composite[j] = 1;
  }
  return (base = Uint32Array.from(found));
}

/** Marks the composites of [lo, to] (lo >= 2); index k stands for lo + k. */
function sieve(lo: number, to: number): Uint8Array {
  const composite = new Uint8Array(to - lo + 1);
  for (const p of basePrimes()) {
    if (p * p > to) break;
    for (let m = Math.max(p * p, Math.ceil(lo / p) * p); m <= to; m += p) composite[m - lo] = 1;
  }
  return composite;
}

function check(from: number, to: number): void {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to)) throw new RangeError(`bounds must be safe integers (got ${from}, ${to})`);
  if (to > SMALL_MAX_TO || to - from >= SMALL_MAX_WIDTH) throw new RangeError(`${from}..${to} is not a small range (width < ${SMALL_MAX_WIDTH}, to <= 2^32)`);
}

/** Every prime p with from <= p <= to, ascending. */
export function smallPrimesBetween(from: number, to: number): Float64Array {
  check(from, to);
  const lo = Math.max(from, 2);
  if (to < lo) return new Float64Array(0);
  const composite = sieve(lo, to);
  let n = 0;
  for (let k = 0; k < composite.length; k++) if (!composite[k]) n++;
  const out = new Float64Array(n);
  for (let k = 0, i = 0; k < composite.length; k++) if (!composite[k]) out[i++] = lo + k;
  return out;
}

/** Count, smallest, largest and exact sum of the primes in [from, to]. */
export function smallPrimeSummary(from: number, to: number): PrimeSummary {
  const primes = smallPrimesBetween(from, to);
  let sum = 0;
  for (let i = 0; i < primes.length; i++) sum += primes[i] as number; // below 2^16 * 2^32: exact
  return { count: primes.length, first: primes.length ? (primes[0] as number) : null, last: primes.length ? (primes[primes.length - 1] as number) : null, sum: BigInt(sum) };
}
