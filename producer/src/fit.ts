/**
 * Does a result fit the job it claims to answer? Anything that can publish to the default
 * exchange can put a message into a reply queue, and anyone can send a job whose `reply_to`
 * and `correlation_id` are another batch's: a correlation id alone binds nothing. So before a
 * result is taken, it must be what that job can have produced:
 *
 * - the service's echo of the job (`job`: the fields it read, `{from, to[, count]}` or `{url}`)
 *   is the job this producer sent, so another job's answer (a borrowed `reply_to`) is refused;
 * - a list covers only the job's numbers: primes ascending within the range; squares exactly
 *   the squares of consecutive numbers of the range (all of them, when the list is whole; a
 *   part's run starts at `from` for the first part and ends at `to` for the last);
 * - a summary is there exactly when the job asked for a count, and covers the job's range: a
 *   squares summary is checked exactly (its count, first, last and sum follow from the range),
 *   a primes summary for what a range bounds (count within its width, first and last in it).
 *
 * What it cannot tell: a forger who knows the job and sends a plausible primes list. Only the
 * broker can vouch for a sender (the `user_id` property, with per-role users): senderProblem.
 */
import type { Result } from '@amqp-pipeline/shared/client';

/**
 * What a message says of its sender, for the log line of a refused one. The broker tells a
 * consumer nothing of the publishing connection; `user_id` is the one property it checks
 * (RabbitMQ refuses a message whose user_id is not its connection's user), `app_id` is only
 * what the sender claims.
 */
export function senderOf(msg: { properties: { appId?: unknown; userId?: unknown; messageId?: unknown } }): Record<string, unknown> {
  const { appId, userId, messageId } = msg.properties;
  return { appId: appId ?? null, userId: userId ?? null, ...(messageId ? { messageId } : {}) };
}

/**
 * Who may write into a producer's queues. Results carry the AMQP `user_id` of their sender,
 * which the broker checks; with per-role users (rabbitmq/definitions.json) that binds a
 * result to a service. With one user shared by every process (guest in development) it
 * proves nothing, and results are taken from anyone (`services` undefined).
 */
export interface Senders {
  /** The producer's own broker user: its manifests, checkpoints and spilled copies carry it. */
  own: string;
  /** Per kind, the one user whose results are taken; undefined: not checked. */
  services?: Readonly<Record<string, string>> | undefined;
}

/** Why a result may not be taken from its sender, or undefined when it may. */
export function senderProblem(senders: Senders | undefined, kind: string, msg: { properties: { userId?: unknown } }): string | undefined {
  const want = senders?.services?.[kind];
  if (want === undefined) return undefined;
  const user = msg.properties.userId;
  // The producer's own user: a copy it sent round itself (a spill), which it may.
  if (user === want || user === senders!.own) return undefined;
  return user === undefined || user === null || user === ''
    ? `it carries no user_id; ${kind} results are taken only from broker user "${want}" (SERVICE_USERS)`
    : `sent by broker user "${String(user)}"; ${kind} results are taken only from "${want}" (SERVICE_USERS)`;
}

/** Why a manifest or checkpoint may not be taken from its sender (only the producer's own user writes them), or undefined. */
export function ownProblem(senders: Senders | undefined, msg: { properties: { userId?: unknown } }): string | undefined {
  if (!senders) return undefined;
  const user = msg.properties.userId;
  return user === senders.own ? undefined : `written by ${user ? `broker user "${String(user)}"` : 'a sender with no user_id'}, not by this producer's user "${senders.own}"`;
}

/** The job as the manifest knows it: `{from, to[, count]}` or `{url}`. */
export type JobInput = Record<string, unknown>;

/** Why the result does not fit the job, or undefined when it does. */
export function misfit(input: JobInput, result: Result): string | undefined {
  const echo = result.job;
  if (!echo) return 'the result does not echo its job (a service of this version always does)';
  if (typeof input.url === 'string') {
    return echo.url === input.url ? undefined : `it answers ${describe(echo)}, not this job's url`;
  }
  const from = input.from;
  const to = input.to;
  if (typeof from !== 'number' || typeof to !== 'number') return undefined; // not a job we can check
  const count = input.count === true;
  if (echo.from !== from || echo.to !== to || (echo.count === true) !== count) {
    return `it answers ${describe(echo)}, not this job's ${describe(input)}`;
  }
  if (!result.ok) return undefined;
  if ('summary' in result) {
    if (!count) return 'a summary for a job that asked for the list';
    return result.kind === 'squares' ? squaresSummaryMisfit(from, to, result.summary) : primesSummaryMisfit(from, to, result.summary);
  }
  if (count) return 'a list for a job that asked for a count';
  const part = 'part' in result ? result.part : undefined;
  if ('primes' in result) return primesMisfit(from, to, result.primes);
  if ('squares' in result) return squaresMisfit(from, to, result.squares, part);
  return `a ${result.kind} result for a range job`;
}

function describe(v: Record<string, unknown>): string {
  return JSON.stringify(v);
}

function primesMisfit(from: number, to: number, primes: readonly number[]): string | undefined {
  let prev = from - 1;
  for (const p of primes) {
    if (p <= prev || p > to) return `prime ${p} is ${p > to || p < from ? `outside ${from}..${to}` : 'out of order'}`;
    prev = p;
  }
  return undefined;
}

type Square = number | string;

function bigOf(v: Square): bigint {
  return typeof v === 'number' ? BigInt(v) : BigInt(v);
}

/** The integer square root of n >= 0 (of a negative "square": -1, which fits nothing). */
function isqrt(n: bigint): bigint {
  if (n < 0n) return -1n;
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n))));
  while (x * x > n) x--;
  while ((x + 1n) * (x + 1n) <= n) x++;
  return x;
}

function squaresMisfit(from: number, to: number, squares: readonly Square[], part: { index: number; last: boolean } | undefined): string | undefined {
  if (squares.length === 0) return 'an empty list of squares';
  // The run of numbers this list (or part) squares starts at `from`, unless it is a later
  // part: then at the root of its first entry, with either sign (ranges may be negative).
  if (!part || part.index === 0) return runMisfit(from, to, from, squares, part);
  const root = Number(isqrt(bigOf(squares[0] as Square)));
  const tried = root === 0 ? [0] : [-root, root];
  let problem: string | undefined;
  for (const start of tried) {
    problem = runMisfit(from, to, start, squares, part);
    if (problem === undefined) return undefined;
  }
  return problem;
}

/** Whether `squares` are the squares of start, start+1, ... within from..to (ending at `to` when last). */
function runMisfit(from: number, to: number, start: number, squares: readonly Square[], part: { last: boolean } | undefined): string | undefined {
  const end = start + squares.length - 1;
  if (start < from || end > to) return `squares of numbers outside ${from}..${to}`;
  // Safe integers stay numbers (the common case, and the fast one); larger ones are BigInt.
  const safe = Math.max(Math.abs(start), Math.abs(end)) <= 94_906_265; // the square is below 2^53
  for (let i = 0; i < squares.length; i++) {
    const v = squares[i] as Square;
    const n = start + i;
    if (safe ? v !== n * n : bigOf(v) !== BigInt(n) * BigInt(n)) return `entry ${i} is ${v}, not the square of ${n}`;
  }
  if ((!part || part.last) && end !== to) return `the squares end at the square of ${end}, not of ${to}`;
  return undefined;
}

interface Summary {
  count: number;
  first: Square | null;
  last: Square | null;
  sum: string;
}

function squaresSummaryMisfit(from: number, to: number, s: Summary): string | undefined {
  const a = BigInt(from);
  const b = BigInt(to);
  // The sum of n² for n in 0..k is k(k+1)(2k+1)/6; a range below zero mirrors one above it.
  const upTo = (k: bigint) => (k < 0n ? 0n : (k * (k + 1n) * (2n * k + 1n)) / 6n);
  const sum = a >= 0n ? upTo(b) - upTo(a - 1n) : b <= 0n ? upTo(-a) - upTo(-b - 1n) : upTo(-a) + upTo(b);
  const expected = { count: to - from + 1, first: a * a, last: b * b, sum };
  if (s.count !== expected.count) return `a count of ${s.count} squares for ${to - from + 1} numbers`;
  if (s.first === null || s.last === null || bigOf(s.first) !== expected.first || bigOf(s.last) !== expected.last || BigInt(s.sum) !== expected.sum) {
    return `a squares summary that is not the one of ${from}..${to}`;
  }
  return undefined;
}

function primesSummaryMisfit(from: number, to: number, s: Summary): string | undefined {
  if (s.count > to - from + 1) return `a count of ${s.count} primes for ${to - from + 1} numbers`;
  if (s.count === 0) return s.first === null && s.last === null && s.sum === '0' ? undefined : 'a count of 0 with a first, last or sum';
  if (typeof s.first !== 'number' || typeof s.last !== 'number') return 'a count without its first and last prime';
  if (s.first < from || s.last > to || s.first > s.last || (s.count === 1 && s.first !== s.last)) return `first ${s.first} and last ${s.last} do not fit ${from}..${to}`;
  return undefined;
}
