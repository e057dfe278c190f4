import type { Progress } from '@amqp-pipeline/shared';
import { describe, expect, it } from 'vitest';
import { CheckpointRunner, checkpointDue, checkpointEvery, emptyTotals, encodeDone, foldSummary, mergeProgress, recordedDone } from './checkpoint.js';

const bits = (...set: number[]) => {
  const b = Buffer.alloc(set.length ? (Math.max(...set) >> 3) + 1 : 0);
  for (const i of set) b[i >> 3] = (b[i >> 3] as number) | (1 << (i & 7));
  return b.toString('base64');
};
const doneSet = (p: Progress, upTo: number) => Array.from({ length: upTo }, (_, i) => i).filter((i) => recordedDone(p, i));

describe('encodeDone', () => {
  it('when the done results are a prefix and a few past it, then the record keeps the prefix as a number and a short bitmap', () => {
    const done = new Set([...Array.from({ length: 1_000_000 }, (_, i) => i), 1_000_002, 1_000_005]);
    const { base, done: map } = encodeDone(2_000_000, (i) => done.has(i));
    expect(base).toBe(1_000_000);
    expect(Buffer.from(map, 'base64').length).toBe(1);
    const p = { batch: 'B', revision: 1, base, done: map, nextPart: {} };
    for (const i of [0, 999_999, 1_000_002, 1_000_005]) expect(recordedDone(p, i)).toBe(true);
    for (const i of [1_000_000, 1_000_001, 1_000_003, 1_000_006, 1_999_999]) expect(recordedDone(p, i)).toBe(false);
  });

  it('when any set of results is done, then decoding the record gives exactly that set', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 50; round++) {
      const n = 1 + Math.floor(rand() * 300);
      const set = new Set(Array.from({ length: n }, (_, i) => i).filter(() => rand() < 0.7));
      const { base, done } = encodeDone(n, (i) => set.has(i));
      expect(doneSet({ batch: 'B', revision: 1, base, done, nextPart: {} }, n)).toEqual([...set].sort((a, b) => a - b));
    }
  });
});

describe('foldSummary', () => {
  it('when summaries come in any order, then the totals are those of the jobs in order: exact sum, first of the earliest, last of the latest', () => {
    const jobs = [
      { count: 4, first: 2, last: 7, sum: '17' },
      { count: 0, first: null, last: null, sum: '0' },
      { count: 2, first: 11, last: 13, sum: '24' },
      { count: 1, first: 9007199254740881, last: 9007199254740881, sum: '9007199254740881' },
    ];
    for (const order of [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]]) {
      let t = emptyTotals();
      for (const j of order) t = foldSummary(t, j, { ok: true, summary: jobs[j]! });
      expect(t).toEqual({ jobs: 4, count: 7, sum: '9007199254740922', first: 2, firstJob: 0, last: 9007199254740881, lastJob: 3 });
    }
  });

  it('when jobs fail, then the failure of the earliest of them is kept, whatever order they came in', () => {
    let t = emptyTotals();
    t = foldSummary(t, 5, { ok: false, error: { code: 'PIPELINE_ERR_X', message: 'five' } });
    t = foldSummary(t, 2, { ok: false, error: { code: 'PIPELINE_ERR_Y', message: 'two' } });
    t = foldSummary(t, 9, { ok: false, error: { code: 'PIPELINE_ERR_Z', message: 'nine' } });
    expect(t.failure).toEqual({ job: 2, error: { code: 'PIPELINE_ERR_Y', message: 'two' } });
    expect(t.jobs).toBe(3);
  });
});

describe('mergeProgress', () => {
  it('when a killed broker brings back an older checkpoint beside the newest, then the union of both is taken', () => {
    const older = { batch: 'B', revision: 3, base: 0, done: bits(0, 1), nextPart: { '4': 2 } };
    const newer = { batch: 'B', revision: 4, base: 0, done: bits(0, 1, 2, 4), nextPart: { '9': 1 } };
    for (const records of [[older, newer], [newer, older]]) {
      const merged = mergeProgress(records)!;
      expect(merged.revision).toBe(4);
      expect(doneSet(merged, 16)).toEqual([0, 1, 2, 4]);
      expect(merged.nextPart).toEqual({ '9': 1 });
    }
  });

  it('when records of a combine batch disagree, then the newest is taken whole (totals cannot be added as sets can)', () => {
    const older = { batch: 'B', revision: 2, base: 3, done: '', nextPart: {}, totals: { primes: { ...emptyTotals(), jobs: 3, count: 3 } } };
    const newer = { batch: 'B', revision: 5, base: 6, done: '', nextPart: {}, totals: { primes: { ...emptyTotals(), jobs: 6, count: 9 } } };
    expect(mergeProgress([newer, older])).toBe(newer);
    expect(mergeProgress([older, newer])).toBe(newer);
  });

  it('when there is one record or none, then it is that record, or nothing', () => {
    const only = { batch: 'B', revision: 1, base: 0, done: bits(3), nextPart: {} };
    expect(mergeProgress([only])).toBe(only);
    expect(mergeProgress([])).toBeUndefined();
  });
});

describe('checkpoint rules', () => {
  it('when the window is small or mostly held, then a checkpoint is due at half of the rest, never more than 256 replies', () => {
    expect(checkpointEvery(1024, 512)).toBe(256);
    expect(checkpointEvery(256, 128)).toBe(64);
    expect(checkpointEvery(16, 8)).toBe(4);
    expect(checkpointDue(63, 0, 64)).toBe(false);
    expect(checkpointDue(64, 0, 64)).toBe(true);
    expect(checkpointDue(1, 8 * 1024 * 1024, 64)).toBe(true);
  });
});

describe('CheckpointRunner', () => {
  const gate = () => {
    let open!: () => void;
    const p = new Promise<void>((r) => (open = r));
    return { p, open };
  };

  it('when checkpoints are asked for while one runs, then exactly one more runs after it: a request is never skipped', async () => {
    const gates = [gate(), gate(), gate()];
    let runs = 0;
    const r = new CheckpointRunner(() => gates[runs++]!.p, () => {});
    const first = r.request();
    expect(runs).toBe(1);
    void r.request();
    void r.request();
    expect(runs).toBe(1);
    gates[0]!.open();
    await new Promise((resolve) => setImmediate(resolve));
    expect(runs).toBe(2);
    gates[1]!.open();
    await first;
    expect(runs).toBe(2);
    expect(r.busy).toBe(false);
    // A request after the end starts a new run at once.
    void r.request();
    expect(runs).toBe(3);
    gates[2]!.open();
    await r.idle();
  });

  it('when a checkpoint fails, then the error is reported and the next request runs anew', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    const r = new CheckpointRunner(async () => {
      runs++;
      if (runs === 1) throw new Error('broker gone');
    }, (e) => errors.push(e));
    await r.request();
    await r.request();
    expect(runs).toBe(2);
    expect(errors).toHaveLength(1);
  });
});
