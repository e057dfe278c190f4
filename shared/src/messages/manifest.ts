import { z } from 'zod';
import { ResultKinds } from './result.js';

export const MANIFEST_TYPE = 'pipeline.manifest.v1';

/**
 * How the results of a batch are presented: `ordered` streams each kind's lists in job
 * order (a range split into chunks reads as one list); `combine` adds the jobs' summaries
 * into one per kind (counts and sums added); `independent` prints each result as it comes.
 */
export const OutputMode = z.enum(['ordered', 'combine', 'independent']);
export type OutputMode = z.infer<typeof OutputMode>;

/**
 * Written once by the producer into the batch's manifest queue, so a later `pipeline
 * collect` knows which results to expect and how to present them. What has been written
 * out since is recorded apart, in small progress checkpoints (see ProgressSchema).
 */
export const ManifestSchema = z.object({
  batch: z.string(),
  createdAt: z.string(),
  /** Counts up with each checkpoint. */
  revision: z.number().int().min(0).default(0),
  output: OutputMode.default('independent'),
  /** The whole request, for printing combined results: e.g. `{from, to}` of the range before chunking. */
  request: z.record(z.string(), z.unknown()).optional(),
  /** Jobs in the batch (for `combine`: all of them, since summaries are added at the end). */
  jobs: z.array(
    z.object({
      id: z.string(),
      kinds: z.array(z.enum(ResultKinds)).min(1),
      /** What the job asked for, for printing: `{from, to}` or `{url}`. */
      input: z.record(z.string(), z.unknown()),
      /** Per kind, the first part index still owed (absent: from the start). */
      nextPart: z.partialRecord(z.enum(ResultKinds), z.number().int().min(0)).optional(),
    }),
  ),
});

export type Manifest = z.infer<typeof ManifestSchema>;

const Scalar = z.union([z.number(), z.string()]).nullable();

/** Summaries added up so far, for one kind of a `combine` batch. */
export const TotalsSchema = z.object({
  /** Jobs folded in. */
  jobs: z.number().int().min(0),
  count: z.number().int().min(0),
  /** Exact sum, as a decimal string. */
  sum: z.string().regex(/^-?\d+$/),
  /** The smallest value seen and the job (manifest order) it came from; null/-1 if none yet. */
  first: Scalar,
  firstJob: z.number().int().min(-1),
  /** The largest value seen and its job. */
  last: Scalar,
  lastJob: z.number().int().min(-1),
  /** The failure of the earliest failed job (manifest order), if any failed: it is what the batch prints. */
  failure: z
    .object({
      job: z.number().int().min(0),
      error: z.object({ code: z.string(), message: z.string() }).passthrough(),
    })
    .optional(),
});

export type Totals = z.infer<typeof TotalsSchema>;

export const PROGRESS_TYPE = 'pipeline.progress.v1';

/**
 * A checkpoint of a batch's output, written by the producer into the batch's progress queue
 * (which keeps only the newest) about every second, before it acknowledges the replies it
 * wrote out. Results are numbered in manifest order: job by job, and within a job kind by
 * kind as the manifest lists them.
 */
export const ProgressSchema = z.object({
  batch: z.string(),
  /** Counts up with each checkpoint. */
  revision: z.number().int().min(1),
  /**
   * Every result numbered below this is written out (or, for `combine`, folded into `totals`);
   * `done` covers the ones from here on. Absent in records of older producers: 0.
   */
  base: z.number().int().min(0).default(0),
  /**
   * Bitmap (base64, bit i = byte i >> 3, bit i & 7) of the results from `base` on that are
   * written out completely (result number `base + i`).
   */
  done: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/),
  /** For lists sent in parts and written out in part: result number -> next part owed. */
  nextPart: z.record(z.string().regex(/^\d+$/), z.number().int().min(1)).default({}),
  /**
   * For `combine` batches: per kind, the running totals of every summary recorded as done,
   * so a later `collect` adds only the rest (and never one twice).
   */
  totals: z.partialRecord(z.enum(ResultKinds), TotalsSchema).optional(),
});



export type Progress = z.infer<typeof ProgressSchema>;
