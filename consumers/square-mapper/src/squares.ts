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
