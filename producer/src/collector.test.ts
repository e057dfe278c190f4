import { MANIFEST_TYPE, type Manifest } from '@amqp-pipeline/shared';
import { beforeEach, describe, expect, it } from 'vitest';
import { BatchCollector, type Emitted, type Msg } from './collector.js';

const batch = 'B1';
/** Each job's input, by id, as the manifests below make them: a service echoes it in its results. */
const inputs = new Map<string, Record<string, unknown>>();
const manifest = (output: Manifest['output'], jobs: Manifest['jobs'], request?: Record<string, unknown>): Manifest => {
  for (const j of jobs) inputs.set(j.id, j.input);
  return { batch, createdAt: '2026-11-29T00:00:00Z', revision: 0, output, ...(request ? { request } : {}), jobs };
};
const mixed = manifest('independent', [
  { id: 'B1.0', kinds: ['primes', 'squares'], input: { from: 2, to: 5 } },
  { id: 'B1.1', kinds: ['title'], input: { url: 'http://x/' } },
]);

/** A reply as a service sends it: a result carries its job's echo (`job`), unless it has one or says `job: null`. */
const msg = (correlationId: string, body: unknown, type?: string): Msg => {
  let content = body;
  if (typeof body === 'object' && body !== null && type === undefined && !('job' in body) && inputs.has(correlationId)) {
    content = { job: inputs.get(correlationId), ...body };
  } else if (typeof body === 'object' && body !== null && 'job' in body && (body as { job: unknown }).job === null) {
    const { job: _none, ...rest } = body as { job: unknown };
    content = rest;
  }
  return { content: Buffer.from(typeof content === 'string' ? content : JSON.stringify(content)), properties: { correlationId, type } as never };
};
const part = (kind: 'primes' | 'squares', values: number[], index: number, last: boolean) => ({ ok: true, kind, [kind]: values, part: { index, last } });
const label = (e: Emitted) => (e.type === 'result' ? `${e.id}:${e.result.kind}${'part' in e.result && e.result.part ? `#${e.result.part.index}` : ''}` : `combined:${e.kind}`);

describe('BatchCollector', () => {
  // The shared manifest's inputs again before each test (a test's own manifest may reuse its ids).
  beforeEach(() => {
    for (const j of mixed.jobs) inputs.set(j.id, j.input);
  });

  it('when every expected kind of every job arrives, then it is complete and reports each once, releasing each message', () => {
    const seen: Emitted[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r), mixed);
    const a = msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5] });
    expect(c.accept(a)).toEqual([a]);
    expect(c.complete).toBe(false);
    c.accept(msg('B1.1', { ok: true, kind: 'title', title: 'X' }));
    c.accept(msg('B1.0', { ok: true, kind: 'squares', squares: [4, 9, 16, 25] }));
    expect(c.complete).toBe(true);
    expect(seen.map(label)).toEqual(['B1.0:primes', 'B1.1:title', 'B1.0:squares']);
    expect(seen[0]).toMatchObject({ input: { from: 2, to: 5 } });
  });

  it('when the sender is checked, then only the kind\'s service user (or the producer\'s own spilled copy) is taken, and a forged manifest is refused', () => {
    const seen: Emitted[] = [];
    const refused: string[] = [];
    const senders = { own: 'alice', services: { primes: 'prime-filter', squares: 'square-mapper', title: 'title-fetcher' } };
    const c = new BatchCollector(batch, (r) => seen.push(r), undefined, () => true, () => false, (_m, why) => refused.push(why), senders);
    const as = (m: Msg, userId?: string): Msg => ({ ...m, properties: { ...m.properties, ...(userId ? { userId } : {}) } as never });
    const manifestBody = mixed;
    // A manifest not signed by alice is refused; hers is taken.
    expect(c.accept(as(msg('', manifestBody, MANIFEST_TYPE), 'mallory'))).toHaveLength(1);
    expect(c.knowsJobs).toBe(false);
    c.accept(as(msg('', manifestBody, MANIFEST_TYPE), 'alice'));
    expect(c.knowsJobs).toBe(true);
    // A fitting primes result: unsigned, or from the wrong service, is refused; from prime-filter it is taken.
    c.accept(as(msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5] })));
    c.accept(as(msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5] }), 'square-mapper'));
    expect(seen).toHaveLength(0);
    c.accept(as(msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5] }), 'prime-filter'));
    // The producer's own copy (a spill sent round) is taken too.
    c.accept(as(msg('B1.1', { ok: true, kind: 'title', title: 'X' }), 'alice'));
    expect(seen.map(label)).toEqual(['B1.0:primes', 'B1.1:title']);
    expect(c.stats.unexpected).toBe(3);
    expect(refused[0]).toMatch(/a manifest written by broker user "mallory", not by this producer's user "alice"/);
    expect(refused[1]).toMatch(/carries no user_id; primes results are taken only from broker user "prime-filter"/);
    expect(refused[2]).toMatch(/sent by broker user "square-mapper"; primes results are taken only from "prime-filter"/);
  });

  it('when a result is redelivered, then it is dropped, counted as a duplicate, and released', () => {
    const seen: Emitted[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r), mixed);
    const r = msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5] });
    c.accept(r);
    expect(c.accept(r)).toEqual([r]);
    expect(seen).toHaveLength(1);
    expect(c.stats).toEqual({ received: 1, duplicates: 1, unexpected: 0 });
  });

  it('when a message matches no job, is not JSON, or is the wrong kind, then it is dropped and counted', () => {
    const c = new BatchCollector(batch, () => {}, mixed);
    c.accept(msg('OTHER.0', { ok: true, kind: 'primes', primes: [] }));
    c.accept(msg('B1.0', 'not json'));
    c.accept(msg('B1.1', { ok: true, kind: 'primes', primes: [] }));
    c.accept(msg('B1.9', { ok: true, kind: 'primes', primes: [] }));
    expect(c.stats).toEqual({ received: 0, duplicates: 0, unexpected: 4 });
    expect(c.missing().map((m) => `${m.id}:${m.kind}`)).toEqual(['B1.0:primes', 'B1.0:squares', 'B1.1:title']);
  });

  it('when a forged or borrowed reply comes before the real one, then it is refused and counted, the sender is reported, and the real one is taken once', () => {
    const seen: Emitted[] = [];
    const refused: string[] = [];
    const job = { from: 1, to: 3 };
    const c = new BatchCollector(batch, (r) => seen.push(r), manifest('ordered', [{ id: 'B1.0', kinds: ['squares'], input: job }]), undefined, undefined, (_m, why) => refused.push(why));
    const forged = msg('B1.0', { ok: true, kind: 'squares', job: null, squares: [666, 777, 888] });
    const forgedWithEcho = msg('B1.0', { ok: true, kind: 'squares', job, squares: [666, 777, 888] });
    const borrowed = msg('B1.0', { ok: true, kind: 'squares', job: { from: 5, to: 6 }, squares: [25, 36] });
    for (const m of [forged, forgedWithEcho, borrowed]) expect(c.accept(m)).toEqual([m]);
    expect(seen).toEqual([]);
    expect(c.complete).toBe(false);
    c.accept(msg('B1.0', { ok: true, kind: 'squares', squares: [1, 4, 9] }));
    expect(seen).toEqual([{ type: 'result', batch, id: 'B1.0', input: job, result: { ok: true, kind: 'squares', squares: [1, 4, 9] } }]);
    expect(c.stats).toEqual({ received: 1, duplicates: 0, unexpected: 3 });
    expect(refused).toEqual([
      expect.stringMatching(/does not echo its job/),
      expect.stringMatching(/entry 0 is 666/),
      expect.stringMatching(/answers \{"from":5,"to":6\}/),
    ]);
  });

  it('when collect resumes from a checkpoint, then what it records as written out is not emitted again, and counts as a duplicate', () => {
    // An earlier session wrote out B1.0's primes (result 0) and its squares' first part (result 1).
    const earlier = new BatchCollector(batch, () => {}, mixed);
    earlier.accept(msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5] }));
    earlier.accept(msg('B1.0', part('squares', [4, 9], 0, false)));
    const progress = earlier.progress(3);
    expect(progress).toEqual({ batch, revision: 3, base: 1, done: '', nextPart: { '1': 1 } });
    const seen: Emitted[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r), { manifest: mixed, progress });
    expect(c.doneCount).toBe(1);
    const again = msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5] });
    expect(c.accept(again)).toEqual([again]);
    c.accept(msg('B1.0', part('squares', [4, 9], 0, false)));
    c.accept(msg('B1.0', part('squares', [16, 25], 1, true)));
    c.accept(msg('OTHER.0', { ok: true, kind: 'primes', primes: [] }));
    c.accept(msg('B1.1', { ok: true, kind: 'title', title: 'X' }));
    expect(seen.map(label)).toEqual(['B1.0:squares#1', 'B1.1:title']);
    expect(c.stats).toEqual({ received: 2, duplicates: 2, unexpected: 1 });
    expect(c.complete).toBe(true);
  });

  it('when an ordered batch resumes, then the results recorded as done are skipped in the order too', () => {
    const jobs = [0, 1, 2].map((i) => ({ id: `B1.${i}`, kinds: ['primes' as const], input: { from: i, to: i } }));
    const m = manifest('ordered', jobs);
    const earlier = new BatchCollector(batch, () => {}, m);
    earlier.accept(msg('B1.0', { ok: true, kind: 'primes', primes: [] }));
    const seen: Emitted[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r), { manifest: m, progress: earlier.progress(1) });
    c.accept(msg('B1.2', { ok: true, kind: 'primes', primes: [2] }));
    expect(seen).toEqual([]);
    c.accept(msg('B1.1', { ok: true, kind: 'primes', primes: [] }));
    expect(seen.map(label)).toEqual(['B1.1:primes', 'B1.2:primes']);
    expect(c.complete).toBe(true);
  });

  it('when the output already holds some pieces (an earlier session wrote them), then those are skipped, not emitted again', () => {
    const seen: Emitted[] = [];
    const held = new Set(['B1.0:primes#0']);
    const c = new BatchCollector(batch, (r) => seen.push(r), manifest('ordered', [{ id: 'B1.0', kinds: ['primes'], input: { from: 1, to: 30 } }]), () => true, (k) => held.has(k));
    c.accept(msg('B1.0', part('primes', [2, 3], 0, false)));
    c.accept(msg('B1.0', part('primes', [5, 7], 1, true)));
    expect(seen.map(label)).toEqual(['B1.0:primes#1']);
    expect(c.complete).toBe(true);
    expect(c.stats).toMatchObject({ received: 1, duplicates: 1 });
  });

  it('when results arrive before the manifest (collect), then they are held and matched once it arrives', () => {
    const seen: Emitted[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r));
    const early = msg('B1.1', { ok: false, kind: 'title', job: { url: 'http://x/' }, error: { code: 'PIPELINE_ERR_HTTP_STATUS', message: 'HTTP 404' } });
    expect(c.accept(early)).toEqual([]);
    expect(c.held).toBe(1);
    const released = c.accept({ content: Buffer.from(JSON.stringify(mixed)), properties: { type: MANIFEST_TYPE } as never });
    expect(released).toEqual([early]);
    expect(seen.map(label)).toEqual(['B1.1:title']);
    expect(c.failedCount).toBe(1);
    expect(c.expectedCount).toBe(3);
  });

  it('when list parts arrive out of order and repeated, then they are emitted once each, in order', () => {
    const seen: Emitted[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r), manifest('ordered', [{ id: 'B1.0', kinds: ['primes'], input: { from: 1, to: 30 } }]));
    expect(c.accept(msg('B1.0', part('primes', [11, 13], 1, false)))).toEqual([]);
    expect(c.held).toBe(1);
    c.accept(msg('B1.0', part('primes', [2, 3, 5, 7], 0, false)));
    c.accept(msg('B1.0', part('primes', [2, 3, 5, 7], 0, false)));
    c.accept(msg('B1.0', part('primes', [17, 19, 23, 29], 2, true)));
    expect(seen.map(label)).toEqual(['B1.0:primes#0', 'B1.0:primes#1', 'B1.0:primes#2']);
    expect(c.complete).toBe(true);
    expect(c.stats).toEqual({ received: 1, duplicates: 1, unexpected: 0 });
    expect(c.held).toBe(0);
  });

  it('when an ordered batch of chunks completes out of order, then each kind is emitted in job order', () => {
    const seen: Emitted[] = [];
    const jobs = [0, 1, 2].map((i) => ({ id: `B1.${i}`, kinds: ['primes' as const], input: { from: i * 10, to: i * 10 + 9 } }));
    const c = new BatchCollector(batch, (r) => seen.push(r), manifest('ordered', jobs));
    c.accept(msg('B1.2', { ok: true, kind: 'primes', primes: [23, 29] }));
    c.accept(msg('B1.1', { ok: true, kind: 'primes', primes: [11, 13, 17, 19] }));
    expect(seen).toEqual([]);
    c.accept(msg('B1.0', { ok: true, kind: 'primes', primes: [2, 3, 5, 7] }));
    expect(seen.map(label)).toEqual(['B1.0:primes', 'B1.1:primes', 'B1.2:primes']);
  });

  it('when a combine batch completes, then summaries are folded in as they come, released at once, and added into one result', () => {
    const seen: Emitted[] = [];
    const jobs = [0, 1].map((i) => ({ id: `B1.${i}`, kinds: ['primes' as const], input: { from: i * 50 + 1, to: i * 50 + 50, count: true } }));
    const c = new BatchCollector(batch, (r) => seen.push(r), manifest('combine', jobs, { from: 1, to: 100 }));
    const a = msg('B1.1', { ok: true, kind: 'primes', summary: { count: 10, first: 53, last: 97, sum: '732' } });
    const b = msg('B1.0', { ok: true, kind: 'primes', summary: { count: 15, first: 2, last: 47, sum: '328' } });
    expect(c.accept(a)).toEqual([a]);
    expect(c.accept(a)).toEqual([a]); // a duplicate is released and not folded in twice
    expect(c.accept(b)).toEqual([b]);
    expect(c.held).toBe(0);
    expect(c.complete).toBe(true);
    expect(seen).toEqual([]);
    expect(c.finish()).toEqual([]);
    expect(seen).toEqual([
      { type: 'combined', batch, kind: 'primes', input: { from: 1, to: 100 }, jobs: 2, result: { ok: true, kind: 'primes', summary: { count: 25, first: 2, last: 97, sum: '1060' } } },
    ]);
    expect(c.stats).toEqual({ received: 2, duplicates: 1, unexpected: 0 });
  });

  it('when a combine batch is resumed from a checkpoint, then the totals carry on and no job is counted twice', () => {
    const jobs = [0, 1, 2].map((i) => ({ id: `B1.${i}`, kinds: ['primes' as const], input: { from: i * 10 + 1, to: i * 10 + 10, count: true } }));
    const m = manifest('combine', jobs, { from: 1, to: 30 });
    const summaries = [
      { count: 4, first: 2, last: 7, sum: '17' },
      { count: 4, first: 11, last: 19, sum: '60' },
      { count: 2, first: 23, last: 29, sum: '52' },
    ];
    const reply = (i: number) => msg(`B1.${i}`, { ok: true, kind: 'primes', summary: summaries[i] });
    const earlier = new BatchCollector(batch, () => {}, m);
    earlier.accept(reply(2));
    earlier.accept(reply(0));
    const record = earlier.progress(4)!;
    expect(record.totals?.primes).toMatchObject({ jobs: 2, count: 6, sum: '69', first: 2, last: 29 });
    const seen: Emitted[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r), { manifest: m, progress: record });
    expect(c.doneCount).toBe(2);
    // The replies that were folded in but not yet acked come again: duplicates.
    for (const i of [0, 2, 1, 1]) c.accept(reply(i));
    expect(c.complete).toBe(true);
    c.finish();
    expect(seen).toEqual([
      { type: 'combined', batch, kind: 'primes', input: { from: 1, to: 30 }, jobs: 3, result: { ok: true, kind: 'primes', summary: { count: 10, first: 2, last: 29, sum: '129' } } },
    ]);
    expect(c.stats.duplicates).toBe(3);
  });

  it('when a combine batch resumes from a record without totals (an older producer), then every summary is folded in from the queue', () => {
    const jobs = [0, 1].map((i) => ({ id: `B1.${i}`, kinds: ['primes' as const], input: { from: i + 1, to: i + 1, count: true } }));
    const c = new BatchCollector(batch, () => {}, { manifest: manifest('combine', jobs), progress: { batch, revision: 2, base: 2, done: '', nextPart: {} } });
    expect(c.doneCount).toBe(0);
  });

  it('when replies ahead of their turn pass the bound, then the furthest are spilled first, never the head, and come back as new', () => {
    const jobs = Array.from({ length: 10 }, (_, i) => ({ id: `B1.${i}`, kinds: ['squares' as const], input: { from: i, to: i } }));
    const seen: Emitted[] = [];
    const c = new BatchCollector(batch, (r) => seen.push(r), manifest('ordered', jobs));
    const reply = (i: number) => msg(`B1.${i}`, { ok: true, kind: 'squares', squares: [i * i] });
    const ahead = [5, 9, 2, 7, 3].map(reply);
    for (const m of ahead) expect(c.accept(m)).toEqual([]);
    expect(c.heldAhead).toBe(5);
    expect(c.spill(5, Infinity)).toEqual([]);
    const out = c.spill(2, Infinity);
    expect(out.map((m) => m.properties.correlationId)).toEqual(['B1.9', 'B1.7', 'B1.5']);
    expect(c.heldAhead).toBe(2);
    // The spilled ones come back later as new deliveries and are taken in as usual.
    for (const i of [0, 1, 4, 6, 8]) c.accept(reply(i));
    for (const m of out) c.accept({ ...m });
    expect(c.complete).toBe(true);
    expect(seen.map(label)).toEqual(jobs.map((j) => `${j.id}:squares`));
    expect(c.stats).toEqual({ received: 10, duplicates: 0, unexpected: 0 });
    expect(c.heldAhead).toBe(0);
    expect(c.heldBytes).toBe(0);
  });

  it('when replies arrive in any order and the bound is small, then spilling and taking back gives every result once, in order', () => {
    let seed = 11;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 20; round++) {
      const n = 200;
      const jobs = Array.from({ length: n }, (_, i) => ({ id: `B1.${i}`, kinds: ['squares' as const], input: { from: i, to: i } }));
      const seen: Emitted[] = [];
      const c = new BatchCollector(batch, (r) => seen.push(r), manifest('ordered', jobs));
      // The reply queue: a shuffled batch with some duplicates; spilled replies go to its back.
      const queue = Array.from({ length: n }, (_, i) => i).sort(() => rand() - 0.5);
      for (let k = 0; k < 20; k++) queue.push(Math.floor(rand() * n));
      let steps = 0;
      const bound = 8;
      const msgs = queue.map((i) => msg(`B1.${i}`, { ok: true, kind: 'squares', squares: [i * i] }));
      while (msgs.length && steps++ < 100_000) {
        c.accept(msgs.shift()!);
        expect(c.heldAhead).toBeLessThanOrEqual(bound + 1);
        if (c.heldAhead > bound) msgs.push(...c.spill(bound - 2, Infinity));
      }
      expect(c.complete).toBe(true);
      expect(seen.map((e) => (e.type === 'result' ? e.id : ''))).toEqual(jobs.map((j) => j.id));
    }
  });

  it('when an ordered batch fills in, then its head is the earliest job with a result still owed, over every kind', () => {
    const jobs = [0, 1, 2].map((i) => ({ id: `B1.${i}`, kinds: ['primes' as const, 'squares' as const], input: { from: i, to: i } }));
    const c = new BatchCollector(batch, () => {}, manifest('ordered', jobs));
    expect(c.headOrder).toBe(0);
    c.accept(msg('B1.0', { ok: true, kind: 'primes', primes: [] }));
    c.accept(msg('B1.1', { ok: true, kind: 'primes', primes: [] }));
    expect(c.headOrder).toBe(0); // squares of job 0 still owed
    c.accept(msg('B1.0', { ok: true, kind: 'squares', squares: [0] }));
    expect(c.headOrder).toBe(1);
    c.accept(msg('B1.2', { ok: true, kind: 'squares', squares: [4] }));
    c.accept(msg('B1.1', { ok: true, kind: 'squares', squares: [1] }));
    expect(c.headOrder).toBe(2); // primes of job 2 still owed
    c.accept(msg('B1.2', { ok: true, kind: 'primes', primes: [2] }));
    expect(c.headOrder).toBe(3);
    expect(new BatchCollector(batch, () => {}, mixed).headOrder).toBe(Infinity);
  });

  it('when stopped early, then the checkpoint records what is done and where a list in parts resumes', () => {
    const jobs = [0, 1].map((i) => ({ id: `B1.${i}`, kinds: ['squares' as const], input: { from: i, to: i } }));
    const c = new BatchCollector(batch, () => {}, manifest('ordered', jobs));
    c.accept(msg('B1.0', { ok: true, kind: 'squares', squares: [0] }));
    c.accept(msg('B1.1', part('squares', [1], 0, false)));
    expect(c.emittedCount).toBe(2);
    expect(c.progress(1)).toEqual({ batch, revision: 1, base: 1, done: '', nextPart: { '1': 1 } });
  });
});
