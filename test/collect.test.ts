import { spawn } from 'node:child_process';
import { ServiceProcess, cliEntry } from '@amqp-pipeline/devtools';
import { PipelineClient, rangeJob } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { amqpUrl, runCli, withChannel } from './helpers.js';

let started: ServiceProcess[] = [];
afterEach(async () => {
  await Promise.all(started.map((s) => s.stop()));
  started = [];
});

async function start(name: 'prime-filter' | 'square-mapper'): Promise<void> {
  const s = new ServiceProcess(name, { env: { AMQP_URL: amqpUrl() } });
  started.push(s);
  await s.ready;
}

/** These tests need the work queues to themselves: skip (saying why) if some other consumer is attached. */
async function needIdle(ctx: TestContext, ...queues: string[]): Promise<void> {
  for (const q of queues) {
    const consumers = await withChannel(async (ch) => (await ch.checkQueue(q)).consumerCount);
    if (consumers > 0) ctx.skip(`${q} already has ${consumers} consumer(s) on this broker; this test needs it idle`);
  }
}

describe('results outlive the producer', () => {
  it('when no service is consuming, then the CLI warns, times out with exit 4, and `collect` gets the result once a service starts', async (ctx) => {
    await needIdle(ctx, 'pipeline.squares');
    const first = await runCli(['squares', '1', '3', '--timeout', '1', '--json']);
    expect(first.code, first.stderr).toBe(4);
    expect(first.lines).toEqual([]);
    expect(first.stderr).toContain('no service is consuming pipeline.squares');
    const batch = /pipeline collect (\S+)`/.exec(first.stderr)?.[1];
    expect(batch).toBeDefined();

    await start('square-mapper');
    const later = await runCli(['collect', batch!, '--json']);
    expect(later.code, later.stderr).toBe(0);
    expect(later.lines).toEqual([{ batch, id: `${batch}.0`, input: { from: 1, to: 3 }, ok: true, kind: 'squares', squares: [1, 4, 9] }]);
  });

  it('when a run times out after printing some results, then `collect` prints only the rest', async (ctx) => {
    await needIdle(ctx, 'pipeline.primes', 'pipeline.squares');
    await start('square-mapper');
    const first = await runCli(['range', '1', '10', '--timeout', '2', '--json']);
    expect(first.code, first.stderr).toBe(4);
    expect(first.lines.map((l) => l.kind)).toEqual(['squares']);
    const batch = first.lines[0]?.batch as string;

    await start('prime-filter');
    const later = await runCli(['collect', batch, '--json']);
    expect(later.code, later.stderr).toBe(0);
    expect(later.lines).toEqual([{ batch, id: `${batch}.0`, input: { from: 1, to: 10 }, ok: true, kind: 'primes', primes: [2, 3, 5, 7] }]);
  });
});

describe('closing the client', () => {
  it('when the client is closed while `collect` waits, then collect ends at once, incomplete, and the result stays queued', async (ctx) => {
    await needIdle(ctx, 'pipeline.squares');
    const config = loadConfig({ ...process.env, AMQP_URL: amqpUrl() });
    const log = createLogger('collect-close-test', { level: 'warn' });
    const producer = await PipelineClient.connect(config, log);
    const { batch } = await producer.submit([rangeJob('squares', { from: 1, to: 3 })], { wait: false, output: 'independent', timeoutMs: 10_000 });
    await producer.close();

    const client = await PipelineClient.connect(config, log);
    const collecting = client.collect(batch, { timeoutMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const closedAt = Date.now();
    await client.close();
    const outcome = await collecting;
    expect(outcome.complete).toBe(false);
    expect(Date.now() - closedAt, 'collect ended with its client, not at its 60 s timeout').toBeLessThan(15_000);

    // Nothing was lost: a service and a new collect finish the batch.
    await start('square-mapper');
    const later = await runCli(['collect', batch, '--json']);
    expect(later.code, later.stderr).toBe(0);
    expect(later.lines.map((l) => l.squares)).toEqual([[1, 4, 9]]);
  });
});

describe('interrupting the CLI', () => {
  it('when Ctrl-C stops a waiting CLI, then it exits 130 and says how to collect what did not arrive', async (ctx) => {
    await needIdle(ctx, 'pipeline.squares');
    const child = spawn(process.execPath, [cliEntry(), 'squares', '1', '3', '--timeout', '60'], {
      env: { ...process.env, AMQP_URL: amqpUrl() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    // Interrupt once it has published and is waiting (it warns that nobody consumes the queue).
    await new Promise<void>((resolve) =>
      child.stderr.on('data', (d: string) => {
        stderr += d;
        if (stderr.includes('no service is consuming')) resolve();
      }),
    );
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(130);
    expect(stderr).toContain('interrupted with 1 result(s) missing');
    const batch = /pipeline collect (\S+)`/.exec(stderr)?.[1];
    await start('square-mapper');
    const later = await runCli(['collect', batch!, '--json']);
    expect(later.code, later.stderr).toBe(0);
    expect(later.lines[0]).toMatchObject({ ok: true, squares: [1, 4, 9] });
  });
});
