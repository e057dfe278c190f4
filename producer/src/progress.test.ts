import { describe, expect, it } from 'vitest';
import { checkpointReplies, mergeProgress } from './client.js';

const bits = (...set: number[]) => {
  const b = Buffer.alloc(2);
  for (const i of set) b[i >> 3] = (b[i >> 3] as number) | (1 << (i & 7));
  return b.toString('base64');
};

describe('mergeProgress', () => {
  it('when a killed broker brings back an older checkpoint beside the newest, then the union of both is taken', () => {
    const older = { batch: 'B', revision: 3, done: bits(0, 1), nextPart: { '4': 2 } };
    const newer = { batch: 'B', revision: 4, done: bits(0, 1, 2, 4), nextPart: { '9': 1 } };
    // Whatever order the queue hands them out in.
    for (const records of [[older, newer], [newer, older]]) {
      expect(mergeProgress(records)).toEqual({ batch: 'B', revision: 4, done: bits(0, 1, 2, 4), nextPart: { '9': 1 } });
    }
  });

  it('when there is one record or none, then it is that record, or nothing', () => {
    const only = { batch: 'B', revision: 1, done: bits(3), nextPart: {} };
    expect(mergeProgress([only])).toBe(only);
    expect(mergeProgress([])).toBeUndefined();
  });
});

describe('checkpointReplies', () => {
  it('when a batch is small, then a checkpoint is due every 250 results; when large, a 64th of it, never past 2,000', () => {
    expect(checkpointReplies(1)).toBe(250);
    expect(checkpointReplies(16_000)).toBe(250);
    expect(checkpointReplies(20_000)).toBe(313);
    expect(checkpointReplies(100_000)).toBe(1563);
    expect(checkpointReplies(10_000_000)).toBe(2000);
  });
});
