import { afterEach, describe, expect, it, vi } from 'vitest';
import { HostLimiter } from './host-limiter.js';
import type { Release } from './host-limiter.js';

/** Records when a promise settles, so a test can check "not yet" without waiting for time. */
function track<T>(promise: Promise<T>): { readonly state: 'pending' | 'resolved' | 'rejected'; promise: Promise<T> } {
  const tracker = { state: 'pending' as 'pending' | 'resolved' | 'rejected', promise };
  promise.then(
    () => (tracker.state = 'resolved'),
    () => (tracker.state = 'rejected'),
  );
  return tracker;
}

/** Lets every already-settled promise's callbacks run (no timers involved). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

afterEach(() => {
  vi.useRealTimers();
});

describe('HostLimiter: concurrency', () => {
  it('when slots are free, then acquire resolves at once; when they are all held, then the next caller waits for a release', async () => {
    const limiter = new HostLimiter({ concurrency: 2 });
    const first = await limiter.acquire('a');
    await limiter.acquire('a');
    expect(limiter.active('a')).toBe(2);

    const third = track(limiter.acquire('a'));
    await settle();
    expect(third.state).toBe('pending');
    expect(limiter.queued('a')).toBe(1);

    first();
    await third.promise;
    expect(limiter.active('a')).toBe(2);
    expect(limiter.queued('a')).toBe(0);
  });

  it('when several callers wait for one key, then they get slots in arrival order', async () => {
    const limiter = new HostLimiter({ concurrency: 1 });
    const held = await limiter.acquire('a');
    const order: number[] = [];
    const waiting = [1, 2, 3].map((n) => limiter.acquire('a').then((release) => (order.push(n), release)));

    let release: Release = held;
    for (const next of waiting) {
      release();
      release = await next;
    }
    release();
    expect(order).toEqual([1, 2, 3]);
  });

  it('when one key is saturated, then another key is served at once', async () => {
    const limiter = new HostLimiter({ concurrency: 1 });
    await limiter.acquire('slow.example');
    const queued = track(limiter.acquire('slow.example'));
    const other = await limiter.acquire('fast.example');
    expect(limiter.active('fast.example')).toBe(1);
    other();
    expect(queued.state).toBe('pending');
  });

  it('when a release is called twice, then it frees only one slot', async () => {
    const limiter = new HostLimiter({ concurrency: 1 });
    const release = await limiter.acquire('a');
    const second = track(limiter.acquire('a'));
    const third = track(limiter.acquire('a'));
    release();
    release();
    await second.promise;
    await settle();
    expect(third.state).toBe('pending');
    expect(limiter.active('a')).toBe(1);
  });

  it('when every slot of a key is released and nobody waits, then the key is forgotten', async () => {
    const limiter = new HostLimiter({ concurrency: 4 });
    const releases = await Promise.all([limiter.acquire('a'), limiter.acquire('b')]);
    expect(limiter.size).toBe(2);
    for (const release of releases) release();
    expect(limiter.size).toBe(0);
  });

  it('when the options are out of range, then a RangeError is thrown', () => {
    expect(() => new HostLimiter({ concurrency: 0 })).toThrow(RangeError);
    expect(() => new HostLimiter({ concurrency: 1.5 })).toThrow(RangeError);
    expect(() => new HostLimiter({ concurrency: 1, ratePerSecond: -1 })).toThrow(RangeError);
    expect(() => new HostLimiter({ concurrency: 1, ratePerSecond: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });
});

describe('HostLimiter: abort signals and closing', () => {
  it('when a queued caller aborts, then it is rejected with the reason and leaves the queue', async () => {
    const limiter = new HostLimiter({ concurrency: 1 });
    const held = await limiter.acquire('a');
    const controller = new AbortController();
    const aborted = limiter.acquire('a', controller.signal);
    const next = limiter.acquire('a');
    expect(limiter.queued('a')).toBe(2);

    const reason = new Error('deadline exceeded');
    controller.abort(reason);
    await expect(aborted).rejects.toBe(reason);
    expect(limiter.queued('a')).toBe(1);

    // The slot goes to the caller behind it.
    held();
    (await next)();
    expect(limiter.active('a')).toBe(0);
  });

  it('when the signal is already aborted, then acquire rejects without taking a slot', async () => {
    const limiter = new HostLimiter({ concurrency: 1 });
    await expect(limiter.acquire('a', AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
    expect(limiter.active('a')).toBe(0);
    expect(limiter.size).toBe(0);
  });

  it('when a granted caller aborts later, then its slot is kept until released', async () => {
    const limiter = new HostLimiter({ concurrency: 1 });
    const controller = new AbortController();
    const release = await limiter.acquire('a', controller.signal);
    controller.abort();
    expect(limiter.active('a')).toBe(1);
    release();
    expect(limiter.active('a')).toBe(0);
  });

  it('when the limiter is closed, then queued and later callers are rejected', async () => {
    const limiter = new HostLimiter({ concurrency: 1 });
    const held = await limiter.acquire('a');
    const queued = limiter.acquire('a');
    limiter.close();
    await expect(queued).rejects.toThrow(/closed/);
    await expect(limiter.acquire('b')).rejects.toThrow(/closed/);
    held(); // harmless after close
  });
});

describe('HostLimiter: rate limit', () => {
  it('when a rate is set, then starts for one key are spaced 1/rate apart', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const limiter = new HostLimiter({ concurrency: 10, ratePerSecond: 10 }); // one per 100 ms
    const started = performance.now();
    const startTimes: number[] = [];
    const all = [0, 1, 2].map((n) =>
      limiter.acquire('a').then((release) => {
        startTimes[n] = performance.now() - started;
        release();
      }),
    );

    await vi.advanceTimersByTimeAsync(0);
    expect(startTimes).toEqual([0]);
    await vi.advanceTimersByTimeAsync(99);
    expect(startTimes).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    expect(startTimes).toEqual([0, 100]);
    await vi.advanceTimersByTimeAsync(100);
    await Promise.all(all);
    expect(startTimes).toEqual([0, 100, 200]);
  });

  it('when a rate is set, then other keys are not held back by it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const limiter = new HostLimiter({ concurrency: 10, ratePerSecond: 1 });
    (await limiter.acquire('a'))();
    const again = track(limiter.acquire('a'));
    (await limiter.acquire('b'))();
    await vi.advanceTimersByTimeAsync(999);
    expect(again.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(again.state).toBe('resolved');
  });

  it('when a key is idle but inside its spacing, then a new start still waits for the spacing', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const limiter = new HostLimiter({ concurrency: 1, ratePerSecond: 2 }); // one per 500 ms
    (await limiter.acquire('a'))();
    expect(limiter.size).toBe(1);
    const early = track(limiter.acquire('a'));
    await vi.advanceTimersByTimeAsync(499);
    expect(early.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(early.state).toBe('resolved');
  });

  it('when many idle keys are past their spacing, then they are swept away', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const limiter = new HostLimiter({ concurrency: 1, ratePerSecond: 2 });
    for (let i = 0; i < 1024; i++) (await limiter.acquire(`host-${i}`))();
    expect(limiter.size).toBe(1024);
    await vi.advanceTimersByTimeAsync(500);
    (await limiter.acquire('one-more'))();
    expect(limiter.size).toBe(1);
  });

  it('when the rate is tiny, then the wait is split into timers setTimeout can hold', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const limiter = new HostLimiter({ concurrency: 1, ratePerSecond: 1e-7 }); // one per 10^10 ms
    (await limiter.acquire('a'))();
    const next = track(limiter.acquire('a'));
    await vi.advanceTimersByTimeAsync(2 ** 31);
    expect(next.state).toBe('pending');
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(1e10 - 2 ** 31);
    expect(next.state).toBe('resolved');
  });

  it('when a rate-limited waiter aborts and nobody else waits, then the wake-up timer is cleared', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const limiter = new HostLimiter({ concurrency: 1, ratePerSecond: 1 });
    (await limiter.acquire('a'))();
    const controller = new AbortController();
    const waiting = limiter.acquire('a', controller.signal);
    expect(vi.getTimerCount()).toBe(1);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(vi.getTimerCount()).toBe(0);
  });
});
