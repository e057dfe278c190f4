import { MANIFEST_TYPE, type Manifest } from '@amqp-pipeline/shared';
import { describe, expect, it } from 'vitest';
import { BatchCollector, type CollectedResult } from './collector.js';

const batch = 'B1';
const manifest: Manifest = {
  batch,
  createdAt: '2026-11-29T00:00:00Z',
  jobs: [
    { id: 'B1.0', kinds: ['primes', 'squares'], input: { from: 2, to: 5 } },
    { id: 'B1.1', kinds: ['title'], input: { url: 'http://x/' } },
  ],
};

const msg = (correlationId: string, body: unknown, type?: string) => ({
  content: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
  properties: { correlationId, type } as never,
});

describe('BatchCollector', () => {
  it('when every expected kind of every job arrives, then it is complete and reports each once', () => {
    const seen: CollectedResult[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r), manifest);
    c.accept(msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5] }));
    expect(c.complete).toBe(false);
    c.accept(msg('B1.1', { ok: true, kind: 'title', title: 'X' }));
    c.accept(msg('B1.0', { ok: true, kind: 'squares', squares: [4, 9, 16, 25] }));
    expect(c.complete).toBe(true);
    expect(seen.map((r) => `${r.id}:${r.result.kind}`)).toEqual(['B1.0:primes', 'B1.1:title', 'B1.0:squares']);
    expect(seen[0]?.input).toEqual({ from: 2, to: 5 });
  });

  it('when a result is redelivered, then it is dropped and counted as a duplicate', () => {
    const seen: CollectedResult[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r), manifest);
    const r = msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5] });
    c.accept(r);
    c.accept(r);
    expect(seen).toHaveLength(1);
    expect(c.stats).toEqual({ received: 1, duplicates: 1, unexpected: 0 });
  });

  it('when a message matches no job, is not JSON, or is the wrong kind, then it is dropped and counted', () => {
    const c = new BatchCollector(batch, () => {}, manifest);
    c.accept(msg('OTHER.0', { ok: true, kind: 'primes', primes: [] }));
    c.accept(msg('B1.0', 'not json'));
    c.accept(msg('B1.1', { ok: true, kind: 'primes', primes: [] }));
    c.accept(msg('B1.9', { ok: true, kind: 'primes', primes: [] }));
    expect(c.stats).toEqual({ received: 0, duplicates: 0, unexpected: 4 });
    expect(c.missing().map((m) => `${m.id}:${m.kind}`)).toEqual(['B1.0:primes', 'B1.0:squares', 'B1.1:title']);
  });

  it('when results arrive before the manifest (collect), then they are matched once it arrives', () => {
    const seen: CollectedResult[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r));
    c.accept(msg('B1.1', { ok: false, kind: 'title', error: { code: 'PIPELINE_ERR_HTTP_STATUS', message: 'HTTP 404' } }));
    expect(seen).toHaveLength(0);
    expect(c.complete).toBe(false);
    c.accept({ content: Buffer.from(JSON.stringify(manifest)), properties: { type: MANIFEST_TYPE } as never });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.input).toEqual({ url: 'http://x/' });
    expect(c.jobCount).toBe(2);
    expect(c.expectedCount).toBe(3);
  });
});
