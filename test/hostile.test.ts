/**
 * A second, hostile client on the same broker (issue 23), with the real CLI and square-mapper:
 * a forged reply put into a batch's reply queue before the real one, a job that borrows another
 * batch's reply_to and correlation id, and a job that aims its answer at a work queue. Each is
 * refused; the victim's output is exact. Then the same broker with per-role users (made through
 * the management API, removed after): two producer users, bob the victim and alice, and the
 * services' users; a forgery that fits its job is refused by its user_id, and alice can neither
 * read, delete nor write bob's queues.
 */
import { startServices, stopServices, type ServiceProcess } from '@amqp-pipeline/devtools';
import { producerExchangeName, producerPermissionsFor, Roles, type Permissions } from '@amqp-pipeline/shared';
import amqp, { type ConfirmChannel } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl, batchQueue, brokerRefusal, hasManagement, mgmt, publishConfirmed, receive, runCli, withChannel } from './helpers.js';

let services: ServiceProcess[] = [];
afterEach(async () => {
  await stopServices(services);
  services = [];
});

/** The attacker: its own connection and a confirm channel, closed after `fn`. */
async function asAttacker<T>(fn: (ch: ConfirmChannel) => Promise<T>): Promise<T> {
  const conn = await amqp.connect(amqpUrl());
  try {
    const ch = await conn.createConfirmChannel();
    const out = await fn(ch);
    await ch.waitForConfirms();
    return out;
  } finally {
    await conn.close().catch(() => {});
  }
}

/** `pipeline squares 1 3 --no-wait` with no square-mapper running: the batch id. */
async function victimBatch(): Promise<string> {
  const sent = await runCli(['squares', '1', '3', '--no-wait', '--json']);
  expect(sent.code, sent.stderr).toBe(0);
  return String(sent.lines[0]?.batch);
}

async function collect(batch: string) {
  const run = await runCli(['collect', batch, '--timeout', '30'], { env: { LOG_LEVEL: 'warn' } });
  const refusals = run.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; reason?: string; appId?: string | null })
    .filter((l) => l.msg === 'unexpected message in the reply queue refused');
  return { ...run, refusals };
}

describe('a hostile client on the same broker', () => {
  it('when a forged reply is put into a batch reply queue before the service answers, then collect prints the real result once, exits 0, and counts the forgery', async () => {
    const batch = await victimBatch();
    await asAttacker(async (ch) => {
      ch.sendToQueue(batchQueue(batch), Buffer.from('{"ok":true,"kind":"squares","squares":[666,777,888]}'), {
        correlationId: `${batch}.0`,
        contentType: 'application/json',
        appId: 'mallory',
      });
    });
    services = await startServices(['square-mapper'], { env: { AMQP_URL: amqpUrl() } });
    const run = await collect(batch);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('squares of 1..3 (3):\n  1 4 9\n');
    expect(run.stderr).toMatch(/1 result\(s\), 0 failed, 1 unexpected message\(s\) refused/);
    expect(run.refusals).toEqual([expect.objectContaining({ appId: 'mallory', reason: expect.stringMatching(/does not echo its job/) })]);
  });

  it('when a job borrows another batch reply_to and correlation id and is answered first, then its answer is refused and the victim gets its own', async () => {
    const batch = await victimBatch();
    await asAttacker(async (ch) => {
      // Take the victim's job out of the queue, send the borrowing job, then the victim's again
      // unchanged: the service answers the borrower first.
      let victim: amqp.GetMessage | false = false;
      const others: amqp.GetMessage[] = [];
      for (let i = 0; i < 1000 && !victim; i++) {
        const m = await ch.get('pipeline.squares', { noAck: false });
        if (m === false) break;
        if (m.properties.correlationId === `${batch}.0`) victim = m;
        else others.push(m);
      }
      for (const m of others) ch.nack(m, false, true);
      if (!victim) throw new Error(`the job of batch ${batch} is not in pipeline.squares`);
      const { replyTo, correlationId } = victim.properties;
      expect(replyTo).toBe(batchQueue(batch));
      ch.publish('pipeline.ranges', 'range.squares', Buffer.from('{"from":5,"to":6}'), { replyTo, correlationId, contentType: 'application/json', persistent: true });
      ch.publish('pipeline.ranges', 'range.squares', victim.content, { ...victim.properties, headers: victim.properties.headers ?? {} });
      ch.ack(victim);
    });
    services = await startServices(['square-mapper'], { env: { AMQP_URL: amqpUrl() } });
    const run = await collect(batch);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('squares of 1..3 (3):\n  1 4 9\n');
    expect(run.stderr).toMatch(/1 unexpected message\(s\) refused/);
    expect(run.refusals).toEqual([expect.objectContaining({ appId: 'square-mapper', reason: expect.stringMatching(/answers \{"from":5,"to":6\}, not this job's \{"from":1,"to":3\}/) })]);
  });

  it('when a job names a work queue as its reply_to, then it is dead-lettered with the reason and nothing is sent to that queue', async () => {
    services = await startServices(['square-mapper'], { env: { AMQP_URL: amqpUrl() } });
    await withChannel(async (ch) => {
      const tap = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(tap.queue, 'pipeline.dead-letter', '');
      // No prime-filter runs in this file: whatever reached pipeline.primes would stay there.
      const before = (await ch.checkQueue('pipeline.primes')).messageCount;
      const correlationId = randomUUID();
      await asAttacker(async (a) => {
        a.publish('pipeline.ranges', 'range.squares', Buffer.from('{"from":1,"to":3}'), { replyTo: 'pipeline.primes', correlationId, contentType: 'application/json' });
      });
      const [dead] = await receive(ch, tap.queue, (m) => m.properties.correlationId === correlationId, 1);
      expect(dead!.properties.headers?.['x-pipeline-error-code']).toBe('PIPELINE_ERR_INVALID_REPLY_TO');
      expect(String(dead!.properties.headers?.['x-pipeline-reason'])).toMatch(/reply_to "pipeline.primes" is not a reply queue/);
      // The job itself, unchanged, for whoever looks (not an answer).
      expect(dead!.content.toString()).toBe('{"from":1,"to":3}');
      // A quorum queue's count lags a little: give an answer time to show, then look.
      await new Promise((r) => setTimeout(r, 1500));
      expect((await ch.checkQueue('pipeline.primes')).messageCount).toBe(before);
    });
    for (const s of services) expect(s.child.exitCode).toBeNull();
  });
});

describe.skipIf(!(await hasManagement()))('a hostile client with per-role users', () => {
  const tag = randomUUID().slice(0, 8);
  const users = { alice: `pipeline-test-${tag}-alice`, bob: `pipeline-test-${tag}-bob`, primes: `pipeline-test-${tag}-pf`, squares: `pipeline-test-${tag}-sq` };
  const perms: Record<string, Permissions> = {
    [users.alice]: producerPermissionsFor(users.alice),
    [users.bob]: producerPermissionsFor(users.bob),
    [users.primes]: Roles['prime-filter'],
    [users.squares]: Roles['square-mapper'],
  };
  const urlOf = (user: string) => {
    const u = new URL(amqpUrl());
    u.username = user;
    u.password = `pw-${tag}`;
    return u.toString();
  };
  /** A producer as `user`, taking primes only from the prime-filter's user (and squares from the square-mapper's). */
  const asProducer = (user: string, args: string[]) =>
    runCli(args, { env: { AMQP_URL: urlOf(user), SERVICE_USERS: `primes=${users.primes},squares=${users.squares},title=nobody`, LOG_LEVEL: 'warn' } });

  beforeAll(async () => {
    for (const [user, perm] of Object.entries(perms)) {
      expect((await mgmt('PUT', `/users/${encodeURIComponent(user)}`, { password: `pw-${tag}`, tags: '' })).ok).toBe(true);
      expect((await mgmt('PUT', `/permissions/%2F/${encodeURIComponent(user)}`, perm)).ok).toBe(true);
    }
  });
  afterAll(async () => {
    for (const user of Object.keys(perms)) await mgmt('DELETE', `/users/${encodeURIComponent(user)}`);
    for (const user of [users.alice, users.bob]) await mgmt('DELETE', `/exchanges/%2F/${encodeURIComponent(producerExchangeName(user))}`);
  });

  it('when another service user forges a fitting result and alice tries bob\'s queues, then the broker or bob refuses each, and bob\'s output is exact', async () => {
    // bob's batch, with no prime-filter running: its job waits in pipeline.primes.
    const sent = await asProducer(users.bob, ['primes', '1', '10', '--no-wait', '--json']);
    expect(sent.code, sent.stderr).toBe(0);
    const batch = String(sent.lines[0]?.batch);
    const queue = batchQueue(batch, urlOf(users.bob));
    expect(queue).toBe(`pipeline.replies.${users.bob}:${batch}`);
    const forged = JSON.stringify({ ok: true, kind: 'primes', job: { from: 1, to: 10 }, primes: [2, 3, 5] }); // fits the job (ascending, in range), and is wrong
    const props = { correlationId: `${batch}.0`, contentType: 'application/json', type: 'pipeline.result.v1', appId: 'prime-filter' };

    // The square-mapper's user may answer into reply queues (it is a service), so the broker takes
    // these: bob refuses them by their user_id (none, and its own, which is not the primes service's).
    expect(await brokerRefusal(urlOf(users.squares), (ch) => publishConfirmed(ch, '', queue, forged, props))).toBeUndefined();
    expect(await brokerRefusal(urlOf(users.squares), (ch) => publishConfirmed(ch, '', queue, forged, { ...props, userId: users.squares }))).toBeUndefined();
    // Claiming the prime-filter's user is refused by the broker itself (406: user_id is not the connection's).
    expect(await brokerRefusal(urlOf(users.squares), (ch) => publishConfirmed(ch, '', queue, forged, { ...props, userId: users.primes }))).toBe(406);

    // alice, another producer user: nothing of bob's is hers to touch (403 each).
    const alice = (attempt: (ch: ConfirmChannel) => Promise<unknown>) => brokerRefusal(urlOf(users.alice), attempt);
    expect(await alice((ch) => publishConfirmed(ch, '', queue, forged, props)), 'publish into bob\'s reply queue').toBe(403);
    expect(await alice((ch) => publishConfirmed(ch, '', `${queue}.manifest`, '{}', props)), 'overwrite bob\'s manifest').toBe(403);
    expect(await alice((ch) => publishConfirmed(ch, producerExchangeName(users.bob), queue, forged, props)), 'publish through bob\'s exchange').toBe(403);
    expect(await alice((ch) => ch.consume(queue, () => {})), 'consume bob\'s reply queue').toBe(403);
    expect(await alice((ch) => ch.get(`${queue}.manifest`)), 'read bob\'s manifest').toBe(403);
    expect(await alice((ch) => ch.deleteQueue(queue)), 'delete bob\'s reply queue').toBe(403);
    expect(await alice((ch) => ch.bindQueue(queue, producerExchangeName(users.alice), 'x')), 'bind bob\'s queue to her exchange').toBe(403);
    const stolen = await asProducer(users.alice, ['collect', batch, '--timeout', '5']);
    expect(stolen.code).not.toBe(0);
    expect(stolen.stderr).toMatch(new RegExp(`no results are waiting for batch ${batch}.*submitted by another broker user than "${users.alice}"`));

    // The real service, as its own user: bob prints its answer, once, and counts the two forgeries.
    services = await startServices(['prime-filter'], { env: { AMQP_URL: urlOf(users.primes) } });
    const run = await asProducer(users.bob, ['collect', batch, '--timeout', '30']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('primes in 1..10 (4):\n  2 3 5 7\n');
    expect(run.stderr).toMatch(/1 result\(s\), 0 failed, 2 unexpected message\(s\) refused/);
    const reasons = run.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; reason?: string })
      .filter((l) => l.msg === 'unexpected message in the reply queue refused')
      .map((l) => l.reason);
    expect(reasons).toEqual([
      expect.stringMatching(new RegExp(`carries no user_id; primes results are taken only from broker user "${users.primes}"`)),
      expect.stringMatching(new RegExp(`sent by broker user "${users.squares}"; primes results are taken only from "${users.primes}"`)),
    ]);
  });

  it('when a job that the service dead-letters carries its sender\'s user_id, then the dead letter goes out (without it) and the service keeps its channel', async () => {
    services = await startServices(['prime-filter'], { env: { AMQP_URL: urlOf(users.primes) } });
    await withChannel(async (ch) => {
      const tap = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(tap.queue, 'pipeline.dead-letter', '');
      const correlationId = randomUUID();
      // alice's own user_id, which the broker accepts from her; the service must not copy it.
      expect(
        await brokerRefusal(urlOf(users.alice), (a) =>
          publishConfirmed(a, 'pipeline.ranges', 'range.primes', '{"from":"one","to":3}', { correlationId, userId: users.alice, contentType: 'application/json' }),
        ),
      ).toBeUndefined();
      const [dead] = await receive(ch, tap.queue, (m) => m.properties.correlationId === correlationId, 1);
      expect(dead!.properties.headers?.['x-pipeline-error-code']).toBeTruthy();
      expect(dead!.properties.userId).toBeUndefined();
      // Once, not again and again (a channel closed by a 406 would hand the job back, round and round).
      await new Promise((r) => setTimeout(r, 1000));
      let again = 0;
      for (let m = await ch.get(tap.queue, { noAck: true }); m; m = await ch.get(tap.queue, { noAck: true })) if (m.properties.correlationId === correlationId) again++;
      expect(again).toBe(0);
    });
    const run = await asProducer(users.bob, ['primes', '1', '10', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines[0]).toMatchObject({ primes: [2, 3, 5, 7] });
  });

  it('when the producer runs as a shared user with SERVICE_USERS=off, then it says so at start-up in one log line', async () => {
    const run = await runCli(['squares', '1', '2', '--no-wait'], { env: { LOG_LEVEL: 'warn', SERVICE_USERS: 'off' } });
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stderr.split('\n').filter((l) => l.includes('results are not bound to their senders'));
    expect(lines).toHaveLength(1);
  });
});
