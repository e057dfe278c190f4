import { describe, expect, it } from 'vitest';
import { checkpointEvery } from './checkpoint.js';
import { reopen } from './reconnect.js';
import { LARGE_RESULTS_WINDOW, MIN_LEAD, SMALL_RESULTS_WINDOW, leadFor, windowFor } from './reply-window.js';

describe('windowFor', () => {
  it('when the jobs are counts, titles or short lists, then the window is wide; when a list may come in parts, then it is narrower', () => {
    expect(windowFor([{ input: { from: 1, to: 1e9, count: true } }])).toBe(SMALL_RESULTS_WINDOW);
    expect(windowFor([{ input: { url: 'http://x/' } }])).toBe(SMALL_RESULTS_WINDOW);
    expect(windowFor([{ input: { from: 1, to: 2000 } }])).toBe(SMALL_RESULTS_WINDOW);
    expect(windowFor([{ input: { from: 1, to: 100 } }, { input: { from: 101, to: 1e6 } }])).toBe(LARGE_RESULTS_WINDOW);
    expect(windowFor([])).toBe(SMALL_RESULTS_WINDOW);
  });

  it('when a window is chosen, then held replies and a due checkpoint together always leave room in it', () => {
    for (const w of [SMALL_RESULTS_WINDOW, LARGE_RESULTS_WINDOW]) {
      expect(w.holdMessages + checkpointEvery(w.prefetch, w.holdMessages)).toBeLessThan(w.prefetch);
      // 64 KiB parts: the window's bytes stay near 16-64 MiB.
      expect(w.prefetch * 65536).toBeLessThanOrEqual(64 * 1024 * 1024);
    }
  });
});

describe('leadFor', () => {
  const job = (kinds: string[], input: Record<string, unknown>) => ({ kinds, input });
  it('when each job brings one small result, then an ordered batch runs as far ahead as the window holds', () => {
    expect(leadFor([job(['primes'], { from: 1, to: 100 })], SMALL_RESULTS_WINDOW)).toBe(SMALL_RESULTS_WINDOW.holdMessages);
    expect(leadFor([job(['title'], { url: 'http://x/' })], SMALL_RESULTS_WINDOW)).toBe(SMALL_RESULTS_WINDOW.holdMessages);
    expect(leadFor([job(['primes'], { from: 1, to: 1e9, count: true })], SMALL_RESULTS_WINDOW)).toBe(SMALL_RESULTS_WINDOW.holdMessages);
  });

  it('when jobs bring two kinds, or lists in several parts, then the window is shared out among them, never below MIN_LEAD', () => {
    expect(leadFor([job(['primes', 'squares'], { from: 1, to: 100 })], SMALL_RESULTS_WINDOW)).toBe(SMALL_RESULTS_WINDOW.holdMessages / 2);
    // 10,000 numbers: at most 210,000 bytes, four parts of 64 KiB.
    expect(leadFor([job(['squares'], { from: 1, to: 10_000 })], LARGE_RESULTS_WINDOW)).toBe(LARGE_RESULTS_WINDOW.holdMessages / 4);
    expect(leadFor([job(['squares'], { from: 1, to: 1e7 })], LARGE_RESULTS_WINDOW)).toBe(MIN_LEAD);
  });
});

describe('reopen', () => {
  it('when opening fails a few times, then it is tried again until it works', async () => {
    let tries = 0;
    const retried: number[] = [];
    const out = await reopen(
      async () => {
        if (++tries < 3) throw new Error('connection down');
        return 'channel';
      },
      { stop: () => false, delayMs: 1, onRetry: (_e, n) => retried.push(n) },
    );
    expect(out).toEqual({ value: 'channel' });
    expect(retried).toEqual([1, 2]);
  });

  it('when the caller stops, then it gives up with the reason and opens nothing more', async () => {
    let tries = 0;
    const out = await reopen(
      async () => {
        tries++;
        throw new Error('down');
      },
      { stop: () => (tries >= 2 ? 'closing' : false), delayMs: 1 },
    );
    expect(out).toEqual({ stopped: 'closing' });
    expect(tries).toBe(2);
  });
});
