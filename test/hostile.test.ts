/**
 * A second, hostile client on the same broker (issue 23), with the real CLI and square-mapper:
 * a forged reply put into a batch's reply queue before the real one, a job that borrows another
 * batch's reply_to and correlation id, and a job that aims its answer at a work queue. Each is
 * refused; the victim's output is exact.
 */
import { startServices, stopServices, type ServiceProcess } from '@amqp-pipeline/devtools';
import amqp, { type ConfirmChannel } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { amqpUrl, receive, runCli, withChannel } from './helpers.js';

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
      ch.sendToQueue(`pipeline.replies.${batch}`, Buffer.from('{"ok":true,"kind":"squares","squares":[666,777,888]}'), {
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
      expect(replyTo).toBe(`pipeline.replies.${batch}`);
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
