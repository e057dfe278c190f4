import { describe, expect, it } from 'vitest';
import { runLanes } from './job-publisher.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('runLanes', () => {
  it('when many tasks run in lanes, then each index runs once, in order of start, never more than the width at once', async () => {
    let running = 0;
    let most = 0;
    const started: number[] = [];
    await runLanes(500, 7, async (i) => {
      started.push(i);
      running++;
      most = Math.max(most, running);
      await tick();
      running--;
    });
    expect(started).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(most).toBe(7);
  });

  it('when a task fails, then no new one starts, the running ones settle, and the failure is thrown', async () => {
    const started: number[] = [];
    let settled = 0;
    await expect(
      runLanes(100, 4, async (i) => {
        started.push(i);
        await tick();
        settled++;
        if (i === 5) throw new Error('unroutable');
      }),
    ).rejects.toThrow('unroutable');
    expect(started.length).toBeLessThan(12);
    expect(settled).toBe(started.length);
  });

  it('when there are no tasks, then it resolves at once', async () => {
    await runLanes(0, 1000, () => Promise.reject(new Error('never')));
  });
});
