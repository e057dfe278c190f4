import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countPrimes, kernelName, primesBetween } from './primes.js';

// The pool's threads load the *compiled* worker (dist/sieve-worker.js): worker threads run plain
// Node, which cannot load the TypeScript source that vitest runs. So this test drives the built
// pool from dist (`npm test` runs `tsc -b` first) and is skipped only when dist is missing.
const distPool = new URL('../dist/pool.js', import.meta.url);
const distWorker = new URL('../dist/sieve-worker.js', import.meta.url);
const built = existsSync(distPool) && existsSync(distWorker);

type PoolModule = typeof import('../dist/pool.js');

describe.skipIf(!built)('PrimePool (built worker from dist; run `npx tsc -b consumers/prime-filter` first)', () => {
  let mod: PoolModule;
  let pool: InstanceType<PoolModule['PrimePool']>;

  beforeAll(async () => {
    mod = (await import(distPool.href)) as PoolModule;
    // inline: false, so that even the small ranges below go through a worker thread.
    pool = new mod.PrimePool({ threads: 2, inline: false });
  });

  afterAll(async () => {
    await pool?.close();
  });

  it('when listing through a worker thread, then the primes match the synchronous sieve', async () => {
    const listed = await pool.list(0, 100);
    expect(listed).toBeInstanceOf(Float64Array);
    expect(Array.from(listed)).toEqual(Array.from(primesBetween(0, 100)));
    const far = await pool.list(1e12, 1e12 + 1e5);
    expect(Array.from(far)).toEqual(Array.from(primesBetween(1e12, 1e12 + 1e5)));
    // The transferred array owns exactly its buffer (it was moved, not a view into a bigger one).
    expect(far.buffer.byteLength).toBe(far.length * 8);
  });

  it('when summarising through a worker thread, then count, first, last and sum match', async () => {
    expect(await pool.summary(1, 1e6)).toEqual({ count: 78_498, first: 2, last: 999_983, sum: 37_550_402_023n });
    expect(await pool.summary(1e12, 1e12 + 1e6)).toEqual(countPrimes(1e12, 1e12 + 1e6));
    expect(await pool.summary(-5, 1)).toEqual({ count: 0, first: null, last: null, sum: 0n });
  });

  it('when several tasks run at once, then each gets its own right answer', { timeout: 60_000 }, async () => {
    const ranges: Array<[number, number]> = [
      [0, 50_000],
      [1e9, 1e9 + 2e6],
      [1e12 + 7, 1e12 + 3e5],
      [2 ** 53 - 1000, 2 ** 53 - 1],
      [123_456, 7_654_321],
      [10, 9],
    ];
    const lists = await Promise.all(ranges.map(([from, to]) => pool.list(from, to)));
    const summaries = await Promise.all(ranges.map(([from, to]) => pool.summary(from, to)));
    ranges.forEach(([from, to], i) => {
      expect(Array.from(lists[i]!), `${from}..${to}`).toEqual(Array.from(primesBetween(from, to)));
      expect(summaries[i], `${from}..${to}`).toEqual(countPrimes(from, to));
    });
  });

  it('when a long task runs in the pool, then the event loop keeps turning', { timeout: 60_000 }, async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      const summary = await pool.summary(1, 1e9);
      expect(summary.count).toBe(50_847_534);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(3);
  });

  it('when a range is small, then it is sieved on the calling thread with the same answers, and a bad one still rejects', async () => {
    const inline = new mod.PrimePool({ threads: 1 });
    try {
      expect(mod.isSmallRange(0, 100)).toBe(true);
      expect(mod.isSmallRange(0, mod.INLINE_MAX_WIDTH)).toBe(false);
      expect(mod.isSmallRange(2 ** 40, 2 ** 40 + 10)).toBe(false); // its base primes would be large
      for (const [from, to] of [[0, 100], [4_294_910_000, 4_294_967_295], [-10, 3], [1_000_000, 1_065_535]] as const) {
        expect(Array.from(await inline.list(from, to)), `${from}..${to}`).toEqual(Array.from(await pool.list(from, to)));
        expect(await inline.summary(from, to), `${from}..${to}`).toEqual(await pool.summary(from, to));
      }
      await expect(inline.list(0.5, 10)).rejects.toThrow(/safe integers/);
    } finally {
      await inline.close();
    }
  });

  it('when a range is invalid, then the task rejects with the RangeError from the worker', async () => {
    await expect(pool.list(0.5, 10)).rejects.toThrow(/safe integers/);
    await expect(pool.summary(0, 2 ** 53)).rejects.toThrow(/safe integers/);
  });

  it('when a pool is warmed, then every thread is up with its kernel loaded, and a first 1e8-wide summary starts no thread', { timeout: 60_000 }, async () => {
    const fresh = new mod.PrimePool({ threads: 2 });
    try {
      expect(fresh.threadIds).toHaveLength(2); // the threads start with the pool, not with a range
      const warmed = await fresh.warm();
      // Each thread ran the one-time work once: two reports from two different threads, both
      // with the kernel this machine has (wasm once build/sieve.wasm is built).
      expect(warmed.threads).toHaveLength(2);
      expect(new Set(warmed.threads.map((t) => t.threadId)).size).toBe(2);
      expect(warmed.threads.map((t) => t.kernel)).toEqual([kernelName(), kernelName()]);
      expect(fresh.threadsStarted).toBe(2);
      expect([...fresh.threadIds].sort()).toEqual(warmed.threads.map((t) => t.threadId).sort());
      expect(await fresh.warm()).toBe(warmed); // once per pool

      expect(await fresh.summary(1, 1e8)).toEqual(countPrimes(1, 1e8));
      // The range ran on a thread that was already there: none started for it.
      expect(fresh.threadsStarted).toBe(2);
      expect([...fresh.threadIds].sort()).toEqual(warmed.threads.map((t) => t.threadId).sort());
    } finally {
      await fresh.close();
    }
  });

  it('when threads is 0 or left out, then there is one thread per core; a bad count is refused', async () => {
    const perCore = new mod.PrimePool();
    const zero = new mod.PrimePool({ threads: 0 });
    const one = new mod.PrimePool({ threads: 1 });
    try {
      expect(perCore.threads).toBe(availableParallelism());
      expect(zero.threads).toBe(availableParallelism());
      expect(one.threads).toBe(1);
      expect(await one.summary(1, 100)).toEqual({ count: 25, first: 2, last: 97, sum: 1060n });
    } finally {
      await Promise.all([perCore.close(), zero.close(), one.close()]);
    }
    expect(() => new mod.PrimePool({ threads: -1 })).toThrow(RangeError);
    expect(() => new mod.PrimePool({ threads: 1.5 })).toThrow(RangeError);
  });
});
