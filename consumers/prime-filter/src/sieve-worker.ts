/**
 * The worker-thread side of PrimePool (loaded by piscina, one module instance per thread).
 * Each named export handles one kind of task; the sieve runs synchronously here, off the
 * service's event loop. Every thread keeps its own cache of base primes.
 */
import { move } from 'piscina';
import { countPrimes, primesBetween, type PrimeSummary } from './primes.js';

/** A range task, as posted by PrimePool. */
export interface RangeTask {
  from: number;
  to: number;
}

/**
 * The primes of the range, as a Float64Array whose buffer is moved (transferred) to the caller,
 * not copied: move() wraps the array so that piscina puts its ArrayBuffer in the transfer list,
 * and the caller receives the plain Float64Array.
 */
export function list({ from, to }: RangeTask): ReturnType<typeof move> {
  return move(primesBetween(from, to));
}

/** Count, smallest, largest and exact sum of the primes of the range. */
export function summary({ from, to }: RangeTask): PrimeSummary {
  return countPrimes(from, to);
}
