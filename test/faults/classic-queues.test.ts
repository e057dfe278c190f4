/**
 * WORK_QUEUE_TYPE=classic on a throwaway node (run in CI): a type clash with existing quorum
 * queues is a clear configuration error; with classic work queues a mixed batch comes back
 * whole; and a job that kills its service on every delivery is still parked after a bounded
 * number of crashes, counted by the services themselves (a classic queue counts no
 * deliveries), while the jobs delivered with it get their results.
 */
import { randomBytes } from 'node:crypto';
import { PipelineClient, rangeJob, urlJob, type JobSpec } from '@amqp-pipeline/producer';
import { createLogger, ErrorCodes, isPipelineError, loadConfig } from '@amqp-pipeline/shared';
import type { ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rig, submit } from './harness.js';
import { Ledger, Report } from './ledger.js';
import { sleep } from './rabbit-node.js';

const CLASSIC = { WORK_QUEUE_TYPE: 'classic' };
let rig: Rig;
const report = new Report();

beforeAll(async () => {
  rig = await Rig.start({ serviceEnv: CLASSIC, clientEnv: CLASSIC });
});

afterAll(async () => {
  report.print('fault rows: classic work queues');
  await rig?.stop();
});

describe('classic work queues (WORK_QUEUE_TYPE=classic)', () => {
  it('when the work queues exist as quorum queues, then a classic producer fails at connect with a configuration error that says how to change the type', async () => {
    // A quorum deployment came first: its producer declared the default topology.
    const config = loadConfig({ AMQP_URL: rig.node.amqpUrl, CONNECT_RETRIES: '1', LOG_LEVEL: 'silent' });
    const quorumClient = await PipelineClient.connect(config, createLogger('test', { level: 'silent' }));
    await quorumClient.close();

    let err: unknown;
    try {
      const classic = await PipelineClient.connect({ ...config, WORK_QUEUE_TYPE: 'classic' }, createLogger('test', { level: 'silent' }));
      await classic.close();
    } catch (e) {
      err = e;
    }
    expect(isPipelineError(err) && err.code).toBe(ErrorCodes.CONFIG);
    expect((err as Error).message).toMatch(/queue "pipeline\.\w+" already exists as a quorum queue, but this process declares it as classic/);
    expect((err as Error).message).toContain('rabbitmqctl delete_queue');

    // The way out the message gives: delete the (empty) queues; the next start declares them anew.
    await rig.admin(async (ch) => {
      for (const q of ['pipeline.primes', 'pipeline.squares', 'pipeline.titles']) await ch.deleteQueue(q);
    });
  });

  it('when the services and the producer use classic work queues, then the queues are classic and a mixed batch comes back whole, exact and once', async () => {
    await Promise.all([rig.startService('prime-filter'), rig.startService('square-mapper'), rig.startService('title-fetcher')]);
    for (const q of ['pipeline.primes', 'pipeline.squares', 'pipeline.titles']) {
      const { body } = await rig.node.api<{ type?: string; arguments?: Record<string, unknown> }>('GET', `/queues/%2F/${q}`);
      expect(body.type, q).toBe('classic');
      expect(body.arguments?.['x-delivery-limit'], q).toBeUndefined();
    }
    const ledger = new Ledger('C1 classic work queues, no fault');
    const client = await rig.client();
    const titles: Record<string, string> = {};
    const pages = Array.from({ length: 20 }, (_, i) => {
      const url = `${rig.site.base}/p/${i}`;
      titles[url] = `Page ${i}`;
      return urlJob(url);
    });
    const jobs: JobSpec[] = [...Array.from({ length: 30 }, (_, i) => rangeJob('all', { from: 1 + i * 100, to: (i + 1) * 100 })), ...pages];
    const run = submit(client, ledger, jobs, { timeoutMs: 60_000, titles });
    const { outcome, error } = await run.done;
    expect(error).toBeUndefined();
    expect(outcome?.complete).toBe(true);
    ledger.deadLettered = await rig.deadCount(300);
    const f = report.add(ledger.figures());
    expect(f).toMatchObject({ lost: 0, wrong: 0, unexpected: 0, outputDuplicates: 0, deadLettered: 0 });
    expect(f.results).toBe(80); // 30 primes + 30 squares + 20 titles
    await rig.closeClient(client);
  });

  it('when a job kills its service whenever it is worked on, then the services count its deliveries and park it in pipeline.dead with an ok:false answer, and the jobs delivered with it still get their results', async () => {
    const ledger = new Ledger('C2 poison job on a classic queue');
    const client = await rig.client();
    const since = Date.now();
    const token = `poison-${randomBytes(4).toString('hex')}`;
    const poisonUrl = `${rig.site.base}/p/1?${token}`;
    const titles: Record<string, string | { code: string }> = { [poisonUrl]: { code: 'PIPELINE_ERR_POISON_MESSAGE' } };
    const innocent = Array.from({ length: 10 }, (_, i) => {
      const url = `${rig.site.base}/slow/${20_000 + i}`;
      titles[url] = `Page ${20_000 + i}`;
      return urlJob(url);
    });
    const poisonPage = rig.poisonFetch(token);
    const dead: ConsumeMessage[] = [];
    try {
      await rig.admin(async (ch) => {
        const tap = await ch.assertQueue('', { exclusive: true });
        await ch.bindQueue(tap.queue, 'pipeline.dead-letter', '');
        await ch.consume(tap.queue, (m) => m && dead.push(m), { noAck: true });
        const run = submit(client, ledger, [urlJob(poisonUrl), ...innocent], { timeoutMs: 60_000, titles });
        // Restart the fetcher after each crash, a bounded number of times, until the poison is parked.
        await poisonPage.restartUntil(() => dead.some((m) => m.content.toString().includes(token)));
        const { outcome, error } = await run.done;
        expect(error).toBeUndefined();
        expect(outcome?.complete).toBe(true);
        await sleep(500);
      });
    } finally {
      poisonPage.remove();
    }
    const kills = poisonPage.kills();
    const poison = dead.filter((m) => m.content.toString().includes(token));
    const innocentsDead = dead.filter((m) => !m.content.toString().includes(token) && String(m.properties.replyTo ?? '').startsWith('pipeline.replies.'));
    const requeued = rig.log.find('redelivered job put back with its delivery count (classic work queue)', since).length;
    ledger.deadLettered = dead.length;
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.notes.push(`${kills} crashes; ${requeued} redelivered jobs put back with their count; poison parked: ${poison.length} (${String(poison[0]?.properties.headers?.['x-pipeline-error-code'])})`);
    const f = report.add(ledger.figures());
    expect(poison).toHaveLength(1);
    expect(poison[0]?.properties.headers?.['x-pipeline-reason']).toMatch(/delivered 5 times without being finished/);
    expect(poison[0]?.properties.headers?.['x-pipeline-redeliveries']).toBe(3);
    // The 5th delivery is parked before it runs: four crashes, not more.
    expect(kills).toBe(4);
    expect(requeued).toBeGreaterThanOrEqual(4);
    expect(innocentsDead, 'innocent jobs dead-lettered because they were in flight at a crash').toHaveLength(0);
    // The poison went in one message with nine innocents: that message, delivered a third time, was
    // split into its jobs, and only the poison job was counted to the limit.
    expect(rig.log.find('a redelivered bundle split into its jobs, each alone again in the work queue', since).length).toBeGreaterThanOrEqual(1);
    expect(f).toMatchObject({ lost: 0, wrong: 0, unexpected: 0, outputDuplicates: 0 });
    await rig.closeClient(client);
  });
});
