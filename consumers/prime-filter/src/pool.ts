/**
 * A pool of worker threads that run the prime sieve, so that long ranges never block the event
 * loop (which must stay free for broker heartbeats and acks). Built on piscina.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { PrimeSummary } from './primes.js';
import type { RangeTask } from './sieve-worker.js';
import { SMALL_MAX_TO, SMALL_MAX_WIDTH, smallPrimeSummary, smallPrimesBetween } from './small-range.js';

export interface PrimePoolOptions {
  /** Worker threads; 0 or undefined = one per core (os.availableParallelism()). */
  threads?: number;
  /**
   * Sieve small ranges (see `isSmallRange`) on the calling thread instead of posting them to
   * a worker (default true): they take microseconds, less than the hop to a thread and back.
   */
  inline?: boolean;
}

/** Widest range sieved on the calling thread. */
export const INLINE_MAX_WIDTH = SMALL_MAX_WIDTH;
/**
 * Highest `to` sieved on the calling thread: its base primes (up to sqrt(to) = 65536) are a
 * few kilobytes, where a range near 2^53 needs tens of megabytes of them, built once per thread.
 */
export const INLINE_MAX_TO = SMALL_MAX_TO;

/** A range that costs well under a millisecond to sieve, even the first time. */
export function isSmallRange(from: number, to: number): boolean {
  return to - from < INLINE_MAX_WIDTH && to <= INLINE_MAX_TO;
}

/** The worker module, next to this file (dist/sieve-worker.js once built). */
const WORKER_URL = new URL('./sieve-worker.js', import.meta.url);

export class PrimePool {
  /** Number of worker threads. */
  readonly threads: number;
  readonly #pool: Piscina<RangeTask, unknown>;
  readonly #inline: boolean;

  constructor(options: PrimePoolOptions = {}) {
    this.#inline = options.inline ?? true;
    const asked = options.threads ?? 0;
    if (!Number.isInteger(asked) || asked < 0) {
      throw new RangeError(`threads must be a non-negative integer (got ${asked})`);
    }
    this.threads = asked === 0 ? availableParallelism() : asked;
    this.#pool = new Piscina<RangeTask, unknown>({
      filename: WORKER_URL.href,
      // Threads start when the first range too big for the calling thread comes (a service
      // that only gets small ranges never pays ~11 MB per thread), and then stay: sieve tasks
      // come in bursts, and a warm thread keeps its base-prime cache.
      minThreads: 0,
      maxThreads: this.threads,
      idleTimeout: Infinity,
    });
  }

  /** Every prime in [from, to], ascending; the array's buffer is transferred from the worker. */
  list(from: number, to: number): Promise<Float64Array> {
    if (this.#inline && isSmallRange(from, to)) return new Promise((resolve) => resolve(smallPrimesBetween(from, to)));
    return this.#pool.run({ from, to }, { name: 'list' }) as Promise<Float64Array>;
  }

  /** Count, smallest, largest and exact sum of the primes in [from, to]. */
  summary(from: number, to: number): Promise<PrimeSummary> {
    if (this.#inline && isSmallRange(from, to)) return new Promise((resolve) => resolve(smallPrimeSummary(from, to)));
    return this.#pool.run({ from, to }, { name: 'summary' }) as Promise<PrimeSummary>;
  }

  /** Lets queued and running tasks finish, then stops the threads. */
  close(): Promise<void> {
    return this.#pool.close();
  }
}
