import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { DeadLetterHeaders, ErrorCodes, manifestQueueName, ownedQueueId, progressQueueName, replyQueueName } from '@amqp-pipeline/shared';
import { describe, expect, it } from 'vitest';
import { Exit } from './cli-args.js';
import { newBatchId } from './jobs.js';
import {
  DEAD_LETTER_HEADERS,
  DEAD_RESAMPLE_CHANGED_MS,
  DEAD_RESAMPLE_MS,
  OWNER_SEPARATOR,
  batchStartedAt,
  buildSnapshot,
  deadLetterReason,
  deadSampleDue,
  managementTarget,
  maskUrl,
  parseReplyQueue,
  renderStatus,
  shortAge,
  shortNumber,
  shortRate,
  statusCommand,
  table,
  type RawStatus,
} from './status.js';

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('the management API address', () => {
  it('when only AMQP_URL is set, then the API is its host on 15672 (amqps: https on 15671) with its user, password and vhost', () => {
    expect(managementTarget('amqp://guest:guest@127.0.0.1:5672')).toEqual({
      base: 'http://127.0.0.1:15672',
      user: 'guest',
      authorization: basic('guest', 'guest'),
      vhost: '/',
      source: 'AMQP_URL',
    });
    const tls = managementTarget('amqps://alice:s%40cret@rabbit.example.com:5671/prod');
    expect(tls).toMatchObject({ base: 'https://rabbit.example.com:15671', user: 'alice', authorization: basic('alice', 's@cret'), vhost: 'prod' });
    // No user in the URL: amqplib's guest/guest. The vhost by amqplib's rule: %2F is "/", an empty path too.
    expect(managementTarget('amqp://localhost')).toMatchObject({ base: 'http://localhost:15672', authorization: basic('guest', 'guest'), vhost: '/' });
    expect(managementTarget('amqp://h/%2F').vhost).toBe('/');
    expect(managementTarget('amqp://h/a%2Fb').vhost).toBe('a/b');
    expect(managementTarget('amqp://[::1]:5672').base).toBe('http://[::1]:15672');
  });

  it('when AMQP_URL lists several nodes, then the first one is asked', () => {
    expect(managementTarget('amqp://u:p,w@node-a:5672/v, amqp://u:p,w@node-b:5672/v')).toMatchObject({ base: 'http://node-a:15672', authorization: basic('u', 'p,w'), vhost: 'v' });
  });

  it('when PIPELINE_MANAGEMENT_URL is set, then it is used with its prefix (and AMQP_URL\'s credentials when it has none), the vhost still AMQP_URL\'s', () => {
    expect(managementTarget('amqp://guest:guest@h/prod', 'https://ops:pw@proxy.example.com/rabbitmq/')).toMatchObject({
      base: 'https://proxy.example.com/rabbitmq',
      user: 'ops',
      authorization: basic('ops', 'pw'),
      vhost: 'prod',
      source: 'PIPELINE_MANAGEMENT_URL',
    });
    expect(managementTarget('amqp://bob:pw@h', 'http://h:15672/api')).toMatchObject({ base: 'http://h:15672', user: 'bob', authorization: basic('bob', 'pw') });
    expect(managementTarget('amqp://bob:pw@h', '  ').source).toBe('AMQP_URL');
  });

  it('when a URL cannot be used, then a configuration error names the variable and never the password', () => {
    const bad: [string, string | undefined, RegExp][] = [
      ['amqp://u:hunter2@h', 'ftp://u:hunter2@h', /PIPELINE_MANAGEMENT_URL must be an http/],
      ['amqp://u:hunter2@h', 'not a url hunter2@', /PIPELINE_MANAGEMENT_URL is not a URL/],
      ['http://u:hunter2@h', undefined, /AMQP_URL must be an amqp/],
    ];
    for (const [amqp, mgmt, message] of bad) {
      let err: unknown;
      try {
        managementTarget(amqp, mgmt);
      } catch (e) {
        err = e;
      }
      expect(err, `${amqp} ${mgmt}`).toMatchObject({ code: ErrorCodes.CONFIG, message: expect.stringMatching(message) });
      expect((err as Error).message).not.toContain('hunter2');
    }
    expect(maskUrl('http://ops:hunter2@h:15672/x')).toBe('http://ops:***@h:15672/x');
    expect(maskUrl('http://h:15672')).toBe('http://h:15672');
  });

  it('when the constants are copies of the shared ones, then they agree', () => {
    expect(ownedQueueId('alice', 'b1')).toBe(`alice${OWNER_SEPARATOR}b1`);
    expect(DEAD_LETTER_HEADERS).toEqual({ reason: DeadLetterHeaders.reason, code: DeadLetterHeaders.code, service: DeadLetterHeaders.service, queue: DeadLetterHeaders.queue });
  });
});

describe('batch ids and queue names', () => {
  it('when a batch id starts with newBatchId\'s stamp, then its start is read from it; otherwise there is none', () => {
    expect(batchStartedAt('20261129T084012Z-3f9a2c1b')?.toISOString()).toBe('2026-11-29T08:40:12.000Z');
    const now = new Date('2026-12-07T10:11:12.345Z');
    expect(batchStartedAt(newBatchId(now))?.toISOString()).toBe('2026-12-07T10:11:12.000Z');
    for (const id of ['my-batch', '20261329T084012Z-x', '20261129T084012Zabc', '2026-11-29T08:40:12Z']) expect(batchStartedAt(id), id).toBeUndefined();
  });

  it('when reply queue names are parsed, then batches, sessions and a batch\'s other queues are told apart', () => {
    const batch = '20261129T084012Z-3f9a2c1b';
    expect(parseReplyQueue(replyQueueName(ownedQueueId('alice', batch)))).toEqual({ user: 'alice', batch, session: false });
    expect(parseReplyQueue(replyQueueName(ownedQueueId('alice', `session-${batch}`)))).toEqual({ user: 'alice', batch: `session-${batch}`, session: true });
    expect(parseReplyQueue(replyQueueName('legacy-batch'))).toEqual({ user: null, batch: 'legacy-batch', session: false });
    for (const name of [manifestQueueName(ownedQueueId('alice', batch)), progressQueueName(ownedQueueId('alice', batch)), 'pipeline.primes', 'pipeline.replies.', 'other']) {
      expect(parseReplyQueue(name), name).toBeUndefined();
    }
  });
});

describe('dead letters', () => {
  it('when a dead letter is ours, then its reason is our code; when the broker put it there, broker:<reason>', () => {
    expect(deadLetterReason({ [DeadLetterHeaders.code]: 'PIPELINE_ERR_INVALID_MESSAGE', [DeadLetterHeaders.reason]: 'not JSON', [DeadLetterHeaders.service]: 'prime-filter' })).toEqual({
      code: 'PIPELINE_ERR_INVALID_MESSAGE',
      service: 'prime-filter',
      example: 'not JSON',
    });
    expect(deadLetterReason({ 'x-first-death-reason': 'delivery_limit', 'x-first-death-queue': 'pipeline.primes' })).toEqual({ code: 'broker:delivery_limit', example: 'from pipeline.primes' });
    expect(deadLetterReason({ 'x-death': [{ reason: 'expired', queue: 'q' }] })).toEqual({ code: 'broker:expired', example: 'from q' });
    expect(deadLetterReason(undefined)).toEqual({ code: 'unknown' });
  });

  it('when --watch decides whether to read them again, then it does for a changed count (not too often) and every 10 s', () => {
    expect(deadSampleDue(undefined, 0, 0)).toBe(false);
    expect(deadSampleDue(undefined, 3, 0)).toBe(true);
    const last = { at: 100_000, total: 3 };
    expect(deadSampleDue(last, 3, last.at + DEAD_RESAMPLE_MS - 1)).toBe(false);
    expect(deadSampleDue(last, 3, last.at + DEAD_RESAMPLE_MS)).toBe(true);
    expect(deadSampleDue(last, 4, last.at + DEAD_RESAMPLE_CHANGED_MS - 1)).toBe(false);
    expect(deadSampleDue(last, 4, last.at + DEAD_RESAMPLE_CHANGED_MS)).toBe(true);
    expect(deadSampleDue(last, 0, last.at + DEAD_RESAMPLE_MS)).toBe(false);
  });
});

// Canned answers, shaped as RabbitMQ 3.10's management API gives them.
const BATCH_OLD = '20261207T093000Z-0a0b0c0d';
const BATCH_NEW = '20261207T095950Z-1a2b3c4d';
const at = new Date('2026-12-07T10:00:00.000Z');
const stats = (inRate: number, ack: number) => ({ publish_details: { rate: inRate }, ack_details: { rate: ack }, deliver_get_details: { rate: ack } });
const queuesPage = {
  filtered_count: 12,
  item_count: 12,
  page: 1,
  page_count: 1,
  page_size: 500,
  total_count: 12,
  items: [
    { name: 'pipeline.primes', type: 'quorum', messages: 1234, messages_ready: 1200, messages_unacknowledged: 34, consumers: 3, message_stats: stats(42.04, 40) },
    { name: 'pipeline.primes.retry.1', type: 'classic', messages: 2, messages_ready: 2, messages_unacknowledged: 0, consumers: 0 },
    { name: 'pipeline.primes.retry.2', type: 'classic', messages: 1, messages_ready: 1, messages_unacknowledged: 0, consumers: 0 },
    { name: 'pipeline.squares', type: 'quorum', messages: 0, messages_ready: 0, messages_unacknowledged: 0, consumers: 0 },
    { name: 'pipeline.dead', type: 'quorum', messages: 1234, messages_ready: 1234, messages_unacknowledged: 0, consumers: 0, message_stats: { publish_details: { rate: 0.2 } } },
    { name: replyQueueName(ownedQueueId('guest', BATCH_NEW)), type: 'classic', messages_ready: 10, messages_unacknowledged: 50, consumers: 1 },
    { name: manifestQueueName(ownedQueueId('guest', BATCH_NEW)), messages_ready: 1, messages_unacknowledged: 0, consumers: 0 },
    { name: progressQueueName(ownedQueueId('guest', BATCH_NEW)), messages_ready: 1, messages_unacknowledged: 0, consumers: 0 },
    { name: replyQueueName(ownedQueueId('alice', BATCH_OLD)), type: 'classic', messages_ready: 100, messages_unacknowledged: 0, consumers: 0 },
    { name: replyQueueName(ownedQueueId('alice', 'nightly')), type: 'classic', messages_ready: 7, messages_unacknowledged: 0, consumers: 0 },
    { name: replyQueueName(ownedQueueId('web', `session-${BATCH_NEW}`)), messages_ready: 0, consumers: 1 },
    { name: replyQueueName(ownedQueueId('web', `session-${BATCH_OLD}`)), messages_ready: 0, consumers: 0 },
    { not: 'a queue' },
  ],
};
const primesDetail = {
  name: 'pipeline.primes',
  consumer_details: [
    { consumer_tag: 'a', channel_details: { connection_name: '127.0.0.1:50000 -> 127.0.0.1:5672', number: 1 } },
    { consumer_tag: 'b', channel_details: { connection_name: '127.0.0.1:50000 -> 127.0.0.1:5672', number: 2 } },
    { consumer_tag: 'c', channel_details: { connection_name: '10.0.0.9:41000 -> 10.0.0.1:5672', number: 1 } },
    { consumer_tag: 'd', channel_details: [] },
  ],
};
const connections = [
  { name: '127.0.0.1:50000 -> 127.0.0.1:5672', client_properties: { connection_name: 'prime-filter@host-a', product: 'amqplib' } },
  { name: '127.0.0.1:50001 -> 127.0.0.1:5672', client_properties: {} },
];
const deadMessage = (headers: Record<string, unknown>) => ({ payload_bytes: 10, redelivered: true, exchange: 'pipeline.dead-letter', routing_key: 'range.primes', properties: { headers }, payload: '{}' });
const deadMessages = [
  ...Array.from({ length: 3 }, () => deadMessage({ [DeadLetterHeaders.code]: 'PIPELINE_ERR_INVALID_MESSAGE', [DeadLetterHeaders.reason]: 'not JSON', [DeadLetterHeaders.service]: 'prime-filter' })),
  deadMessage({ [DeadLetterHeaders.code]: 'PIPELINE_ERR_INVALID_MESSAGE', [DeadLetterHeaders.service]: 'square-mapper' }),
  deadMessage({ 'x-first-death-reason': 'delivery_limit', 'x-first-death-queue': 'pipeline.primes' }),
];
const raw: RawStatus = {
  at,
  management: 'http://127.0.0.1:15672',
  vhost: '/',
  queues: queuesPage,
  details: { 'pipeline.primes': primesDetail },
  connections,
  dead: { messages: deadMessages, at },
};

describe('the snapshot', () => {
  it('when the API\'s answers are read, then batches, sessions, work queues and dead letters come out typed', () => {
    const s = buildSnapshot(raw);
    expect(s.at).toBe('2026-12-07T10:00:00.000Z');
    expect(s.sessions).toEqual({ open: 2, consuming: 1 });
    expect(s.batches).toEqual([
      { user: 'alice', batch: BATCH_OLD, queue: `pipeline.replies.alice:${BATCH_OLD}`, startedAt: '2026-12-07T09:30:00.000Z', ageSeconds: 1800, ready: 100, unacked: 0, consumers: 0, state: 'waiting' },
      { user: 'guest', batch: BATCH_NEW, queue: `pipeline.replies.guest:${BATCH_NEW}`, startedAt: '2026-12-07T09:59:50.000Z', ageSeconds: 10, ready: 10, unacked: 50, consumers: 1, state: 'collecting' },
      { user: 'alice', batch: 'nightly', queue: 'pipeline.replies.alice:nightly', startedAt: null, ageSeconds: null, ready: 7, unacked: 0, consumers: 0, state: 'waiting' },
    ]);
    const [primes, squares, titles] = s.queues;
    expect(primes).toEqual({
      name: 'pipeline.primes',
      declared: true,
      type: 'quorum',
      ready: 1200,
      unacked: 34,
      rateIn: 42.04,
      rateOut: 40,
      consumers: 3,
      // Two consumers on one connection, by its client-provided name; one whose connection is hidden, by the broker's name.
      clients: [
        { name: 'prime-filter@host-a', consumers: 2 },
        { name: '(unknown connection)', consumers: 1 },
        { name: '10.0.0.9:41000 -> 10.0.0.1:5672', consumers: 1 },
      ],
      retry: {
        ready: 3,
        unacked: 0,
        tiers: [
          { name: 'pipeline.primes.retry.1', declared: true, ready: 2, unacked: 0 },
          { name: 'pipeline.primes.retry.2', declared: true, ready: 1, unacked: 0 },
        ],
      },
    });
    expect(squares).toMatchObject({ name: 'pipeline.squares', declared: true, ready: 0, rateIn: null, rateOut: null, consumers: 0, clients: [] });
    expect(titles).toMatchObject({ name: 'pipeline.titles', declared: false, ready: 0, consumers: 0 });
    expect(s.dead).toEqual({
      name: 'pipeline.dead',
      declared: true,
      messages: 1234,
      ready: 1234,
      unacked: 0,
      rateIn: 0.2,
      sampleError: null,
      sample: {
        read: 5,
        at: '2026-12-07T10:00:00.000Z',
        byReason: [
          { code: 'PIPELINE_ERR_INVALID_MESSAGE', count: 4, services: ['prime-filter', 'square-mapper'], example: 'not JSON' },
          { code: 'broker:delivery_limit', count: 1, services: [], example: 'from pipeline.primes' },
        ],
      },
    });
  });

  it('when the answers are odd (a plain array, fields missing or of another type), then what can be read is, and the rest is left out', () => {
    const s = buildSnapshot({ at, management: 'm', vhost: '/', queues: [{ name: 'pipeline.primes', messages_ready: 'many', consumers: 1 }, 42, null] });
    expect(s.queues[0]).toMatchObject({ declared: true, ready: 0, consumers: 1, clients: [] });
    expect(s.dead).toMatchObject({ declared: false, messages: 0, sample: null });
    expect(buildSnapshot({ at, management: 'm', vhost: '/', queues: 'nonsense' }).batches).toEqual([]);
    expect(buildSnapshot({ ...raw, dead: { error: 'user "u" may not read pipeline.dead', at } }).dead).toMatchObject({ sample: null, sampleError: 'user "u" may not read pipeline.dead' });
  });
});

describe('the table', () => {
  it('when numbers, rates and ages are shortened, then they read like top\'s', () => {
    expect([0, 999, 1000, 1234, 9_949, 12_345, 123_456, 999_999, 1_234_567, 2.5e9].map(shortNumber)).toEqual(['0', '999', '1.0k', '1.2k', '9.9k', '12k', '123k', '1.0M', '1.2M', '2.5G']);
    expect([null, 0, 12.34, 123.4, 4321].map(shortRate)).toEqual(['-', '0.0/s', '12.3/s', '123/s', '4.3k/s']);
    expect([null, 0, 59, 60, 3599, 3600, 3 * 3600 + 5 * 60, 86_400 * 2 + 4 * 3600].map(shortAge)).toEqual(['-', '0s', '59s', '1m', '59m', '1h00m', '3h05m', '2d04h']);
    expect(table([['a', '1', 'x'], ['bbb', '22', '']], ['l', 'r', 'l'])).toEqual(['a     1  x', 'bbb  22']);
  });

  it('when the snapshot is rendered, then each queue, batch and reason has its row, aligned', () => {
    const text = renderStatus(buildSnapshot(raw));
    const lines = text.split('\n');
    const row = (start: string) => lines.map((l) => l.trimStart()).find((l) => l.startsWith(start)) ?? '';
    expect(lines[0]).toBe('pipeline status · http://127.0.0.1:15672 · vhost / · 2026-12-07T10:00:00Z');
    expect(row('pipeline.primes ')).toMatch(/^pipeline\.primes\s+1\.2k\s+34\s+42\.0\/s\s+40\.0\/s\s+3\s+3\s+prime-filter@host-a ×2, \(unknown connection\), 10\.0\.0\.9/);
    expect(row('pipeline.squares')).toMatch(/^pipeline\.squares\s+0\s+0\s+-\s+-\s+0\s+0\s+\(none: jobs wait\)$/);
    expect(row('pipeline.titles')).toContain('not declared yet');
    // The columns line up: every work queue's READY ends where the header's does.
    const readyEnd = row('WORK QUEUE').indexOf('READY') + 'READY'.length;
    for (const q of ['pipeline.primes ', 'pipeline.squares']) expect(row(q).slice(readyEnd - 1, readyEnd + 1)).toMatch(/^\S $/);
    expect(text).toContain('BATCHES WAITING FOR COLLECTION: 3, 117 result message(s) ready; 2 sessions open (1 with nobody consuming)');
    expect(row('alice  ')).toMatch(new RegExp(`^alice\\s+${BATCH_OLD}\\s+30m\\s+100\\s+0\\s+waiting$`));
    expect(row('guest')).toMatch(new RegExp(`^guest\\s+${BATCH_NEW}\\s+10s\\s+10\\s+50\\s+collecting$`));
    expect(text).toMatch(/alice\s+nightly\s+-\s+7\s+0\s+waiting/);
    expect(text).toContain('DEAD LETTERS: 1234 in pipeline.dead (0.2/s in); by reason, of the first 5 of 1234:');
    expect(row('PIPELINE_ERR_INVALID_MESSAGE')).toMatch(/^PIPELINE_ERR_INVALID_MESSAGE\s+4\s+prime-filter,square-mapper\s+not JSON$/);
    expect(row('broker:delivery_limit')).toMatch(/^broker:delivery_limit\s+1\s+-\s+from pipeline\.primes$/);
  });

  it('when there are many batches, a terminal width or an error, then the table is cut and says so', () => {
    const s = buildSnapshot(raw);
    const few = renderStatus(s, { maxBatches: 1 });
    expect(few).toContain('… and 2 more (pipeline status --json lists them all)');
    expect(few).not.toContain(BATCH_NEW);
    for (const l of renderStatus(s, { width: 40 }).split('\n')) expect(l.length).toBeLessThanOrEqual(40);
    expect(renderStatus(s, { error: 'cannot reach it' })).toContain('! cannot reach it');
    const empty = buildSnapshot({ at, management: 'm', vhost: '/', queues: [] });
    expect(renderStatus(empty)).toContain('No batches waiting for collection.');
    expect(renderStatus(empty)).toContain('DEAD LETTERS: pipeline.dead is not declared yet.');
  });
});

/** A stand-in for the management API on 127.0.0.1 (no broker), answering with `handler`. */
async function fakeApi(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://ops:hunter2@127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function collect(stream: PassThrough): () => string {
  let text = '';
  stream.setEncoding('utf8').on('data', (d: string) => (text += d));
  return () => text;
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

describe('statusCommand, against a stand-in for the API', () => {
  it('when --json runs once, then one object is printed, the dead letters are read and put back, and the exit code is 0', async () => {
    const gets: unknown[] = [];
    const api = await fakeApi((req, res) => {
      expect(req.headers.authorization).toBe(basic('ops', 'hunter2'));
      const url = new URL(req.url ?? '', 'http://x');
      if (url.pathname === '/api/queues/%2F') return json(res, 200, queuesPage);
      if (url.pathname === '/api/queues/%2F/pipeline.primes') return json(res, 200, primesDetail);
      if (url.pathname === '/api/connections') return json(res, 200, connections);
      if (url.pathname === '/api/queues/%2F/pipeline.dead/get' && req.method === 'POST') {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          gets.push(JSON.parse(body));
          json(res, 200, deadMessages);
        });
        return;
      }
      json(res, 404, { error: 'Object Not Found', reason: 'Not Found' });
    });
    try {
      const out = new PassThrough();
      const text = collect(out);
      const code = await statusCommand({ json: true, watch: false, env: { PIPELINE_MANAGEMENT_URL: api.url }, out, err: new PassThrough() });
      expect(code).toBe(Exit.OK);
      const lines = text().trim().split('\n');
      expect(lines).toHaveLength(1);
      const snap = JSON.parse(lines[0] as string) as ReturnType<typeof buildSnapshot>;
      expect(Object.keys(snap)).toEqual(['at', 'management', 'vhost', 'batches', 'sessions', 'queues', 'dead']);
      expect(snap.management).toBe(api.url.replace('ops:hunter2@', ''));
      expect(snap.batches.map((b) => b.batch)).toEqual([BATCH_OLD, BATCH_NEW, 'nightly']);
      expect(snap.queues[0]?.clients[0]).toEqual({ name: 'prime-filter@host-a', consumers: 2 });
      expect(snap.dead.sample?.byReason.map((r) => r.code)).toEqual(['PIPELINE_ERR_INVALID_MESSAGE', 'broker:delivery_limit']);
      expect(gets).toEqual([expect.objectContaining({ count: 500, ackmode: 'ack_requeue_true', encoding: 'auto' })]);
      expect(text()).not.toContain('hunter2');
    } finally {
      await api.close();
    }
  });

  it('when the user is not allowed, then it exits 78 saying which tag the user needs, without the password', async () => {
    const api = await fakeApi((_req, res) => json(res, 401, { error: 'not_authorised', reason: 'Not management user' }));
    try {
      const err = new PassThrough();
      const text = collect(err);
      const code = await statusCommand({ json: false, watch: false, env: { PIPELINE_MANAGEMENT_URL: api.url }, out: new PassThrough(), err });
      expect(code).toBe(Exit.CONFIG);
      expect(text()).toMatch(/^pipeline: user "ops" is not allowed to use the RabbitMQ management API at http:\/\/127\.0\.0\.1:\d+ \(401 Not management user\): the broker user needs the `management` \(or `monitoring`/);
      expect(text()).toContain('or set PIPELINE_MANAGEMENT_URL to a user that has it');
      expect(text()).not.toContain('hunter2');
    } finally {
      await api.close();
    }
  });

  it('when the API goes away during --watch, then the frame shows the error, the watch keeps trying, and a stop exits 0', async () => {
    let calls = 0;
    const api = await fakeApi((req, res) => {
      const url = new URL(req.url ?? '', 'http://x');
      if (url.pathname !== '/api/queues/%2F') return json(res, 404, {});
      calls++;
      // The second listing fails as a restarting broker's would; the others answer.
      if (calls === 2) return json(res, 503, { error: 'service_unavailable', reason: 'starting' });
      json(res, 200, { page: 1, page_count: 1, items: [] });
    });
    const stop = new AbortController();
    try {
      const out = new PassThrough();
      const text = collect(out);
      const lines = () => text().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      const done = statusCommand({ json: true, watch: true, env: { PIPELINE_MANAGEMENT_URL: api.url }, out, err: new PassThrough(), signal: stop.signal, intervalMs: 20 });
      await expect.poll(() => lines().length, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
      stop.abort();
      expect(await done).toBe(Exit.OK);
      const [first, second, third] = lines();
      expect(first).toHaveProperty('queues');
      expect(second).toEqual({ at: expect.any(String), error: { code: ErrorCodes.BROKER_UNREACHABLE, message: expect.stringContaining('answered 503 starting') } });
      expect(third).toHaveProperty('queues');
    } finally {
      await api.close();
    }
  });

  it('when the API cannot be reached at all, then it exits 3 naming PIPELINE_MANAGEMENT_URL, even with --watch', async () => {
    const api = await fakeApi(() => {});
    const url = api.url;
    await api.close();
    for (const watch of [false, true]) {
      const err = new PassThrough();
      const text = collect(err);
      const code = await statusCommand({ json: false, watch, env: { PIPELINE_MANAGEMENT_URL: url }, out: new PassThrough(), err });
      expect(code).toBe(Exit.BROKER);
      expect(text()).toMatch(/cannot reach the RabbitMQ management API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\).*PIPELINE_MANAGEMENT_URL/);
    }
  });

  it('when AMQP_URL is not usable, then it exits 78 before any request', async () => {
    const err = new PassThrough();
    const text = collect(err);
    expect(await statusCommand({ json: false, watch: false, env: { AMQP_URL: 'http://u:hunter2@h' }, out: new PassThrough(), err })).toBe(Exit.CONFIG);
    expect(text()).toContain('AMQP_URL');
    expect(text()).not.toContain('hunter2');
  });
});
