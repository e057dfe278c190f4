import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { RangeJobSchema, assertRangeWidth } from './range-job.js';

describe('RangeJobSchema', () => {
  it('when the body is a valid range, then extra fields are ignored', () => {
    expect(RangeJobSchema.parse({ from: 2, to: 100, note: 'x' })).toEqual({ from: 2, to: 100 });
  });

  it.each([
    [{ from: 1.5, to: 3 }, 'integer'],
    [{ from: '1', to: 3 }, 'number'],
    [{ from: 5, to: 2 }, 'greater'],
    [{ from: 1, to: 2 ** 53 }, 'safe integer'],
    [{ to: 3 }, 'from'],
    [[1, 2], 'object'],
  ])('when the body is %j, then it is refused (%s)', (body, word) => {
    const r = RangeJobSchema.safeParse(body);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(new RegExp(word, 'i'));
  });

  it('when a range is wider than its mode allows, then assertRangeWidth names the limit with a stable code', () => {
    const limits = { maxListWidth: 10, maxCountWidth: 100 };
    expect(() => assertRangeWidth({ from: 1, to: 10 }, limits)).not.toThrow();
    expect(() => assertRangeWidth({ from: 1, to: 11 }, limits)).toThrow(
      expect.objectContaining({ code: ErrorCodes.LIMIT_EXCEEDED, message: expect.stringContaining('MAX_RANGE_WIDTH') }),
    );
    expect(() => assertRangeWidth({ from: 1, to: 100, count: true }, limits)).not.toThrow();
    expect(() => assertRangeWidth({ from: 1, to: 101, count: true }, limits)).toThrow(
      expect.objectContaining({ code: ErrorCodes.LIMIT_EXCEEDED, message: expect.stringContaining('MAX_COUNT_WIDTH') }),
    );
  });
});
