/**
 * A pool of worker threads that run the prime sieve, so that long ranges never block the event
 * loop (which must stay free for broker heartbeats and acks). Built on piscina.
 *
 * State: the piscina pool, whose threads all start with the pool and stay (no idle timeout);
 * how many threads it has started so far; and the one `warm` run, once asked for.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { PrimeSummary } from './primes.js';
import type { RangeTask, WarmReport } from './sieve-worker.js';
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

/** What `PrimePool.warm` found. */
export interface WarmedPool {
  /** One report per thread, each from a different thread. */
  threads: WarmReport[];
  /** Milliseconds from the pool's creation until its last thread was warm. */
  ms: number;
}

export class PrimePool {
  /** Number of worker threads. */
  readonly threads: number;
  readonly #pool: Piscina<RangeTask | undefined, unknown>;
  readonly #inline: boolean;
  readonly #created = performance.now();
  #started = 0;
  #warmed: Promise<WarmedPool> | undefined;

  constructor(options: PrimePoolOptions = {}) {
    this.#inline = options.inline ?? true;
    const asked = options.threads ?? 0;
    if (!Number.isInteger(asked) || asked < 0) {
      throw new RangeError(`threads must be a non-negative integer (got ${asked})`);
    }
    this.threads = asked === 0 ? availableParallelism() : asked;
    this.#pool = new Piscina<RangeTask | undefined, unknown>({
      filename: WORKER_URL.href,
      // Every thread starts now and stays: started by the first large range instead, a thread
      // made that range wait for it (57 ms on a [1, 1e9] count that takes 140 ms warm). The
      // price is paid even by a service that only ever gets small ranges: ~14 MB of RSS per
      // thread (an idle service with 2 warm threads: 98 MB; with none started: 69 MB).
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: Infinity,
    });
    this.#pool.on('workerCreate', () => this.#started++);
  }

  /** Threads started since the pool was made (more than `threads` only if one died and was replaced). */
  get threadsStarted(): number {
    return this.#started;
  }

  /** worker_threads' threadId of each thread running now. */
  get threadIds(): number[] {
    return this.#pool.threads.map((t) => t.threadId);
  }

  /**
   * Has every thread do its one-time work (see `warm` in sieve-worker.ts) before any range
   * comes, and resolves when all are done: call it right after making the pool, while the
   * threads are idle, so that each of them takes exactly one of the warm-up tasks (piscina
   * gives a task to an idle thread first). Calling it again returns the same promise.
   */
  warm(): Promise<WarmedPool> {
    this.#warmed ??= Promise.all(
      Array.from({ length: this.threads }, () => this.#pool.run(undefined, { name: 'warm' }) as Promise<WarmReport>),
    ).then((threads) => ({ threads, ms: performance.now() - this.#created }));
    return this.#warmed;
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
