import { z } from 'zod';

export const RESULT_VERSION = 1;
export const RESULT_TYPE = 'pipeline.result.v1';

export const ResultKinds = ['primes', 'squares', 'title'] as const;
export type ResultKind = (typeof ResultKinds)[number];

/**
 * A square as it travels: a JSON number while it is a safe integer
 * (<= 2^53 - 1), otherwise its exact decimal digits as a string.
 */
export const SquareValue = z.union([z.number().int(), z.string().regex(/^\d+$/)]);
export type SquareValue = z.infer<typeof SquareValue>;

const WireError = z.object({ code: z.string(), message: z.string() });

/**
 * The job a result answers, as the service read it: `{from, to}` (with `count: true` for a
 * summary) or `{url}`. Our producer takes a result only when this is the job it sent (see
 * docs/protocol.md, "Results are bound to their jobs"); a foreign client may ignore it.
 * Absent only when the job could not be read at all.
 */
export const JobEcho = z.object({
  from: z.number().int().optional(),
  to: z.number().int().optional(),
  count: z.literal(true).optional(),
  url: z.string().optional(),
});
export type JobEcho = z.infer<typeof JobEcho>;

const Failure = z.object({ ok: z.literal(false), kind: z.enum(ResultKinds), job: JobEcho.optional(), error: WireError });

/**
 * A summary of a range instead of its list (`"count": true` in the job):
 * how many values, the first and last, and their exact sum as decimal digits.
 */
export const RangeSummary = z.object({
  count: z.number().int().min(0),
  first: SquareValue.nullable(),
  last: SquareValue.nullable(),
  sum: z.string().regex(/^-?\d+$/),
});
export type RangeSummary = z.infer<typeof RangeSummary>;

/**
 * Present when a list result is split into ordered parts (each message under the
 * service's RESULT_PART_BYTES): concatenate the lists of parts 0..last in index order.
 * Absent when the whole list fits in one message.
 */
export const PartInfo = z.object({ index: z.number().int().min(0), last: z.boolean() });
export type PartInfo = z.infer<typeof PartInfo>;

export const ResultSchema = z.union([
  z.object({ ok: z.literal(true), kind: z.literal('primes'), job: JobEcho.optional(), primes: z.array(z.number().int()), part: PartInfo.optional() }),
  z.object({ ok: z.literal(true), kind: z.literal('squares'), job: JobEcho.optional(), squares: z.array(SquareValue), part: PartInfo.optional() }),
  z.object({ ok: z.literal(true), kind: z.enum(['primes', 'squares']), job: JobEcho.optional(), summary: RangeSummary }),
  z.object({
    ok: z.literal(true),
    kind: z.literal('title'),
    job: JobEcho.optional(),
    title: z.string(),
    /** Where the title came from: the `<title>` element, or `og:title` as a fallback. */
    source: z.enum(['title', 'og:title']).optional(),
    /** The URL finally fetched, after redirects. */
    url: z.string().optional(),
  }),
  Failure,
]);

export type Result = z.infer<typeof ResultSchema>;
export type SuccessResult = Extract<Result, { ok: true }>;
export type FailureResult = z.infer<typeof Failure>;
