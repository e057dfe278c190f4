import { startServices, stopServices, type ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, PipelineSession, rangeJob } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl, batchQueue, naivePrimes, withChannel } from './helpers.js';

let services: ServiceProcess[] = [];
let client: PipelineClient;

beforeAll(async () => {
  services = await startServices(['prime-filter', 'square-mapper'], {
    // Small parts, so a list of a few thousand squares comes in several messages.
    env: { AMQP_URL: amqpUrl(), LOG_LEVEL: 'info', RESULT_PART_BYTES: '4096' },
  });
  client = await PipelineClient.connect(loadConfig({ ...process.env, AMQP_URL: amqpUrl() }), createLogger('test', { level: 'error' }, 2));
});

afterAll(async () => {
  await client?.close();
  await stopServices(services);
});

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `fn` on a new session, closes it whatever happens, and returns it (closed). */
async function withSession(fn: (session: PipelineSession) => Promise<void>): Promise<PipelineSession> {
  const session = await client.session();
  try {
    await fn(session);
  } finally {
    await session.close();
  }
  return session;
}

const queueExists = (name: string) =>
  withChannel(async (ch) => {
    ch.on('error', () => {}); // a missing queue closes the channel with a 404
    try {
      await ch.checkQueue(name);
      return true;
    } catch {
      return false;
    }
  });

describe('a session (request/response over one long-lived reply queue)', () => {
  it('when jobs are called one at a time, then each call resolves with its own result, and the queue is declared once', async () => {
    const session = await withSession(async (session) => {
      expect(session.replyQueue).toBe(batchQueue(session.id));
      expect(session.id).toMatch(/^session-/);
      expect(await queueExists(session.replyQueue)).toBe(true);
      for (let i = 0; i < 20; i++) {
        const from = i * 100;
        const result = await session.call(rangeJob('primes', { from, to: from + 99 }));
        expect(result).toEqual({ ok: true, kind: 'primes', primes: naivePrimes(from, from + 99) });
      }
      expect(session.waiting).toBe(0);
    });
    // Nothing left in it: deleted at close.
    expect(await queueExists(session.replyQueue)).toBe(false);
  });

  it('when many calls are in flight at once, then every one gets its own result (matched by correlation id)', async () => {
    await withSession(async (session) => {
      const calls = Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0 ? session.call(rangeJob('primes', { from: i * 1000, to: i * 1000 + 999, count: true })) : session.call(rangeJob('squares', { from: -i, to: i })),
      );
      const results = await Promise.all(calls);
      results.forEach((r, i) => {
        if (i % 2 === 0) expect(r).toMatchObject({ ok: true, kind: 'primes', summary: { count: naivePrimes(i * 1000, i * 1000 + 999).length } });
        else expect(r).toEqual({ ok: true, kind: 'squares', squares: Array.from({ length: 2 * i + 1 }, (_, k) => (k - i) ** 2) });
      });
    });
  });

  it('when a list comes back in parts, then the call resolves with the whole list in order', async () => {
    await withSession(async (session) => {
      const result = await session.call(rangeJob('squares', { from: 1, to: 5000 }));
      expect(result).toEqual({ ok: true, kind: 'squares', squares: Array.from({ length: 5000 }, (_, i) => (i + 1) ** 2) });
    });
  });

  it('when a service answers ok:false, then the call resolves with that answer (errors are data)', async () => {
    await withSession(async (session) => {
      const result = await session.call(rangeJob('primes', { from: 1, to: 20_000_000 }));
      expect(result).toMatchObject({ ok: false, kind: 'primes', error: { code: 'PIPELINE_ERR_LIMIT_EXCEEDED' } });
    });
  });

  it('when a result comes after its call gave up, then the call has rejected with a timeout, and the late result is dropped, not given to another call', async () => {
    await withSession(async (session) => {
      // About half a second of sieving, against a 20 ms wait.
      const slow = session.call(rangeJob('primes', { from: 1, to: 3e9, count: true }), { timeoutMs: 20 });
      await expect(slow).rejects.toMatchObject({ code: 'PIPELINE_ERR_TIMEOUT' });
      expect(session.waiting).toBe(0);
      // The next calls get their own results while the late one arrives meanwhile.
      for (let i = 0; i < 5; i++) {
        const result = await session.call(rangeJob('primes', { from: 1, to: 100, count: true }));
        expect(result).toMatchObject({ ok: true, summary: { count: 25 } });
      }
      // The late result comes, and is consumed and dropped.
      expect(session.abandoned).toBe(1);
      await until(() => session.abandoned === 0, 20_000);
      expect((await withChannel((ch) => ch.checkQueue(session.replyQueue))).messageCount).toBe(0);
      expect(session.waiting).toBe(0);
    });
  });

  it('when the reply queue is deleted under a session, then it declares it again and later calls still work', async () => {
    await withSession(async (session) => {
      await session.call(rangeJob('primes', { from: 1, to: 10 }));
      await withChannel((ch) => ch.deleteQueue(session.replyQueue));
      // The session declares its queue again within a moment (a job sent before that would be
      // answered to a queue that does not exist).
      await until(() => queueExists(session.replyQueue), 10_000);
      const result = await session.call(rangeJob('primes', { from: 1, to: 10 }), { timeoutMs: 10_000 });
      expect(result).toEqual({ ok: true, kind: 'primes', primes: [2, 3, 5, 7] });
    });
  });

  it('when a job would bring two results, or the session is closed, then call refuses at once', async () => {
    const session = await client.session();
    await expect(session.call(rangeJob('all', { from: 1, to: 10 }))).rejects.toThrow(/call once per kind/);
    const pending = session.call(rangeJob('primes', { from: 1, to: 1e9, count: true }));
    await new Promise((r) => setTimeout(r, 20)); // published
    const outcome = pending.then(() => 'resolved', (err: unknown) => err);
    await session.close();
    expect(await outcome).toMatchObject({ code: 'PIPELINE_ERR_CHANNEL_CLOSED' });
    await expect(session.call(rangeJob('primes', { from: 1, to: 10 }))).rejects.toThrow(/closed/);
    expect(session).toBeInstanceOf(PipelineSession);
    // Its result is still to come: the queue is left for it (to expire), not deleted, so the
    // result does not end up in pipeline.dead. Then this test removes it.
    await until(async () => (await withChannel((ch) => ch.checkQueue(session.replyQueue))).messageCount === 1, 20_000);
    await withChannel((ch) => ch.deleteQueue(session.replyQueue));
  });
});
