import { describe, expect, it } from 'vitest';
import { mergeProgress } from './client.js';

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
