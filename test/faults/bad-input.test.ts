/**
 * Bad input (run in CI): messages that cannot be jobs are dead-lettered at once with the
 * reason (and answered ok:false when the sender can be reached), jobs that cannot succeed are
 * answered ok:false, replies for no job are dropped and counted by the producer, and a job
 * that fails every time ends after its retries: nothing loops, every service stays up.
 */
import { randomUUID } from 'node:crypto';
import { rangeJob, urlJob } from '@amqp-pipeline/producer';
import { ownedQueueId, replyQueueName, userOfUrl } from '@amqp-pipeline/shared';
import type { ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rig, submit } from './harness.js';
import { Ledger, Report } from './ledger.js';
import { sleep } from './rabbit-node.js';

/** Small, so the oversized body stays small too. */
const MAX_MESSAGE_BYTES = 65_536;

let rig: Rig;
const report = new Report();
const caseTable: Record<string, unknown>[] = [];

beforeAll(async () => {
  rig = await Rig.start({ serviceEnv: { MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) } });
  await Promise.all([rig.startService('prime-filter'), rig.startService('square-mapper'), rig.startService('title-fetcher')]);
});

afterAll(async () => {
  if (caseTable.length) {
    console.log('\nbad input, case by case');
    console.table(caseTable);
  }
  report.print('fault rows: bad input');
  await rig?.stop();
});

interface BadCase {
  name: string;
  exchange?: string;
  routingKey?: string;
  body: string | Buffer;
  /** Leave out reply_to / correlation_id. */
  noReplyTo?: boolean;
  noCorrelationId?: boolean;
  /** Dead-lettered, with a reason matching this. */
  dead?: RegExp;
  /** The reply: ok with this primes list, an error code, or nothing. */
  reply: { primes: number[] } | { code: string } | 'none';
}

const INVALID = 'PIPELINE_ERR_INVALID_MESSAGE';

const cases: BadCase[] = [
  { name: 'not JSON', body: 'this is not json', dead: /not JSON/, reply: { code: INVALID } },
  { name: 'empty body', body: '', dead: /not JSON/, reply: { code: INVALID } },
  { name: 'wrong types', body: '{"from": "one", "to": [3]}', dead: /from: must be a number.*to: must be a number/, reply: { code: INVALID } },
  { name: 'JSON but not an object', body: '[2, 10]', dead: /schema/, reply: { code: INVALID } },
  { name: 'floats', body: '{"from": 1.5, "to": 3}', dead: /from: must be an integer/, reply: { code: INVALID } },
  { name: 'from > to', body: '{"from": 10, "to": 2}', dead: /"from" must not be greater than "to"/, reply: { code: INVALID } },
  { name: 'beyond 2^53', body: '{"from": 1, "to": 9007199254740993}', dead: /to: must be a safe integer/, reply: { code: INVALID } },
  { name: 'below -2^53', body: '{"from": -9007199254740993, "to": 1}', dead: /from: must be a safe integer/, reply: { code: INVALID } },
  { name: 'too wide a range', body: '{"from": 1, "to": 20000000}', reply: { code: 'PIPELINE_ERR_LIMIT_EXCEEDED' } },
  // JSON.parse makes "__proto__" an own key: it must neither set the prototype nor supply fields.
  { name: '__proto__ supplying a field', body: '{"__proto__": {"to": 5}, "from": 1}', dead: /to: /, reply: { code: INVALID } },
  { name: '__proto__ as an extra key', body: '{"__proto__": {"polluted": true}, "from": 2, "to": 10}', reply: { primes: [2, 3, 5, 7] } },
  { name: 'extra fields', body: '{"from": 2, "to": 10, "colour": "blue", "count": false}', reply: { primes: [2, 3, 5, 7] } },
  { name: 'count not a boolean', body: '{"from": 2, "to": 10, "count": "yes"}', dead: /count: must be true or false/, reply: { code: INVALID } },
  {
    name: 'over MAX_MESSAGE_BYTES',
    body: JSON.stringify({ from: 2, to: 10, pad: 'x'.repeat(MAX_MESSAGE_BYTES + 10) }),
    dead: /limit is 65536/,
    reply: { code: 'PIPELINE_ERR_MESSAGE_TOO_LARGE' },
  },
  { name: 'missing reply_to', body: '{"from": 2, "to": 10}', noReplyTo: true, dead: /missing reply_to/, reply: 'none' },
  { name: 'missing correlation_id', body: '{"from": 2, "to": 10}', noCorrelationId: true, dead: /missing correlation_id/, reply: 'none' },
  { name: 'url: not a string', exchange: 'pipeline.urls', routingKey: 'url.title', body: '{"url": 5}', dead: /url: must be a string/, reply: { code: INVALID } },
  { name: 'url: not http(s)', exchange: 'pipeline.urls', routingKey: 'url.title', body: '{"url": "ftp://127.0.0.1/x"}', reply: { code: 'PIPELINE_ERR_INVALID_URL' } },
  { name: 'url: not a URL', exchange: 'pipeline.urls', routingKey: 'url.title', body: '{"url": "not a url"}', reply: { code: 'PIPELINE_ERR_INVALID_URL' } },
];

describe('fault rows: bad input', () => {
  it('when malformed or hostile messages arrive, then each is dead-lettered at once with its reason or answered ok:false, and every service stays up', async () => {
    const ledger = new Ledger('bad input set');
    const since = Date.now();
    const deadBefore = await rig.deadCount();
    await rig.admin(async (ch) => {
      // A queue of our own on the dead-letter fanout sees exactly what pipeline.dead gets.
      const tap = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(tap.queue, 'pipeline.dead-letter', '');
      const replies = await ch.assertQueue('', { exclusive: true });
      const dead = new Map<string, ConsumeMessage>();
      const answered = new Map<string, ConsumeMessage[]>();
      await ch.consume(tap.queue, (m) => m && dead.set(String(m.properties.messageId), m), { noAck: true });
      await ch.consume(
        replies.queue,
        (m) => {
          if (!m) return;
          const id = String(m.properties.correlationId);
          answered.set(id, [...(answered.get(id) ?? []), m]);
        },
        { noAck: true },
      );
      const ids = new Map<BadCase, string>();
      for (const c of cases) {
        const id = randomUUID();
        ids.set(c, id);
        ch.publish(c.exchange ?? 'pipeline.ranges', c.routingKey ?? 'range.primes', Buffer.isBuffer(c.body) ? c.body : Buffer.from(c.body), {
          messageId: id,
          ...(c.noReplyTo ? {} : { replyTo: replies.queue }),
          ...(c.noCorrelationId ? {} : { correlationId: id }),
          contentType: 'application/json',
        });
      }
      ledger.attempted = cases.length;
      ledger.confirmed = cases.length;
      // Wait (bounded) for every expected dead letter and reply, then a moment for strays.
      const deadline = Date.now() + 20_000;
      const settled = () => cases.every((c) => (!c.dead || dead.has(ids.get(c) as string)) && (c.reply === 'none' || answered.has(ids.get(c) as string)));
      while (!settled() && Date.now() < deadline) await sleep(100);
      await sleep(1000);

      for (const c of cases) {
        const id = ids.get(c) as string;
        const d = dead.get(id);
        const r = answered.get(id) ?? [];
        const body = r[0] ? (JSON.parse(r[0].content.toString()) as { ok: boolean; primes?: number[]; error?: { code: string; message: string } }) : undefined;
        caseTable.push({
          case: c.name,
          deadLettered: d ? 'yes' : 'no',
          reason: d ? String(d.properties.headers?.['x-pipeline-reason']).slice(0, 70) : '',
          reply: body ? (body.ok ? `ok ${JSON.stringify(body.primes)}` : body.error?.code) : 'none',
          replies: r.length,
        });
        if (c.dead) {
          expect(d, `${c.name}: dead-lettered`).toBeDefined();
          expect(String(d?.properties.headers?.['x-pipeline-reason']), c.name).toMatch(c.dead);
          expect(d?.properties.headers?.['x-pipeline-error-code'], c.name).toMatch(/^PIPELINE_ERR_/);
          expect(d?.properties.headers?.['x-pipeline-original-routing-key'], c.name).toBe(c.routingKey ?? 'range.primes');
          // Unchanged body: an operator can replay it after fixing it.
          expect(d?.content.equals(Buffer.isBuffer(c.body) ? c.body : Buffer.from(c.body)), c.name).toBe(true);
        } else {
          expect(d, `${c.name}: not dead-lettered`).toBeUndefined();
        }
        if (c.reply === 'none') {
          expect(r, `${c.name}: no reply`).toHaveLength(0);
        } else {
          expect(r, `${c.name}: exactly one reply`).toHaveLength(1);
          if ('code' in c.reply) expect(body, c.name).toMatchObject({ ok: false, error: { code: c.reply.code } });
          else expect(body, c.name).toEqual({ ok: true, kind: 'primes', job: expect.any(Object), primes: c.reply.primes });
        }
      }
      ledger.deadLettered = dead.size;
      const okReplies = [...answered.values()].filter((r) => JSON.parse(r[0]?.content.toString() ?? '{}').ok === true).length;
      const failReplies = [...answered.values()].length - okReplies;
      ledger.notes.push(`${failReplies} ok:false replies, ${okReplies} ok replies, ${cases.length - answered.size} unanswered (no reply_to/correlation_id)`);
    });
    // Nothing was retried or redelivered, pipeline.dead holds them, and every service still serves.
    ledger.redeliveries = rig.log.redeliveries(since);
    expect(ledger.redeliveries).toBe(0);
    await expect.poll(async () => (await rig.deadCount()) - deadBefore, { timeout: 10_000 }).toBe(cases.filter((c) => c.dead).length);
    expect(rig.running().length).toBe(3);
    expect(rig.log.find('job failed; retrying later', since)).toHaveLength(0);
    const f = ledger.figures();
    report.add({ ...f, results: cases.filter((c) => c.reply !== 'none').length, lost: 0 });

    const client = await rig.client();
    const check = new Ledger('after bad input: still serving');
    const run = submit(client, check, [rangeJob('all', { from: 2, to: 100 })], { timeoutMs: 20_000 });
    const { outcome } = await run.done;
    expect(outcome?.complete).toBe(true);
    expect(check.figures()).toMatchObject({ results: 2, wrong: 0, lost: 0 });
    await rig.closeClient(client);
  });

  it('when replies for no job reach the producer mid-batch, then it drops and counts them (stats.unexpected) and the batch is unaffected', async () => {
    const ledger = new Ledger('unknown correlation id at the producer');
    const client = await rig.client();
    const titles: Record<string, string> = {};
    // Ten quick pages (one message: their results come at once), then six slow ones (another
    // message, 300 ms later): the stray replies go in between.
    const jobs = Array.from({ length: 16 }, (_, i) => {
      const url = `${rig.site.base}/${i < 10 ? 'p' : 'slow'}/${100 + i}`;
      titles[url] = `Page ${100 + i}`;
      return urlJob(url);
    });
    const run = submit(client, ledger, jobs, { timeoutMs: 30_000, titles });
    await run.firstResult;
    await rig.admin(async (ch) => {
      const q = replyQueueName(ownedQueueId(userOfUrl(rig.proxy.url), run.batch));
      const opts = { contentType: 'application/json', type: 'pipeline.result.v1' };
      ch.sendToQueue(q, Buffer.from('{"ok":true,"kind":"title","title":"stranger","source":"title","url":"http://127.0.0.1/"}'), { ...opts, correlationId: 'no-such-job' });
      ch.sendToQueue(q, Buffer.from('{"ok":true,"kind":"primes","primes":[2]}'), { ...opts, correlationId: `${run.batch}.0` }); // right job, wrong kind
      ch.sendToQueue(q, Buffer.from('not json at all'), { ...opts, correlationId: `${run.batch}.1` });
      await sleep(100);
    });
    const { outcome, error } = await run.done;
    expect(error).toBeUndefined();
    expect(outcome?.complete).toBe(true);
    const f = report.add(ledger.figures());
    expect(f.unexpected).toBe(3);
    expect(f).toMatchObject({ lost: 0, wrong: 0, outputDuplicates: 0, results: 16 });
    await rig.closeClient(client);
  });

  it('when a job fails every time (row 11: a page that always answers 503), then it is tried RETRY_ATTEMPTS times, answered ok:false with the last error, parked in pipeline.dead, and never loops', async () => {
    const ledger = new Ledger('11 always failing job (503)');
    const client = await rig.client();
    const since = Date.now();
    const deadBefore = await rig.deadCount();
    const url = `${rig.site.base}/down/always`;
    const run = submit(client, ledger, [urlJob(url)], { timeoutMs: 30_000, titles: { [url]: { code: 'PIPELINE_ERR_HTTP_STATUS' } } });
    const { outcome, error } = await run.done;
    expect(error).toBeUndefined();
    expect(outcome?.complete).toBe(true);
    expect(outcome?.failed).toBe(1);
    const attempts = rig.site.hits.get('/down/always');
    expect(attempts).toBe(4); // RETRY_ATTEMPTS default
    const retries = rig.log.find('job failed; retrying later', since);
    expect(retries).toHaveLength(3);
    // No loop: nothing more happens to it afterwards, nothing waits in the retry queues.
    await sleep(1500);
    expect(rig.site.hits.get('/down/always')).toBe(4);
    const waiting = await rig.admin(async (ch) => {
      let n = 0;
      for (const tier of [1, 2, 3]) n += (await ch.checkQueue(`pipeline.titles.retry.${tier}`)).messageCount;
      return n + (await ch.checkQueue('pipeline.titles')).messageCount;
    });
    expect(waiting).toBe(0);
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.deadLettered = (await rig.deadCount(500)) - deadBefore;
    ledger.notes.push(`${String(attempts)} fetches through the delay queues, then ok:false to the sender and a copy with the reason in pipeline.dead`);
    const f = report.add(ledger.figures());
    expect(f).toMatchObject({ results: 1, lost: 0, wrong: 0, deadLettered: 1, redeliveries: 0 });
    await rig.closeClient(client);
  });

  it('when a client sends jobs several to a message (pipeline.range-jobs.v1, pipeline.url-jobs.v1), then each is answered by its id; a bad job among them is answered ok:false alone and the message dead-lettered once; a message that cannot be taken is dead-lettered and its readable jobs answered ok:false', async () => {
    interface BundleCase {
      name: string;
      routingKey?: string;
      exchange?: string;
      /** The message's type (default pipeline.range-jobs.v1). */
      type?: string;
      body: string;
      dead?: RegExp;
      /** Per job id, in order: ok with this list, or this error code; or one plain ok:false result with a code. */
      results: { id: string; primes?: number[]; squares?: number[]; summary?: object; code?: string }[] | { single: string };
    }
    const bundleCases: BundleCase[] = [
      {
        name: 'three primes jobs',
        body: '{"jobs":[{"id":"a","from":1,"to":10},{"id":"b","from":11,"to":20},{"id":"c","from":1,"to":100,"count":true}]}',
        results: [{ id: 'a', primes: [2, 3, 5, 7] }, { id: 'b', primes: [11, 13, 17, 19] }, { id: 'c', summary: { count: 25, first: 2, last: 97, sum: '1060' } }],
      },
      { name: 'squares jobs', routingKey: 'range.squares', body: '{"jobs":[{"id":"x","from":1,"to":3},{"id":"y","from":-2,"to":-1}]}', results: [{ id: 'x', squares: [1, 4, 9] }, { id: 'y', squares: [4, 1] }] },
      {
        name: 'one bad job among good ones',
        body: '{"jobs":[{"id":"a","from":2,"to":5},{"id":"bad","from":9,"to":3},{"id":"c","from":6,"to":8}]}',
        dead: /job "bad": .*"from" must not be greater than "to"/,
        results: [{ id: 'a', primes: [2, 3, 5] }, { id: 'bad', code: INVALID }, { id: 'c', primes: [7] }],
      },
      {
        name: 'over 65,536 numbers',
        body: '{"jobs":[{"id":"a","from":1,"to":40000},{"id":"b","from":40001,"to":80000}]}',
        dead: /cover 80000 numbers; a bundle may cover at most 65536/,
        results: [{ id: 'a', code: 'PIPELINE_ERR_LIMIT_EXCEEDED' }, { id: 'b', code: 'PIPELINE_ERR_LIMIT_EXCEEDED' }],
      },
      {
        name: 'range jobs to the title fetcher',
        exchange: 'pipeline.urls',
        routingKey: 'url.title',
        body: '{"jobs":[{"id":"u1","url":"http://127.0.0.1/a"},{"id":"u2","url":"http://127.0.0.1/b"}]}',
        dead: /title-fetcher takes bundles of type pipeline.url-jobs.v1: a pipeline.range-jobs.v1 message is not accepted here/,
        results: [{ id: 'u1', code: INVALID }, { id: 'u2', code: INVALID }],
      },
      {
        name: 'URL jobs to the prime-filter',
        type: 'pipeline.url-jobs.v1',
        body: '{"jobs":[{"id":"a","from":1,"to":10}]}',
        dead: /prime-filter takes bundles of type pipeline.range-jobs.v1: a pipeline.url-jobs.v1 message is not accepted here/,
        results: [{ id: 'a', code: INVALID }],
      },
      {
        name: 'URL jobs that are not URL jobs',
        exchange: 'pipeline.urls',
        routingKey: 'url.title',
        type: 'pipeline.url-jobs.v1',
        body: '{"jobs":[{"id":"e","url":""},{"id":"n","url":5}]}',
        dead: /job "e": .*url: must not be empty; job "n": .*url: must be a string/,
        results: [{ id: 'e', code: INVALID }, { id: 'n', code: INVALID }],
      },
      { name: 'repeated ids', body: '{"jobs":[{"id":"a","from":1,"to":2},{"id":"a","from":3,"to":4}]}', dead: /job ids must be distinct/, results: { single: INVALID } },
      { name: 'a single job sent as a bundle', body: '{"from":1,"to":10}', dead: /jobs: must be an array of jobs/, results: { single: INVALID } },
      { name: 'no jobs', body: '{"jobs":[]}', dead: /at least one job/, results: { single: INVALID } },
    ];
    const since = Date.now();
    await rig.admin(async (ch) => {
      const tap = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(tap.queue, 'pipeline.dead-letter', '');
      const replies = await ch.assertQueue('', { exclusive: true });
      const dead = new Map<string, ConsumeMessage>();
      const answered = new Map<string, ConsumeMessage[]>();
      await ch.consume(tap.queue, (m) => m && dead.set(String(m.properties.messageId), m), { noAck: true });
      await ch.consume(replies.queue, (m) => m && answered.set(String(m.properties.correlationId), [...(answered.get(String(m.properties.correlationId)) ?? []), m]), { noAck: true });
      const ids = new Map<BundleCase, string>();
      for (const c of bundleCases) {
        const id = randomUUID();
        ids.set(c, id);
        ch.publish(c.exchange ?? 'pipeline.ranges', c.routingKey ?? 'range.primes', Buffer.from(c.body), {
          messageId: id,
          replyTo: replies.queue,
          correlationId: id,
          contentType: 'application/json',
          type: c.type ?? 'pipeline.range-jobs.v1',
        });
      }
      const deadline = Date.now() + 20_000;
      const settled = () => bundleCases.every((c) => (!c.dead || dead.has(ids.get(c)!)) && answered.has(ids.get(c)!));
      while (!settled() && Date.now() < deadline) await sleep(100);
      await sleep(500);
      for (const c of bundleCases) {
        const id = ids.get(c)!;
        const r = answered.get(id) ?? [];
        expect(r, `${c.name}: exactly one reply`).toHaveLength(1);
        const d = dead.get(id);
        if (c.dead) {
          expect(String(d?.properties.headers?.['x-pipeline-reason']), c.name).toMatch(c.dead);
          expect(d?.content.toString(), `${c.name}: the body unchanged`).toBe(c.body);
        } else {
          expect(d, `${c.name}: not dead-lettered`).toBeUndefined();
        }
        const body = JSON.parse(r[0]!.content.toString()) as { results?: Record<string, unknown>[]; ok?: boolean; error?: { code: string } };
        if ('single' in c.results) {
          expect(r[0]!.properties.type, c.name).toBe('pipeline.result.v1');
          expect(body, c.name).toMatchObject({ ok: false, error: { code: c.results.single } });
          continue;
        }
        expect(r[0]!.properties.type, c.name).toBe('pipeline.results.v1');
        expect(body.results?.map((x) => x.id), c.name).toEqual(c.results.map((x) => x.id));
        c.results.forEach((want, i) => {
          const got = body.results![i]!;
          if (want.code) expect(got, `${c.name} ${want.id}`).toMatchObject({ ok: false, error: { code: want.code } });
          else expect(got, `${c.name} ${want.id}`).toMatchObject({ ok: true, job: expect.any(Object), ...(want.primes ? { primes: want.primes } : {}), ...(want.squares ? { squares: want.squares } : {}), ...(want.summary ? { summary: want.summary } : {}) });
        });
      }
    });
    expect(rig.log.redeliveries(since)).toBe(0);
    expect(rig.running().length).toBe(3);
  });
});
