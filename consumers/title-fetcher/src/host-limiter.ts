/**
 * Per-host limits on outgoing requests: how many may be in flight to one host at once,
 * and optionally how often one may start.
 *
 * Each key (the fetcher uses the URL's origin) has its own FIFO queue, so callers for one
 * host are served in arrival order and a busy or slow host never holds up the others.
 * A queued caller can give up through its abort signal (deadline, shutdown); it then
 * leaves the queue at once.
 *
 * The rate limit spaces starts evenly, `1 / rate` seconds apart (a token bucket of depth
 * one): polite to the server and predictable, at the price of no bursts.
 */

/** Gives a slot back; calling it more than once is harmless. */
export type Release = () => void;

export interface HostLimiterOptions {
  /** Most slots held at once per key (an integer >= 1). */
  concurrency: number;
  /** Most slots handed out per second per key; 0 (the default) means no limit. */
  ratePerSecond?: number;
}

interface Waiter {
  grant(release: Release): void;
  fail(err: unknown): void;
}

interface HostState {
  /** Slots held now. */
  active: number;
  /** Callers waiting for a slot, in arrival order (a Set keeps insertion order). */
  waiters: Set<Waiter>;
  /** performance.now() before which no slot may start (rate limit). */
  nextStartAt: number;
  /** Wakes the queue when the rate limit allows the next start. */
  timer: NodeJS.Timeout | undefined;
}

/** setTimeout's longest delay; a longer wait (a tiny rate) simply takes several timers. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Keys tracked before idle ones are swept away (then twice the number left). */
const MIN_SWEEP_THRESHOLD = 1024;

export class HostLimiter {
  readonly #concurrency: number;
  /** Milliseconds between two starts for one key; 0 without a rate limit. */
  readonly #spacingMs: number;
  readonly #hosts = new Map<string, HostState>();
  #sweepThreshold = MIN_SWEEP_THRESHOLD;
  #closed = false;

  constructor(options: HostLimiterOptions) {
    const { concurrency, ratePerSecond = 0 } = options;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`concurrency must be an integer >= 1, got ${concurrency}`);
    }
    if (!Number.isFinite(ratePerSecond) || ratePerSecond < 0) {
      throw new RangeError(`ratePerSecond must be a finite number >= 0, got ${ratePerSecond}`);
    }
    this.#concurrency = concurrency;
    this.#spacingMs = ratePerSecond === 0 ? 0 : 1000 / ratePerSecond;
  }

  /**
   * Waits for a slot for `key` and resolves with its release function, which the caller
   * must call when done (in a `finally`). Rejects with the signal's reason if `signal`
   * aborts first, or with an error once the limiter is closed.
   */
  acquire(key: string, signal?: AbortSignal): Promise<Release> {
    if (this.#closed) return Promise.reject(new Error('the host limiter is closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#hosts.size >= this.#sweepThreshold) this.#sweep();

    const state = this.#state(key);
    const now = performance.now();
    // The fast path: nobody is waiting and a slot is free now.
    if (state.waiters.size === 0 && state.active < this.#concurrency && now >= state.nextStartAt) {
      return Promise.resolve(this.#start(key, state, now));
    }

    return new Promise<Release>((resolve, reject) => {
      const onAbort = (): void => {
        state.waiters.delete(waiter);
        reject(signal?.reason);
        this.#pump(key, state);
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        fail: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      state.waiters.add(waiter);
      this.#pump(key, state);
    });
  }

  /** Slots held now for `key`. */
  active(key: string): number {
    return this.#hosts.get(key)?.active ?? 0;
  }

  /** Callers waiting for a slot for `key`. */
  queued(key: string): number {
    return this.#hosts.get(key)?.waiters.size ?? 0;
  }

  /** Keys currently tracked (busy ones, and idle ones still inside their rate spacing). */
  get size(): number {
    return this.#hosts.size;
  }

  /**
   * Rejects every queued caller and every later acquire. Slots already held stay valid
   * (releasing them is harmless).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const err = new Error('the host limiter is closed');
    for (const state of this.#hosts.values()) {
      clearTimeout(state.timer);
      state.timer = undefined;
      const waiters = [...state.waiters];
      state.waiters.clear();
      for (const waiter of waiters) waiter.fail(err);
    }
    this.#hosts.clear();
  }

  #state(key: string): HostState {
    let state = this.#hosts.get(key);
    if (state === undefined) {
      state = { active: 0, waiters: new Set(), nextStartAt: 0, timer: undefined };
      this.#hosts.set(key, state);
    }
    return state;
  }

  /** Takes a slot and returns the function that gives it back. */
  #start(key: string, state: HostState, now: number): Release {
    state.active++;
    if (this.#spacingMs > 0) state.nextStartAt = Math.max(now, state.nextStartAt) + this.#spacingMs;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.active--;
      this.#pump(key, state);
    };
  }

  /** Hands free slots to waiters in order, or arranges to when the rate limit allows. */
  #pump(key: string, state: HostState): void {
    if (this.#closed) return;
    while (state.waiters.size > 0 && state.active < this.#concurrency) {
      const now = performance.now();
      if (now < state.nextStartAt) {
        state.timer ??= setTimeout(() => {
          state.timer = undefined;
          this.#pump(key, state);
        }, Math.min(MAX_TIMER_MS, Math.ceil(state.nextStartAt - now)));
        return;
      }
      const [first] = state.waiters;
      state.waiters.delete(first!);
      first!.grant(this.#start(key, state, now));
    }
    if (state.waiters.size === 0 && state.timer !== undefined) {
      clearTimeout(state.timer);
      state.timer = undefined;
    }
    this.#forgetIfIdle(key, state, performance.now());
  }

  /** Drops the state of a key nobody uses and whose rate spacing is over. */
  #forgetIfIdle(key: string, state: HostState, now: number): void {
    if (state.active === 0 && state.waiters.size === 0 && now >= state.nextStartAt && this.#hosts.get(key) === state) {
      this.#hosts.delete(key);
    }
  }

  /**
   * With a rate limit, idle keys are kept until their spacing is over, so that a host cannot
   * be hit again early; they are swept here, in amortized constant time per acquire.
   */
  #sweep(): void {
    const now = performance.now();
    for (const [key, state] of this.#hosts) this.#forgetIfIdle(key, state, now);
    this.#sweepThreshold = Math.max(MIN_SWEEP_THRESHOLD, 2 * this.#hosts.size);
  }
}
