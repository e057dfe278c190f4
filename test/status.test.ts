import { randomUUID } from 'node:crypto';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { userOfUrl } from '@amqp-pipeline/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { amqpUrl, batchQueue, freePort, hasManagement, mgmt, runCli } from './helpers.js';

/** The parts of `pipeline status --json` these tests read (see --help for all of it). */
interface Status {
  at: string;
  vhost: string;
  batches: { user: string | null; batch: string; queue: string; startedAt: string | null; ageSeconds: number | null; ready: number; unacked: number; consumers: number; state: string }[];
  sessions: { open: number; consuming: number };
  queues: { name: string; declared: boolean; ready: number; unacked: number; consumers: number; rateIn: number | null; rateOut: number | null; clients: unknown[]; retry: { ready: number; unacked: number } }[];
  dead: { name: string; messages: number };
}

/** The test broker's management API as PIPELINE_MANAGEMENT_URL, for `user` (default: the test URL's): the address helpers.ts's mgmt uses. */
function managementUrl(user?: { name: string; password: string }): string {
  const broker = new URL(amqpUrl());
  const u = new URL(`http://${broker.hostname}:${process.env.RABBITMQ_MANAGEMENT_PORT ?? '15672'}`);
  u.username = user ? encodeURIComponent(user.name) : broker.username || 'guest';
  u.password = user ? encodeURIComponent(user.password) : broker.password || 'guest';
  return u.toString();
}

async function status(env: Record<string, string> = {}): Promise<Status> {
  const run = await runCli(['status', '--json'], { env: { PIPELINE_MANAGEMENT_URL: managementUrl(), ...env } });
  expect(run.code, run.stderr).toBe(0);
  expect(run.lines, run.stdout).toHaveLength(1);
  return run.lines[0] as unknown as Status;
}

/**
 * `status --json` again until `done` holds of it: the management API's queue statistics are
 * refreshed every ~5 s, so a queue's depth shows some seconds after the publish.
 */
async function statusUntil(done: (s: Status) => boolean, timeoutMs = 15_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status();
    if (done(s) || Date.now() > deadline) return s;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

let started: ServiceProcess[] = [];
afterEach(async () => {
  await Promise.all(started.map((s) => s.stop()));
  started = [];
});

describe('pipeline status without its API', () => {
  it('when PIPELINE_MANAGEMENT_URL points at a closed port, then status exits 3 and names PIPELINE_MANAGEMENT_URL', async () => {
    const port = await freePort();
    const run = await runCli(['status'], { env: { PIPELINE_MANAGEMENT_URL: `http://guest:s3cret-pw@127.0.0.1:${port}` } });
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toContain(`cannot reach the RabbitMQ management API at http://127.0.0.1:${port} (ECONNREFUSED)`);
    expect(run.stderr).toContain('PIPELINE_MANAGEMENT_URL');
    expect(run.stderr).not.toContain('s3cret-pw');
    expect(run.stdout).toBe('');
  });
});

// .ci/run enables the management plugin; elsewhere these tests are skipped, saying so.
describe.skipIf(!(await hasManagement()))('pipeline status (management API)', () => {
  it('when a batch is published with --no-wait, then status lists it waiting, and reports pipeline.squares with its depth', async () => {
    const sent = await runCli(['squares', '1', '300', '--chunk', '100', '--no-wait', '--json']);
    expect(sent.code, sent.stderr).toBe(0);
    const batch = String(sent.lines[0]?.batch);
    expect(sent.lines[0]?.jobs).toBe(3);
    try {
      const squares = (s: Status) => s.queues.find((q) => q.name === 'pipeline.squares');
      const s = await statusUntil((s) => {
        const q = squares(s);
        const listed = s.batches.some((b) => b.batch === batch);
        // With nobody consuming, the jobs' message waits in the queue (once the stats show it).
        return listed && q !== undefined && (q.consumers > 0 || q.ready + q.unacked >= 1);
      });

      expect(Object.keys(s)).toEqual(['at', 'management', 'vhost', 'batches', 'sessions', 'queues', 'dead']);
      expect(Number.isNaN(Date.parse(s.at))).toBe(false);
      const row = s.batches.find((b) => b.batch === batch);
      expect(row, `batch ${batch} in ${JSON.stringify(s.batches.map((b) => b.batch))}`).toBeDefined();
      expect(row).toMatchObject({ user: userOfUrl(amqpUrl()), queue: batchQueue(batch), consumers: 0, state: 'waiting' });
      expect(row!.ready).toBeGreaterThanOrEqual(0);
      expect(row!.unacked).toBe(0);
      // The id's stamp is the publish time: a few seconds ago.
      expect(row!.startedAt).not.toBeNull();
      expect(row!.ageSeconds).toBeGreaterThanOrEqual(0);
      expect(row!.ageSeconds).toBeLessThan(120);

      const q = squares(s)!;
      expect(q).toMatchObject({ declared: true });
      for (const n of [q.ready, q.unacked, q.consumers, q.retry.ready, q.retry.unacked]) expect(typeof n).toBe('number');
      if (q.consumers === 0) expect(q.ready + q.unacked).toBeGreaterThanOrEqual(1);
      expect(s.queues.map((w) => w.name)).toEqual(['pipeline.primes', 'pipeline.squares', 'pipeline.titles']);
      expect(s.dead.name).toBe('pipeline.dead');
      expect(typeof s.dead.messages).toBe('number');

      // The table, for people: the work queues and the batches' header.
      const table = await runCli(['status'], { env: { PIPELINE_MANAGEMENT_URL: managementUrl() } });
      expect(table.code, table.stderr).toBe(0);
      expect(table.stdout).toMatch(/^WORK QUEUE\s+READY\s+UNACKED/m);
      expect(table.stdout).toMatch(/^pipeline\.squares\s/m);
      expect(table.stdout).toContain('BATCHES WAITING FOR COLLECTION');
    } finally {
      // Clean up what the test made: a service answers the jobs, `collect` takes the results and removes the batch's queues.
      const s = new ServiceProcess('square-mapper', { env: { AMQP_URL: amqpUrl() } });
      started.push(s);
      await s.ready;
      const collected = await runCli(['collect', batch, '--json', '--timeout', '60']);
      expect(collected.code, collected.stderr).toBe(0);
      expect(collected.lines).toHaveLength(3);
    }
  });

  it('when the broker user has no management tag, then status exits 78 saying which tag it needs', async () => {
    const user = { name: `pipeline-test-${randomUUID().slice(0, 8)}-untagged`, password: `pw-${randomUUID().slice(0, 8)}` };
    expect((await mgmt('PUT', `/users/${encodeURIComponent(user.name)}`, { password: user.password, tags: '' })).ok).toBe(true);
    try {
      const run = await runCli(['status'], { env: { PIPELINE_MANAGEMENT_URL: managementUrl(user) } });
      expect(run.code, run.stderr).toBe(78);
      // RabbitMQ answers 401 "Not management user" (a login refused outright reads "Login failed"; either names the user and the tag).
      expect(run.stderr).toContain(`user "${user.name}"`);
      expect(run.stderr).toContain('`management` (or `monitoring`');
      expect(run.stderr).toContain('PIPELINE_MANAGEMENT_URL');
      expect(run.stderr).not.toContain(user.password);
    } finally {
      await mgmt('DELETE', `/users/${encodeURIComponent(user.name)}`);
    }
  });
});
