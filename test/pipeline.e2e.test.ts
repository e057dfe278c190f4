import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { SERVICE_NAMES, startServices, stopServices, type ServiceProcess } from '@amqp-pipeline/devtools';
import { primeCountRanges } from '@amqp-pipeline/producer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl, httpServer, naivePrimes, receive, runCli, withChannel } from './helpers.js';

let services: ServiceProcess[] = [];
let site: Awaited<ReturnType<typeof httpServer>>;

let flakyHits = 0;
/** Requests per path, for the pages of the bundled-titles row. */
const hits = new Map<string, number>();
const pages: Record<string, string> = {
  '/a': '<html><head><title>Page A</title></head><body>a</body></html>',
  '/b': '<HTML><HEAD><TITLE>\n  Rock &amp;   Roll  \n</TITLE></HEAD></HTML>',
  '/c': '<html><head><title>Caf&eacute; &#8212; open</title></head></html>',
};

beforeAll(async () => {
  site = await httpServer((req, res) => {
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1);
    if (req.url?.startsWith('/set/')) {
      if (req.url === '/set/flaky' && hits.get(req.url)! <= 2) return void res.writeHead(503).end('busy');
      if (req.url === '/set/missing') return void res.writeHead(404).end();
      return void res.writeHead(200, { 'content-type': 'text/html' }).end(`<title>Title of ${req.url}</title>`);
    }
    if (req.url === '/flaky' && flakyHits++ < 2) return void res.writeHead(503).end('busy');
    if (req.url === '/down') return void res.writeHead(503).end('down');
    if (req.url === '/flaky') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<title>Third time lucky</title>');
    const body = pages[req.url ?? ''];
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body);
  });
  services = await startServices(SERVICE_NAMES, {
    // Small parts, so long lists are split even in small tests; short retry delays.
    env: { AMQP_URL: amqpUrl(), FETCH_ALLOW_PRIVATE: 'true', LOG_LEVEL: 'info', RESULT_PART_BYTES: '4096', RETRY_DELAYS_MS: '100,200,300' },
  });
});

afterAll(async () => {
  await stopServices(services);
  await site?.close();
});

describe('the pipeline, end to end', () => {
  it('when `pipeline range 2 100 --json` runs, then it prints the 25 primes and the 99 squares, and exits 0', async () => {
    const run = await runCli(['range', '2', '100', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines).toHaveLength(2);
    const primes = run.lines.find((l) => l.kind === 'primes');
    const squares = run.lines.find((l) => l.kind === 'squares');
    expect(primes).toMatchObject({ ok: true, input: { from: 2, to: 100 } });
    expect(primes?.primes).toEqual(naivePrimes(2, 100));
    expect((primes?.primes as number[]).length).toBe(25);
    expect(squares?.squares).toEqual(Array.from({ length: 99 }, (_, i) => (i + 2) ** 2));
    expect(new Set(run.lines.map((l) => l.batch)).size).toBe(1);
  });

  it('when `pipeline squares 1 100` runs, then the human output lists 1 through 10000', async () => {
    const run = await runCli(['squares', '1', '100']);
    expect(run.code, run.stderr).toBe(0);
    const numbers = run.stdout
      .split('\n')
      .slice(1)
      .join(' ')
      .trim()
      .split(/\s+/)
      .map(Number);
    expect(numbers).toEqual(Array.from({ length: 100 }, (_, i) => (i + 1) ** 2));
    expect(run.stdout).toContain('squares of 1..100 (100):');
  });

  it('when titles are asked for pages on a local server, then each page gets its decoded, collapsed title', async () => {
    const urls = ['/a', '/b', '/c'].map((p) => site.base + p);
    const run = await runCli(['titles', '--json', '--file', '-'], { input: `# pages\n${urls.join('\n')}\n\n` });
    expect(run.code, run.stderr).toBe(0);
    const byUrl = Object.fromEntries(run.lines.map((l) => [(l.input as { url: string }).url, l.title]));
    expect(byUrl).toEqual({ [urls[0]!]: 'Page A', [urls[1]!]: 'Rock & Roll', [urls[2]!]: 'Café — open' });
  });

  it('when a page answers 404, then its result is ok:false with a code, and the CLI exits 1', async () => {
    const run = await runCli(['titles', `${site.base}/missing`, '--json']);
    expect(run.code).toBe(1);
    expect(run.lines).toHaveLength(1);
    expect(run.lines[0]).toMatchObject({ ok: false, kind: 'title', error: { code: 'PIPELINE_ERR_HTTP_STATUS' } });
  });

  it('when a page fails with 503 twice, then the job is retried through the delay queues and succeeds', async () => {
    const run = await runCli(['titles', `${site.base}/flaky`, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines[0]).toMatchObject({ ok: true, title: 'Third time lucky' });
    expect(flakyHits).toBe(3);
  });

  it('when several pages go in one message and one fails with 503 twice, then the others are answered once and fetched once, and the failed one alone is retried until it succeeds', async () => {
    const paths = ['/set/a', '/set/flaky', '/set/b', '/set/missing', '/set/c'];
    const run = await runCli(['titles', '--json', ...paths.map((p) => site.base + p)]);
    expect(run.code, run.stderr).toBe(1); // the 404
    const byUrl = new Map(run.lines.map((l) => [(l.input as { url: string }).url, l]));
    expect(run.lines).toHaveLength(paths.length);
    for (const p of ['/set/a', '/set/flaky', '/set/b', '/set/c']) expect(byUrl.get(site.base + p), p).toMatchObject({ ok: true, title: `Title of ${p}` });
    expect(byUrl.get(`${site.base}/set/missing`)).toMatchObject({ ok: false, error: { code: 'PIPELINE_ERR_HTTP_STATUS' } });
    // Retried alone: the pages that worked are not fetched again.
    expect(Object.fromEntries(paths.map((p) => [p, hits.get(p)]))).toEqual({ '/set/a': 1, '/set/flaky': 3, '/set/b': 1, '/set/missing': 1, '/set/c': 1 });
    // They went in one message: the fetcher says a job of a bundle was sent to be retried alone
    // (its second failure is then a job alone's).
    const fetcher = services.find((p) => p.name === 'title-fetcher')!;
    expect(fetcher.recentLines().filter((l) => l.includes('a job of a bundle failed; retrying it alone later'))).toHaveLength(1);
  });

  it('when a page keeps failing with 503, then after the last attempt the result is ok:false with the last error', async () => {
    const run = await runCli(['titles', `${site.base}/down`, '--json']);
    expect(run.code).toBe(1);
    expect(run.lines[0]).toMatchObject({ ok: false, error: { code: 'PIPELINE_ERR_HTTP_STATUS' } });
    expect((run.lines[0]?.error as { message: string }).message).toContain('gave up after 4 attempts');
  });

  it('when two batches are in flight at once, then each gets only its own results', async () => {
    const [a, b] = await Promise.all([runCli(['primes', '1000', '1100', '--json']), runCli(['squares', '7', '9', '--json'])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.lines).toHaveLength(1);
    expect(b.lines).toHaveLength(1);
    expect(a.lines[0]).toMatchObject({ kind: 'primes', primes: naivePrimes(1000, 1100) });
    expect(b.lines[0]).toMatchObject({ kind: 'squares', squares: [49, 64, 81] });
    expect(a.lines[0]?.batch).not.toBe(b.lines[0]?.batch);
  });

  it('when a batch is submitted with --no-wait, then `pipeline collect` prints its results once, and a second collect finds nothing', async () => {
    const submit = await runCli(['range', '10', '20', '--no-wait', '--json']);
    expect(submit.code, submit.stderr).toBe(0);
    const { batch, jobs } = submit.lines[0] as { batch: string; jobs: number };
    expect(jobs).toBe(2); // primes and squares go as one job each
    const collect = await runCli(['collect', batch, '--json']);
    expect(collect.code, collect.stderr).toBe(0);
    expect(collect.lines.map((l) => l.kind).sort()).toEqual(['primes', 'squares']);
    expect(collect.lines.find((l) => l.kind === 'primes')).toMatchObject({ batch, primes: [11, 13, 17, 19] });
    const again = await runCli(['collect', batch]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no results are waiting');
  });

  it('when a range is too wide to list in one job, then the CLI refuses it before sending, naming the limit and the way out', async () => {
    const run = await runCli(['primes', '1', '20000000']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('MAX_RANGE_WIDTH');
    expect(run.stderr).toContain('--count');
    expect(run.stderr).toContain('--chunk');
  });

  it('when a job from another client is too wide, then the service answers ok:false with the limit instead of crashing', async () => {
    await withChannel(async (ch) => {
      const { queue } = await ch.assertQueue('', { exclusive: true });
      ch.publish('pipeline.ranges', 'range.squares', Buffer.from('{"from": 1, "to": 20000000}'), { replyTo: queue, correlationId: 'wide' });
      const [reply] = await receive(ch, queue, () => true, 1);
      const body = JSON.parse(reply!.content.toString()) as { ok: boolean; error: { code: string; message: string } };
      expect(body).toMatchObject({ ok: false, kind: 'squares', error: { code: 'PIPELINE_ERR_LIMIT_EXCEEDED' } });
      expect(body.error.message).toContain('MAX_RANGE_WIDTH');
    });
  });

  it('when a list is longer than one message may be, then it comes in ordered parts that join to the exact list', async () => {
    const run = await runCli(['squares', '1', '5000', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines.length).toBeGreaterThan(3);
    expect(run.lines.map((l) => (l.part as { index: number }).index)).toEqual(run.lines.map((_, i) => i));
    expect(run.lines.map((l) => (l.part as { last: boolean }).last)).toEqual(run.lines.map((_, i) => i === run.lines.length - 1));
    expect(run.lines.flatMap((l) => l.squares as number[])).toEqual(Array.from({ length: 5000 }, (_, i) => (i + 1) ** 2));
    const human = await runCli(['squares', '1', '5000']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout.startsWith('squares of 1..5000:\n')).toBe(true);
    expect(human.stdout.split('\n').slice(1).join(' ').trim().split(/\s+/).map(Number)).toEqual(
      Array.from({ length: 5000 }, (_, i) => (i + 1) ** 2),
    );
  });

  it('when several long lists are answered at once, then each comes whole, its parts in a row, the earliest job first', async () => {
    await withChannel(async (ch) => {
      const { queue } = await ch.assertQueue('', { exclusive: true });
      const jobs = 8;
      for (let k = 0; k < jobs; k++) {
        const body = { from: k * 100_000 + 1, to: k * 100_000 + 1500 }; // ~15 KB of squares: several 4 KB parts
        ch.publish('pipeline.ranges', 'range.squares', Buffer.from(JSON.stringify(body)), { replyTo: queue, correlationId: `lists-${k}` });
      }
      const seen: Array<{ job: number; index: number; last: boolean }> = [];
      let lasts = 0;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${lasts} of ${jobs} lists complete`)), 15_000);
        void ch.consume(
          queue,
          (m) => {
            if (!m) return;
            const { part } = JSON.parse(m.content.toString()) as { part: { index: number; last: boolean } };
            seen.push({ job: Number(String(m.properties.correlationId).split('-')[1]), ...part });
            if (part.last && ++lasts === jobs) {
              clearTimeout(timer);
              resolve();
            }
          },
          { noAck: true },
        );
      });
      // The arrival order, job by job: 0,0,0,0,1,1,1,1,... with indexes 0..n in each run.
      const runs: Array<{ job: number; indexes: number[] }> = [];
      for (const p of seen) {
        const run = runs.at(-1);
        if (run?.job === p.job) run.indexes.push(p.index);
        else runs.push({ job: p.job, indexes: [p.index] });
      }
      expect(runs.map((r) => r.job)).toEqual(Array.from({ length: jobs }, (_, k) => k));
      for (const r of runs) expect(r.indexes).toEqual(r.indexes.map((_, i) => i));
      expect(Math.min(...runs.map((r) => r.indexes.length))).toBeGreaterThan(2);
    });
  });

  it('when --count is given, then one summary per kind comes back: count, first, last and the exact sum', async () => {
    const run = await runCli(['range', '1', '1000000', '--count', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const byKind = Object.fromEntries(run.lines.map((l) => [l.kind, l.summary]));
    expect(byKind).toEqual({
      primes: { count: 78498, first: 2, last: 999983, sum: '37550402023' },
      squares: { count: 1000000, first: 1, last: 1000000000000, sum: '333333833333500000' },
    });
  });

  it('when a prime count is wider than one chunk and no --chunk is given, then it goes as several jobs whose counts add up', async () => {
    const submit = await runCli(['primes', '1', '2000000001', '--count', '--no-wait', '--json']);
    expect(submit.code, submit.stderr).toBe(0);
    const { batch, jobs } = submit.lines[0] as { batch: string; jobs: number };
    expect(jobs).toBe(primeCountRanges(1, 2000000001).length);
    expect(jobs).toBeGreaterThan(1);
    const collect = await runCli(['collect', batch, '--json']);
    expect(collect.code, collect.stderr).toBe(0);
    // pi(2 * 10^9) = 98222287, and 2000000001 = 3 * 666666667 is not prime.
    expect(collect.lines).toEqual([expect.objectContaining({ kind: 'primes', summary: expect.objectContaining({ count: 98222287, first: 2 }) })]);
  });

  it('when a message is not JSON or breaks the schema, then it is dead-lettered with the reason, the sender hears why, and the service keeps serving', async () => {
    await withChannel(async (ch) => {
      // A queue of our own on the dead-letter fanout sees exactly what pipeline.dead gets.
      const tap = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(tap.queue, 'pipeline.dead-letter', '');
      const replies = await ch.assertQueue('', { exclusive: true });
      const deadBefore = (await ch.checkQueue('pipeline.dead')).messageCount;
      const ids = { notJson: randomUUID(), badSchema: randomUUID() };

      ch.publish('pipeline.ranges', 'range.primes', Buffer.from('this is not json'), {
        messageId: ids.notJson,
        replyTo: replies.queue,
        correlationId: 'bad-1',
      });
      ch.publish('pipeline.ranges', 'range.squares', Buffer.from(JSON.stringify({ from: 'one', to: 3.5 })), {
        messageId: ids.badSchema,
        replyTo: replies.queue,
        correlationId: 'bad-2',
        contentType: 'application/json',
      });

      const dead = await receive(ch, tap.queue, (m) => (Object.values(ids) as string[]).includes(m.properties.messageId as string), 2);
      const reason = (id: string) => String(dead.find((m) => m.properties.messageId === id)?.properties.headers?.['x-pipeline-reason']);
      expect(reason(ids.notJson)).toMatch(/not JSON/);
      expect(reason(ids.badSchema)).toMatch(/from: must be a number/);
      expect(reason(ids.badSchema)).toMatch(/to: must be an integer/);
      for (const m of dead) expect(m.properties.headers?.['x-pipeline-error-code']).toBe('PIPELINE_ERR_INVALID_MESSAGE');
      // Quorum queues report their length a little after the fact: poll, with a deadline.
      await expect
        .poll(async () => (await ch.checkQueue('pipeline.dead')).messageCount, { timeout: 10_000 })
        .toBeGreaterThanOrEqual(deadBefore + 2);

      const errors = await receive(ch, replies.queue, () => true, 2);
      for (const m of errors) {
        expect(JSON.parse(m.content.toString())).toMatchObject({ ok: false, error: { code: 'PIPELINE_ERR_INVALID_MESSAGE' } });
      }
    });
    // Still serving:
    const run = await runCli(['range', '2', '10', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines).toHaveLength(2);
    for (const s of services) expect(s.child.exitCode).toBeNull();
  });

  it('when a plain AMQP client follows docs/protocol.md (reply_to + correlation_id only), then it gets its result', async () => {
    await withChannel(async (ch) => {
      const { queue } = await ch.assertQueue('', { exclusive: true });
      const correlationId = randomUUID();
      ch.publish('pipeline.ranges', 'range.primes', Buffer.from('{"from": 90, "to": 110}'), { replyTo: queue, correlationId });
      const [reply] = await receive(ch, queue, (m) => m.properties.correlationId === correlationId, 1);
      expect(JSON.parse(reply!.content.toString())).toEqual({ ok: true, kind: 'primes', job: { from: 90, to: 110 }, primes: [97, 101, 103, 107, 109] });
      expect(reply!.properties.contentType).toBe('application/json');
    });
  });

  it('when a job names a reply queue that does not exist, then its result is dead-lettered as PIPELINE_ERR_UNROUTABLE, not marked as a redelivery', async () => {
    await withChannel(async (ch) => {
      const tap = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(tap.queue, 'pipeline.dead-letter', '');
      const replyTo = `pipeline.replies.gone-${randomUUID()}`;
      const correlationId = randomUUID();
      ch.publish('pipeline.ranges', 'range.primes', Buffer.from('{"from": 1, "to": 10}'), { replyTo, correlationId, contentType: 'application/json' });
      const [dead] = await receive(ch, tap.queue, (m) => m.properties.correlationId === correlationId, 1);
      expect(dead!.fields.routingKey).toBe(replyTo);
      expect(dead!.properties.headers?.['x-pipeline-error-code']).toBe('PIPELINE_ERR_UNROUTABLE');
      expect(dead!.properties.headers?.['x-pipeline-redelivered']).toBe(false);
      expect(String(dead!.properties.headers?.['x-pipeline-reason'])).toMatch(/does not exist$/);
      // The result itself is kept whole, for whoever finds it.
      expect(JSON.parse(dead!.content.toString())).toEqual({ ok: true, kind: 'primes', job: { from: 1, to: 10 }, primes: [2, 3, 5, 7] });
    });
  });
});

describe('the CLI at its edges', () => {
  it('when the arguments are wrong, then it says what is wrong and exits 2', async () => {
    const cases = [
      ['primes', '5', '2'],
      ['primes', '1.5', '3'],
      ['squares', '1'],
      ['frobnicate'],
      ['titles', 'not a url'],
      ['primes', '1', '99999999999999999999'],
      ['primes', '1', '10', '--chunk', '0'],
      ['primes', '1', '1e12', '--count', '--chunk', '1'],
      ['titles', 'http://x/', '--count'],
      ['primes', '1', '10', '-o', '/nonexistent-dir/primes.jsonl'], // refused before connecting; exits
    ];
    for (const args of cases) {
      const run = await runCli(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr).toMatch(/^pipeline: /);
    }
  });

  it('when the project is installed, then `npx pipeline` is the CLI (npm linked its bin)', () => {
    // npm links bins before the `prepare` build: a bin inside dist/ was silently not linked.
    const bin = fileURLToPath(new URL('../node_modules/.bin/pipeline', import.meta.url));
    const version = execFileSync(bin, ['--version'], { encoding: 'utf8' });
    expect(version.trim()).toMatch(/^pipeline \d+\.\d+\.\d+$/);
  });

  it('when --help is given, then it prints usage with examples and exits 0', async () => {
    const run = await runCli(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('pipeline range 2 100');
    expect(run.stdout).toContain('Exit codes');
  });

  it('when the broker cannot be reached, then it names the URL, says how to get one, and exits 3', async () => {
    const run = await runCli(['primes', '1', '10'], { env: { AMQP_URL: 'amqp://guest:secret@127.0.0.1:1' } });
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1');
    expect(run.stderr).not.toContain('secret');
    expect(run.stderr).toContain('rabbitmq-server');
  });
});

describe('stopping a service', () => {
  it('when a service gets SIGTERM, then it stops consuming, closes cleanly and exits 0', async () => {
    const results = await Promise.all(services.map((s) => s.stop('SIGTERM')));
    for (const r of results) expect(r).toEqual({ code: 0, signal: null });
    for (const s of services) expect(s.recentLines().some((l) => l.includes('"msg":"closed"'))).toBe(true);
  });
});
