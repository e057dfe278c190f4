import { z } from 'zod';
import { ResultKinds } from './result.js';

export const MANIFEST_TYPE = 'pipeline.manifest.v1';

/**
 * Written by the producer into a batch's own reply queue once every job is
 * confirmed, so a later `pipeline collect` knows which results to expect.
 */
export const ManifestSchema = z.object({
  batch: z.string(),
  createdAt: z.string(),
  jobs: z.array(
    z.object({
      id: z.string(),
      kinds: z.array(z.enum(ResultKinds)).min(1),
      /** What the job asked for, for printing: `{from, to}` or `{url}`. */
      input: z.record(z.string(), z.unknown()),
    }),
  ),
});

export type Manifest = z.infer<typeof ManifestSchema>;
