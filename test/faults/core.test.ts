/**
 * Core fault rows (run in CI): no fault, consumers SIGKILLed mid-batch, a connection closed
 * by the broker's operator, and the broker itself SIGKILLed mid-batch. Every row counts what
 * went in and what came out, and checks each result against an oracle.
 */
import { rangeJob, urlJob, type JobSpec } from '@amqp-pipeline/producer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainWithCollect, duplicatesInFile, outputFile, Rig, submit } from './harness.js';
import { Ledger, Report, type RowFigures } from './ledger.js';
import { sleep } from './rabbit-node.js';

let rig: Rig;
const report = new Report();

beforeAll(async () => {
  rig = await Rig.start();
  await Promise.all([rig.startService('prime-filter'), rig.startService('square-mapper'), rig.startService('title-fetcher')]);
});

afterAll(async () => {
  report.print('fault rows: core');
  await rig?.stop();
});

/** Range jobs over consecutive blocks: `all` jobs bring back a primes and a squares result. */
function ranges(target: 'primes' | 'squares' | 'all', count: number, width: number, start = 1): JobSpec[] {
  return Array.from({ length: count }, (_, i) => rangeJob(target, { from: start + i * width, to: start + (i + 1) * width - 1 }));
}

function titlesFor(n: number, path: 'p' | 'slow' = 'p'): { jobs: JobSpec[]; titles: Record<string, string> } {
  const titles: Record<string, string> = {};
  const jobs = Array.from({ length: n }, (_, i) => {
    const url = `${rig.site.base}/${path}/${i}`;
    titles[url] = `Page ${i}`;
    return urlJob(url);
  });
  return { jobs, titles };
}

function expectClean(f: RowFigures): void {
  expect(f.confirmed, 'every job confirmed').toBe(f.attempted);
  expect(f.lost, 'confirmed jobs without a result').toBe(0);
  expect(f.outputDuplicates, 'duplicates left in the output').toBe(0);
  expect(f.unexpected, 'results for no job').toBe(0);
  expect(f.wrong, `results that disagree with the oracle: ${f.notes}`).toBe(0);
}

describe('fault rows: core', () => {
  it('when nothing fails (row 1), then a mixed batch comes back whole, exact, once, with nothing dead-lettered', async () => {
    const ledger = new Ledger('1 baseline');
    const client = await rig.client();
    const deadBefore = await rig.deadCount();
    const since = Date.now();
    const t = titlesFor(10);
    const jobs = [...ranges('all', 20, 5000), ...ranges('primes', 10, 100_000, 1_000_000), ...t.jobs];
    const run = submit(client, ledger, jobs, { timeoutMs: 60_000, titles: t.titles });
    const { outcome, error } = await run.done;
    expect(error).toBeUndefined();
    expect(outcome?.complete).toBe(true);
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.deadLettered = (await rig.deadCount(500)) - deadBefore;
    const f = report.add(ledger.figures());
    expectClean(f);
    expect(f.results).toBe(60);
    expect(f.rawDuplicates).toBe(0);
    expect(f.redeliveries).toBe(0);
    expect(f.deadLettered).toBe(0);
    await rig.closeClient(client);
  });

  it('when consumers are SIGKILLed mid-batch again and again and restarted (row 2), then every confirmed job still gets exactly one result', async () => {
    const ledger = new Ledger('2 consumer SIGKILL x4');
    const client = await rig.client();
    const deadBefore = await rig.deadCount();
    const since = Date.now();
    // Squares come in ~10 parts each (RESULT_PART_BYTES 16 KiB): a kill between parts is likely.
    const jobs = ranges('all', 100, 20_000);
    const run = submit(client, ledger, jobs, { timeoutMs: 120_000 });
    await run.firstResult;
    const kills: string[] = [];
    const recovered: Promise<number>[] = [];
    const victims = ['square-mapper', 'prime-filter', 'square-mapper', 'prime-filter'] as const;
    for (const name of victims) {
      // Wait for some progress (bounded), so each kill lands while work is in flight.
      const target = Math.min(ledger.expected - 1, ledger.complete + 15);
      await ledger.waitForComplete(target, 15_000).catch(() => {});
      if (ledger.complete >= ledger.expected - 4) break;
      const [victim] = rig.running(name);
      if (!victim) throw new Error(`${name} is not running`);
      ledger.markFault();
      const at = Date.now();
      victim.child.kill('SIGKILL');
      const exit = await victim.exited;
      expect(exit.signal).toBe('SIGKILL');
      const fresh = await rig.startService(name);
      kills.push(`${name} back in ${Date.now() - at} ms`);
      // Recovery of this kill: until the new process finishes its first job (measured in the background).
      recovered.push(
        rig.log
          .waitFor((l) => l.pid === fresh.pid && l.json?.msg === 'job done', 60_000, at, `${name} to finish a job after its restart`)
          .then((l) => l.at - at),
      );
    }
    const { outcome, error } = await run.done;
    expect(error).toBeUndefined();
    expect(outcome?.complete).toBe(true);
    ledger.recoveries = await Promise.all(recovered.map((p) => p.catch(() => -1)));
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.deadLettered = (await rig.deadCount(500)) - deadBefore;
    ledger.notes.push(`${kills.length} kills: ${kills.join(', ')}`);
    const f = report.add(ledger.figures());
    expectClean(f);
    expect(kills.length).toBeGreaterThanOrEqual(3);
    // Unacked jobs of a killed consumer come back: the broker counts each return.
    expect(f.redeliveries).toBeGreaterThan(0);
    expect(f.deadLettered).toBe(0);
    await rig.closeClient(client);
  });

  it('when the broker force-closes the services\' connections through the management API (row 7), then they reconnect and the batch completes', async () => {
    const ledger = new Ledger('7 connection force-closed (mgmt API)');
    const client = await rig.client();
    await rig.node.waitForManagement();
    const deadBefore = await rig.deadCount();
    const since = Date.now();
    const jobs = [...ranges('all', 60, 20_000, 3_000_001)];
    const run = submit(client, ledger, jobs, { timeoutMs: 120_000 });
    await run.firstResult;
    await ledger.waitForComplete(20, 30_000);
    const victims = [...(await rig.connectionsNamed('prime-filter@')), ...(await rig.connectionsNamed('square-mapper@'))];
    expect(victims.length).toBe(2);
    ledger.markFault();
    for (const c of victims) {
      const res = await rig.node.api('DELETE', `/connections/${encodeURIComponent(c.name)}`);
      expect(res.status).toBe(204);
    }
    // The services notice (CONNECTION_FORCED) and recover by themselves.
    const closedAt = Date.now();
    const lost = await rig.log.waitFor((l) => l.json?.msg === 'connection to broker lost; reconnecting', 10_000, since, 'a service to lose its connection');
    expect(JSON.stringify(lost.json)).toContain('CONNECTION_FORCED');
    // Recovery: each service consuming again, then finishing a job on the new connection.
    const recovered = (['prime-filter', 'square-mapper'] as const).map(async (name) => {
      const back = await rig.log.waitFor((l) => l.source === name && l.json?.msg === 'consuming', 30_000, closedAt, `${name} to consume again`);
      const job = await rig.log.waitFor((l) => l.source === name && l.json?.msg === 'job done', 30_000, back.at, `${name} to finish a job again`);
      return job.at - closedAt;
    });
    const { outcome, error } = await run.done;
    expect(error).toBeUndefined();
    expect(outcome?.complete).toBe(true);
    ledger.recoveries = await Promise.all(recovered);
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.deadLettered = (await rig.deadCount(500)) - deadBefore;
    const f = report.add(ledger.figures());
    expectClean(f);
    expect(f.deadLettered).toBe(0);
    expect(rig.running().length).toBe(3);
    await rig.closeClient(client);
  });

  it('when the broker is SIGKILLed mid-batch and restarted (row 5), then nothing confirmed is lost: the producer gives up on the run and `collect` gets the rest', async () => {
    const ledger = new Ledger('5 broker SIGKILL + restart');
    const client = await rig.client();
    const deadBefore = await rig.deadCount();
    const since = Date.now();
    // The slow pages keep the title fetcher busy for seconds: the kill lands mid-batch.
    const t = titlesFor(80, 'slow');
    const jobs = [...ranges('all', 40, 20_000, 6_000_001), ...t.jobs];
    // Both sessions write through one output file, as `pipeline ... -o FILE` and `pipeline collect -o FILE` do.
    const out = await outputFile(ledger.row);
    // A short timeout: the producer gives up while the broker is down (a longer one only keeps the node down longer).
    const run = submit(client, ledger, jobs, { timeoutMs: 10_000, titles: t.titles, file: out });
    await run.firstResult;
    await ledger.waitForComplete(90, 30_000);
    expect(ledger.complete, 'the batch must still be running when the broker dies').toBeLessThan(ledger.expected - 20);
    ledger.markFault();
    const killedAt = Date.now();
    await rig.node.kill();
    // The producer's connection is gone: it gives up on this run (the CLI exits 3 and says `collect`).
    // The producer cannot finish this run: it fails with PIPELINE_ERR_CHANNEL_CLOSED (CLI exit 3), or, as
    // observed in some runs, keeps waiting on the dead channel until its timeout (exit 4). Both leave the rest to `collect`.
    const first = await run.done;
    expect(first.confirmed).toBe(true);
    expect(first.outcome?.complete ?? false).toBe(false);
    const producer = first.outcome ? 'waited for its timeout (exit 4)' : `failed with ${String((first.error as { code?: string }).code)} (exit 3)`;
    await sleep(1000);
    await rig.node.restart();
    const upAfter = Date.now() - killedAt;
    // Every service reconnects by itself and consumes again.
    await rig.log.waitFor((l) => l.json?.msg === 'consuming' && l.source === 'prime-filter' && l.at > killedAt, 60_000, killedAt, 'prime-filter to consume again');
    await rig.log.waitFor((l) => l.json?.msg === 'consuming' && l.source === 'square-mapper' && l.at > killedAt, 60_000, killedAt, 'square-mapper to consume again');
    const drainFrom = ledger.emitted;
    // After the restart every job the services held is a redelivery, run one at a time (careful
    // mode): ~20 s for the slow pages; once, in CI, the last result took ~90 s. The drain is
    // what a user's `collect --timeout 150` would wait.
    const drain = await drainWithCollect(rig, ledger, first.batch, 150_000, out);
    await out.close();
    const firstAfter = ledger.emittedTimes[drainFrom];
    if (firstAfter !== undefined) ledger.recoveries = [firstAfter - killedAt];
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.deadLettered = (await rig.deadCount(500)) - deadBefore;
    ledger.notes.push(`producer ${producer}; node back after ${upAfter} ms; collect finished by itself: ${String(drain.collectComplete ?? false)} (it counted ${drain.collectSaw} done)`);
    const f = report.add(ledger.figures());
    console.log(`row 5 notes (the table cuts them): ${f.notes}`);
    await rig.dump(ledger);
    expect(f.confirmed).toBe(f.attempted);
    expect(f.lost, 'confirmed jobs without a result').toBe(0);
    expect(f.wrong, f.notes).toBe(0);
    expect(f.unexpected).toBe(0);
    // collect skips what the first session wrote to the file (even what it wrote after its last checkpoint).
    expect(f.outputDuplicates, 'results emitted by both the first run and collect').toBe(0);
    expect(duplicatesInFile(out.path), 'results in the output file twice').toBe(0);
    // Whether collect also ended by itself (not cut short by the drain) is in the row's notes:
    // in one CI run it had not, 3 s after the last result was in (not reproduced since).
    expect(rig.running().length).toBe(3);
    await rig.closeClient(client).catch(() => {});
  }, 300_000);
});
