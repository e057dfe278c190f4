/**
 * Primes of small ranges, on the service's own thread: one segment, a byte per number, base
 * primes below 2^16 (6,542 of them; with their inverses 105 KB, and a 64 KB segment reused).
 * For ranges the pool would spend longer posting to a worker than sieving (see `isSmallRange`
 * in pool.ts), without loading the big kernel (and its WebAssembly memory) into the main thread.
 */
import type { PrimeSummary } from './primes.js';

/** Widest range this handles. */
export const SMALL_MAX_WIDTH = 1 << 16;
/** Highest `to`: sqrt(2^32) = 2^16, so the base primes below 2^16 are enough. */
export const SMALL_MAX_TO = 2 ** 32;

let base: Float64Array | undefined;
/** 1 / p for each base prime: the first multiple of p in a range by a multiplication, not a division. */
let inverse: Float64Array | undefined;
/** The sieve's bytes, reused: a job sieves on this thread start to finish, with no await in between. */
const scratch = new Uint8Array(SMALL_MAX_WIDTH);

function basePrimes(): Float64Array {
  if (base) return base;
  const n = 1 << 16;
  const composite = new Uint8Array(n);
  const found: number[] = [];
  for (let i = 2; i < n; i++) {
    if (composite[i]) continue;
    found.push(i);
    for (let j = i * i; j < n; j += i) composite[j] = 1;
  }
  inverse = Float64Array.from(found, (p) => 1 / p);
  return (base = Float64Array.from(found));
}

/**
 * Marks the composites of [lo, to] (lo >= 2) in `scratch`; index k stands for lo + k. For a
 * 100-wide range it is the few hundred base primes up to sqrt(to) that cost, each needing its
 * first multiple in the range: floor(lo * (1/p)) is that quotient or one less (the product's
 * error is far below 1 for lo < 2^32), and one comparison fixes it.
 */
function sieve(lo: number, to: number): Uint8Array {
  const primes = basePrimes();
  const inv = inverse as Float64Array;
  const width = to - lo + 1;
  const composite = scratch;
  composite.fill(0, 0, width);
  for (let i = 0; i < primes.length; i++) {
    const p = primes[i] as number;
    const square = p * p;
    if (square > to) break;
    let m = Math.floor(lo * (inv[i] as number)) * p;
    if (m < lo) m += p;
    if (m < square) m = square;
    for (let k = m - lo; k < width; k += p) composite[k] = 1;
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
  const width = to - lo + 1;
  let n = 0;
  for (let k = 0; k < width; k++) if (!composite[k]) n++;
  const out = new Float64Array(n);
  for (let k = 0, i = 0; k < width; k++) if (!composite[k]) out[i++] = lo + k;
  return out;
}

/** Count, smallest, largest and exact sum of the primes in [from, to]. */
export function smallPrimeSummary(from: number, to: number): PrimeSummary {
  const primes = smallPrimesBetween(from, to);
  let sum = 0;
  for (let i = 0; i < primes.length; i++) sum += primes[i] as number; // below 2^16 * 2^32: exact
  return { count: primes.length, first: primes.length ? (primes[0] as number) : null, last: primes.length ? (primes[primes.length - 1] as number) : null, sum: BigInt(sum) };
}
