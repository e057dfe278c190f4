import type { SquareValue } from '@amqp-pipeline/shared';

/** Largest |n| whose square is still a safe integer: 94906265^2 = 9007199136250225 < 2^53. */
export const MAX_SAFE_ROOT = 94_906_265;

/**
 * The exact square of n: a number while it is a safe integer, otherwise its
 * decimal digits as a string (computed with BigInt, so never rounded).
 */
export function square(n: number): SquareValue {
  if (!Number.isSafeInteger(n)) throw new RangeError(`${n} is not a safe integer`);
  if (Math.abs(n) <= MAX_SAFE_ROOT) return n * n;
  const b = BigInt(n);
  return (b * b).toString();
}

/** Squares of every integer in [from, to], in order. */
export function squaresBetween(from: number, to: number): SquareValue[] {
  const out: SquareValue[] = [];
  for (let n = from; n <= to; n++) out.push(square(n));
  return out;
}

/** Chunk size when streaming a long list of squares. */
const CHUNK = 65_536;

/** Squares of [from, to] in order, in chunks, without building the whole list. */
export function* squareChunks(from: number, to: number): Generator<SquareValue[]> {
  for (let lo = from; lo <= to; lo += CHUNK) {
    yield squaresBetween(lo, Math.min(to, lo + CHUNK - 1));
    if (lo + CHUNK > to) break; // avoid stepping past 2^53 - 1
  }
}

/** 1^2 + 2^2 + ... + n^2 for n >= 0. */
function sumOfSquaresTo(n: bigint): bigint {
  return n < 0n ? 0n : (n * (n + 1n) * (2n * n + 1n)) / 6n;
}

/** The exact sum of n^2 over [from, to] (negative numbers included), by formula. */
export function sumOfSquares(from: number, to: number): bigint {
  const a = BigInt(from);
  const b = BigInt(to);
  if (a >= 0n) return sumOfSquaresTo(b) - sumOfSquaresTo(a - 1n);
  if (b <= 0n) return sumOfSquaresTo(-a) - sumOfSquaresTo(-b - 1n);
  return sumOfSquaresTo(-a) + sumOfSquaresTo(b);
}

export interface SquaresSummary {
  count: number;
  first: SquareValue;
  last: SquareValue;
  /** Exact sum, decimal digits. */
  sum: string;
}

/** The summary of a `count` job: how many squares, the first and last, and their exact sum. */
export function summarizeSquares(from: number, to: number): SquaresSummary {
  return { count: to - from + 1, first: square(from), last: square(to), sum: sumOfSquares(from, to).toString() };
}
