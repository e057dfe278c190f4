/**
 * A pool of worker threads that run the prime sieve, so that long ranges never block the event
 * loop (which must stay free for broker heartbeats and acks). Built on piscina.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { PrimeSummary } from './primes.js';
import type { RangeTask } from './sieve-worker.js';

export interface PrimePoolOptions {
  /** Worker threads; 0 or undefined = one per core (os.availableParallelism()). */
  threads?: number;
}

/** The worker module, next to this file (dist/sieve-worker.js once built). */
const WORKER_URL = new URL('./sieve-worker.js', import.meta.url);

export class PrimePool {
  /** Number of worker threads. */
  readonly threads: number;
  readonly #pool: Piscina<RangeTask, unknown>;

  constructor(options: PrimePoolOptions = {}) {
    const asked = options.threads ?? 0;
    if (!Number.isInteger(asked) || asked < 0) {
      throw new RangeError(`threads must be a non-negative integer (got ${asked})`);
    }
    this.threads = asked === 0 ? availableParallelism() : asked;
    this.#pool = new Piscina<RangeTask, unknown>({
      filename: WORKER_URL.href,
      // A fixed-size pool: every thread starts at once and stays (sieve tasks come in bursts,
      // and a warm thread keeps its base-prime cache).
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: Infinity,
    });
  }

  /** Every prime in [from, to], ascending; the array's buffer is transferred from the worker. */
  list(from: number, to: number): Promise<Float64Array> {
    return this.#pool.run({ from, to }, { name: 'list' }) as Promise<Float64Array>;
  }

  /** Count, smallest, largest and exact sum of the primes in [from, to]. */
  summary(from: number, to: number): Promise<PrimeSummary> {
    return this.#pool.run({ from, to }, { name: 'summary' }) as Promise<PrimeSummary>;
  }

  /** Lets queued and running tasks finish, then stops the threads. */
  close(): Promise<void> {
    return this.#pool.close();
  }
}
