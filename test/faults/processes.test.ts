/**
 * Process and flow rows (FAULTS=full): a service stopped with SIGTERM mid-batch, a service that
 * dies after its result is confirmed but before it acks, a job that kills its service on every
 * delivery, the producer killed mid-batch, a publish nobody can route, and a memory alarm.
 *
 * The two crash rows need no hook in the services: the TCP proxy recognises the moment in the
 * byte stream (the result's publish going out, the poison job coming in) and the test kills
 * the service right there.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEntry } from '@amqp-pipeline/devtools';
import { rangeJob, rangeJobs, urlJob, type JobSpec } from '@amqp-pipeline/producer';
import type { ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FULL, HEARTBEAT_SECONDS, Rig, submit } from './harness.js';
import { Ledger, Report } from './ledger.js';
import { sleep } from './rabbit-node.js';

let rig: Rig;
const report = new Report();

beforeAll(async () => {
  if (!FULL) return;
  rig = await Rig.start();
  await Promise.all([rig.startService('prime-filter'), rig.startService('square-mapper'), rig.startService('title-fetcher')]);
});

afterAll(async () => {
  report.print('fault rows: processes and flow');
  await rig?.stop();
});

function slowTitles(from: number, n: number, path: 'slow' | 'p' = 'slow'): { jobs: JobSpec[]; titles: Record<string, string> } {
  const titles: Record<string, string> = {};
  const jobs = Array.from({ length: n }, (_, i) => {
    const url = `${rig.site.base}/${path}/${from + i}`;
    titles[url] = `Page ${from + i}`;
    return urlJob(url);
  });
  return { jobs, titles };
}

async function ensureService(name: 'title-fetcher'): Promise<void> {
  if (rig.running(name).length === 0) await rig.startService(name);
}

describe.skipIf(!FULL)('fault rows: processes and flow', () => {
  it('when a service gets SIGTERM mid-batch (row 4), then it finishes what it holds, exits 0, and nothing is redelivered', async () => {
    const ledger = new Ledger('4 SIGTERM mid-batch');
    const client = await rig.client();
    const since = Date.now();
    const t = slowTitles(4000, 40);
    const run = submit(client, ledger, t.jobs, { timeoutMs: 60_000, titles: t.titles });
    await ledger.waitForComplete(8, 30_000);
    const [fetcher] = rig.running('title-fetcher');
    ledger.markFault();
    const t0 = Date.now();
    const exit = await fetcher!.stop('SIGTERM');
    const stoppedMs = Date.now() - t0;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(fetcher!.recentLines().some((l) => l.includes('"msg":"closed"'))).toBe(true);
    await rig.startService('title-fetcher');
    const { outcome, error } = await run.done;
    expect(error).toBeUndefined();
    expect(outcome?.complete).toBe(true);
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.notes.push(`stopped in ${stoppedMs} ms, exit 0; grace ${rig.serviceEnv().SHUTDOWN_GRACE_MS} ms`);
    const f = report.add(ledger.figures());
    expect(f).toMatchObject({ lost: 0, wrong: 0, outputDuplicates: 0, rawDuplicates: 0, redeliveries: 0 });
    await rig.closeClient(client);
  });

  it('when a service dies after its result is confirmed but before it acks (row 3), then the job runs again and the producer drops the second result', async () => {
    const ledger = new Ledger('3 crash between confirm and ack');
    const client = await rig.client();
    const since = Date.now();
    await ensureService('title-fetcher');
    const n = 900_000 + Math.floor(Math.random() * 99_999);
    const t = slowTitles(n, 1, 'p');
    let caught = false;
    // The result's publish carries the title ("Page <n>"); the job itself only has the URL.
    const remove = rig.proxy.trap({
      direction: 'up',
      marker: [`"title":"Page ${n}"`],
      hold: true,
      onTrip: (conn) => {
        if (caught) return;
        caught = true;
        ledger.markFault();
        // The publish is on its way; its ack never leaves. Give the broker a moment to confirm, then crash.
        setTimeout(() => {
          for (const s of rig.running('title-fetcher')) s.child.kill('SIGKILL');
          conn.reset();
        }, 300);
      },
    });
    const run = submit(client, ledger, t.jobs, { timeoutMs: 60_000, titles: t.titles });
    for (let i = 0; i < 200 && !caught; i++) await sleep(100);
    expect(caught, 'the result publish passed the proxy').toBe(true);
    await ledger.waitForComplete(1, 20_000);
    remove();
    await sleep(500);
    const again = await rig.startService('title-fetcher');
    const redone = await rig.log.waitFor((l) => l.pid === again.pid && l.json?.msg === 'job done', 30_000, since, 'the job to run again');
    ledger.recoveries = [redone.at - since];
    const { outcome, error } = await run.done;
    expect(error).toBeUndefined();
    expect(outcome?.complete).toBe(true);
    await sleep(1000);
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.notes.push(`job done twice: ${JSON.stringify([...rig.log.jobsDone(since).values()])}`);
    const f = report.add(ledger.figures());
    await rig.dump(ledger);
    expect(f).toMatchObject({ results: 1, lost: 0, wrong: 0, outputDuplicates: 0 });
    expect(f.redeliveries).toBe(1);
    // The second result reaches the reply queue after the batch is complete and its queue deleted,
    // or arrives while it still runs and is dropped: either way it is never printed twice.
    await rig.closeClient(client);
  });

  it('when a job kills its service whenever it is worked on (row 12), then it ends in pipeline.dead with the reason and an ok:false answer, and the jobs delivered with it still get their results', async () => {
    const ledger = new Ledger('12 poison job (crashes its service)');
    const client = await rig.client();
    const since = Date.now();
    await ensureService('title-fetcher');
    const token = `poison-${randomBytes(4).toString('hex')}`;
    const poisonUrl = `${rig.site.base}/p/1?${token}`;
    const innocent = slowTitles(12_000, 10);
    // The poison: fetching its page kills the service (before any answer), every time.
    const poisonPage = rig.poisonFetch(token);
    const dead: ConsumeMessage[] = [];
    await rig.admin(async (ch) => {
      const tap = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(tap.queue, 'pipeline.dead-letter', '');
      await ch.consume(tap.queue, (m) => m && dead.push(m), { noAck: true });
      const jobs = [urlJob(poisonUrl), ...innocent.jobs];
      // The poison's answer is an error: ok:false with PIPELINE_ERR_POISON_MESSAGE.
      const run = submit(client, ledger, jobs, { timeoutMs: 45_000, titles: { ...innocent.titles, [poisonUrl]: { code: 'PIPELINE_ERR_POISON_MESSAGE' } } });
      // Restart the service after each crash, a bounded number of times, until the poison is dead-lettered.
      await poisonPage.restartUntil(() => dead.some((m) => m.content.toString().includes(token)));
      await run.done;
      await sleep(500);
    });
    const poison = dead.filter((m) => m.content.toString().includes(token));
    const innocentsDead = dead.filter((m) => !m.content.toString().includes(token) && String(m.properties.replyTo ?? '').startsWith('pipeline.replies.'));
    ledger.deadLettered = dead.length;
    ledger.redeliveries = rig.log.redeliveries(since);
    const death = poison[0]?.properties.headers?.['x-death'] as { reason?: string; count?: number }[] | undefined;
    const code = poison[0]?.properties.headers?.['x-pipeline-error-code'];
    const kills = poisonPage.kills();
    ledger.notes.push(
      `${kills} crashes; poison dead-lettered: ${poison.length} (${code ? `by the service: ${String(code)}` : `by the broker: x-death reason ${String(death?.[0]?.reason)}`}); innocent jobs dead-lettered with it: ${innocentsDead.length}`,
    );
    const f = report.add(ledger.figures());
    expect(poison).toHaveLength(1);
    expect(poison[0]?.properties.headers?.['x-pipeline-reason']).toMatch(/delivered \d+ times without being finished/);
    expect(kills).toBeLessThanOrEqual(5);
    // The promise: the crashes take nobody else with them, and even the poison gets an answer.
    expect(innocentsDead, 'innocent jobs dead-lettered because they were in flight at each crash').toHaveLength(0);
    expect(f.lost).toBe(0);
    await rig.closeClient(client);
  });

  it('when the producer is SIGKILLed mid-batch (row 13), then `pipeline collect` writes every remaining result, and each is in the output file once', async () => {
    const ledger = new Ledger('13 producer SIGKILL, then collect');
    await ensureService('title-fetcher');
    const t = slowTitles(13_000, 40);
    const env = { ...process.env, AMQP_URL: rig.proxy.url, HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS), LOG_LEVEL: 'error' };
    const out = join(mkdtempSync(join(tmpdir(), 'faults-out-')), 'titles.jsonl');
    const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter((l) => l.endsWith('}')) : []);
    const cli = spawn(process.execPath, [cliEntry(), 'titles', '--file', '-', '-o', out], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    cli.stdin.end(Object.keys(t.titles).join('\n'));
    const exited = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)));
    // Kill it once it has written 10 results.
    const deadline = Date.now() + 30_000;
    while (lines().length < 10 && Date.now() < deadline && cli.exitCode === null) await sleep(50);
    ledger.markFault();
    cli.kill('SIGKILL');
    await exited;
    const printed = lines().length;
    expect(printed, 'the first run wrote results before it was killed').toBeGreaterThan(0);
    const batch = String((JSON.parse(lines()[0] as string) as { batch: string }).batch);
    ledger.expect(batch, t.jobs, t.titles);
    ledger.confirmed = t.jobs.length; // results are written only after the manifest, i.e. after every confirm
    const collect = spawn(process.execPath, [cliEntry(), 'collect', batch, '-o', out, '--timeout', '20'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    collect.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => collect.once('exit', (c) => resolve(c)));
    // The output is the file: every line of it goes to the ledger, which counts what is there twice.
    for (const line of lines()) {
      const { batch: b, id, input, ...result } = JSON.parse(line) as Record<string, unknown>;
      ledger.record({ type: 'result', batch: String(b), id: String(id), input: input as Record<string, unknown>, result: result as never });
    }
    ledger.notes.push(`first run wrote ${printed}, collect wrote ${lines().length - printed} and exited ${String(code)}`);
    const f = report.add(ledger.figures());
    expect(f).toMatchObject({ lost: 0, wrong: 0, unexpected: 0 });
    expect(f.outputDuplicates, 'results in the output file twice').toBe(0);
    expect(code, stderr).toBe(0);
  });

  it('when no queue is bound for a job (row 14), then the publish is refused with PIPELINE_ERR_UNROUTABLE, not dropped', async () => {
    const ledger = new Ledger('14 unroutable publish');
    const client = await rig.client(); // declares the topology: unbind after it
    await rig.admin((ch) => ch.unbindQueue('pipeline.titles', 'pipeline.urls', 'url.title'));
    try {
      const t = slowTitles(14_000, 1, 'p');
      const run = submit(client, ledger, t.jobs, { timeoutMs: 10_000, titles: t.titles });
      const first = await run.done;
      expect(first.outcome).toBeUndefined();
      expect((first.error as { code?: string }).code).toBe('PIPELINE_ERR_UNROUTABLE');
      ledger.notes.push(`rejected: ${String((first.error as Error).message)}`);
      report.add({ ...ledger.figures(), lost: 0 });
    } finally {
      await rig.admin((ch) => ch.bindQueue('pipeline.titles', 'pipeline.urls', 'url.title'));
      await rig.closeClient(client);
    }
  });

  it('when only one half of a primes-and-squares request can be routed (row 14b), then the publish is refused, not half-delivered', async () => {
    // The producer sends `pipeline range` as one job per routing key (rangeJobs('all')), so
    // `mandatory` sees the half that has no queue.
    const ledger = new Ledger('14b half-routable request (range)');
    const client = await rig.client();
    await rig.admin((ch) => ch.unbindQueue('pipeline.squares', 'pipeline.ranges', 'range.squares'));
    try {
      const run = submit(client, ledger, rangeJobs('all', { from: 2, to: 30 }), { timeoutMs: 5000 });
      const first = await run.done;
      ledger.notes.push(first.error ? `rejected: ${String((first.error as { code?: string }).code)}` : `accepted; ${first.outcome?.missing.length ?? 0} result(s) never came (waited for the timeout)`);
      report.add(ledger.figures());
      expect((first.error as { code?: string } | undefined)?.code, 'a job whose expected results cannot all be produced').toBe('PIPELINE_ERR_UNROUTABLE');
    } finally {
      await rig.admin((ch) => ch.bindQueue('pipeline.squares', 'pipeline.ranges', 'range.squares'));
      await rig.closeClient(client);
    }
  });

  it('when the broker raises a memory alarm mid-batch (row 10), then publishing pauses, nothing fails, and everything resumes when it clears', async () => {
    const ledger = new Ledger('10 memory alarm');
    const client = await rig.client();
    await ensureService('title-fetcher');
    const since = Date.now();
    const t = slowTitles(10_000, 40);
    const run = submit(client, ledger, [...t.jobs, ...Array.from({ length: 20 }, (_, i) => rangeJob('all', { from: i * 1000 + 1, to: (i + 1) * 1000 }))], {
      timeoutMs: 90_000,
      titles: t.titles,
    });
    await ledger.waitForComplete(45, 30_000);
    ledger.markFault();
    const t0 = Date.now();
    await rig.node.ctl(['set_vm_memory_high_watermark', '0.0000001']);
    try {
      await rig.log.waitFor((l) => l.json?.msg === 'broker blocked publishing (resource alarm)', 15_000, t0, 'a service to be blocked');
      const atBlock = ledger.emitted;
      // A second batch during the alarm: its publishes wait, they do not fail.
      const t2 = slowTitles(10_100, 5, 'p');
      const second = submit(client, ledger, t2.jobs, { timeoutMs: 90_000, titles: t2.titles });
      await sleep(4000);
      const duringAlarm = ledger.emitted - atBlock;
      ledger.notes.push(`${duringAlarm} results during 4 s of alarm`);
      expect(duringAlarm).toBeLessThanOrEqual(5);
    } finally {
      await rig.node.ctl(['set_vm_memory_high_watermark', '0.4']);
    }
    const cleared = Date.now();
    const { outcome, error } = await run.done;
    expect(error).toBeUndefined();
    expect(outcome?.complete).toBe(true);
    await ledger.waitForComplete(ledger.expected, 60_000);
    ledger.recoveries = [(ledger.emittedTimes.find((x) => x >= cleared) ?? cleared) - cleared];
    ledger.redeliveries = rig.log.redeliveries(since);
    const f = report.add(ledger.figures());
    expect(f).toMatchObject({ lost: 0, wrong: 0, outputDuplicates: 0 });
    expect(f.confirmed).toBe(f.attempted);
    await rig.closeClient(client);
  });
});
