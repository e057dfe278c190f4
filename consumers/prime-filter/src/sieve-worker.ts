/**
 * The worker-thread side of PrimePool (loaded by piscina, one module instance per thread).
 * Each named export handles one kind of task; the sieve runs synchronously here, off the
 * service's event loop. Every thread keeps its own cache of base primes.
 *
 * Per-thread state (all of it in primes.ts): the WebAssembly kernel, instantiated when this
 * module loads (piscina loads it as the thread starts), and the base-prime cache, grown on demand.
 */
import { threadId } from 'node:worker_threads';
import { move } from 'piscina';
import { countPrimes, kernelName, primesBetween, type KernelName, type PrimeSummary } from './primes.js';

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

/** What `warm` reports about its thread. */
export interface WarmReport {
  /** worker_threads' threadId of the thread that ran it. */
  threadId: number;
  /** The kernel the thread sieves with ('wasm' unless build/sieve.wasm is missing or PRIME_SIEVE_KERNEL=js). */
  kernel: KernelName;
}

/**
 * The one-time work of a thread, so that its first real task does not pay for it. Loading this
 * module already instantiated the kernel; a count over most of one segment and a short list
 * build the kernel's tables (pre-sieve patterns, base primes) and run its hot loops once, so V8
 * has compiled them to optimised code: about 15 ms, and ~1.5 MB per thread on top of the ~13 MB
 * a started thread holds. Measured on a fresh thread, the first [1, 1e9] count took 15 ms longer
 * than the next ones without this, and 57 ms longer when the thread itself started with it.
 * (Base primes for far ranges are left to grow on demand: up to 2^53 they take tens of MB.)
 */
export function warm(): WarmReport {
  countPrimes(1, 1e7);
  primesBetween(1, 1e5);
  return { threadId, kernel: kernelName() };
}
