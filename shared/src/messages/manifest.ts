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
 * Written by the producer into the batch's manifest queue (which keeps only the newest),
 * so a later `pipeline collect` knows which results to expect and how to present them.
 * While it prints results, the producer checkpoints: it writes a manifest listing only
 * what is still owed (jobs left, and for lists sent in parts, the next part expected), and
 * only then acknowledges the replies it printed.
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
