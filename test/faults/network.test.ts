/**
 * Network and broker-restart rows (FAULTS=full): a black hole between every process and the
 * broker (heartbeats must notice it), every connection reset at once, and the broker's
 * RabbitMQ application stopped and started (clients get CONNECTION_FORCED).
 *
 * In each, the producer's own connection breaks too: like the CLI (exit 3, "run pipeline
 * collect"), the row then drains the batch with `collect` from a new producer.
 */
import { rangeJob, urlJob, type JobSpec } from '@amqp-pipeline/producer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainWithCollect, duplicatesInFile, FULL, HEARTBEAT_SECONDS, outputFile, Rig, submit } from './harness.js';
import { Ledger, Report, type RowFigures } from './ledger.js';
import { sleep } from './rabbit-node.js';

let rig: Rig;
const report = new Report();
const SERVICES = ['prime-filter', 'square-mapper', 'title-fetcher'] as const;

beforeAll(async () => {
  if (!FULL) return;
  rig = await Rig.start();
  await Promise.all(SERVICES.map((s) => rig.startService(s)));
});

afterAll(async () => {
  report.print('fault rows: network and broker restarts');
  await rig?.stop();
});

function batch(offset: number): { jobs: JobSpec[]; titles: Record<string, string> } {
  const titles: Record<string, string> = {};
  const slow = Array.from({ length: 60 }, (_, i) => {
    const url = `${rig.site.base}/slow/${offset + i}`;
    titles[url] = `Page ${offset + i}`;
    return urlJob(url);
  });
  const ranges = Array.from({ length: 30 }, (_, i) => rangeJob('all', { from: offset * 1000 + i * 10_000 + 1, to: offset * 1000 + (i + 1) * 10_000 }));
  return { jobs: [...ranges, ...slow], titles };
}

/** After a fault: every service consuming again (reconnected, topology declared); the slowest, ms from `t0`. */
async function servicesBack(t0: number): Promise<number> {
  const times = await Promise.all(
    SERVICES.map(async (name) => (await rig.log.waitFor((l) => l.source === name && l.json?.msg === 'consuming', 60_000, t0, `${name} to consume again`)).at - t0),
  );
  return Math.max(...times);
}

/** What the producer did when its own connection broke. */
function producerOutcome(first: { outcome?: { complete: boolean } | undefined; error: unknown }): string {
  if (first.outcome) return first.outcome.complete ? 'completed anyway' : 'gave up as if timed out (exit 4)';
  return `failed with ${String((first.error as { code?: string }).code)} (exit 3)`;
}

function expectNoLoss(f: RowFigures): void {
  expect(f.confirmed, 'every job confirmed').toBe(f.attempted);
  expect(f.lost, 'confirmed jobs without a result').toBe(0);
  expect(f.wrong, f.notes).toBe(0);
  expect(f.unexpected).toBe(0);
  expect(f.deadLettered).toBe(0);
}

describe.skipIf(!FULL)('fault rows: network and broker restarts', () => {
  it('when the network black-holes every connection mid-batch (row 8), then heartbeats notice within seconds, everything reconnects once it heals, and nothing is lost', async () => {
    const ledger = new Ledger('8 black hole');
    const client = await rig.client();
    const deadBefore = await rig.deadCount();
    const since = Date.now();
    const b = batch(1000);
    const run = submit(client, ledger, b.jobs, { timeoutMs: 120_000, titles: b.titles });
    await run.firstResult;
    await ledger.waitForComplete(70, 30_000);
    ledger.markFault();
    const t0 = Date.now();
    rig.proxy.blackhole();
    // Every service notices on its own, by missed heartbeats.
    const noticed = await Promise.all(
      SERVICES.map((name) => rig.log.waitFor((l) => l.source === name && l.json?.msg === 'connection to broker lost; reconnecting', 30_000, t0, `${name} to notice`)),
    );
    const detectMs = Math.max(...noticed.map((l) => l.at - t0));
    const producerNoticed = await rig.log
      .waitFor((l) => l.source === 'producer' && l.json?.msg === 'connection to broker lost; reconnecting', 10_000, t0, 'the producer to notice')
      .then((l) => l.at - t0, () => -1);
    await sleep(1000);
    rig.proxy.resume();
    const healedAt = Date.now();
    const back = servicesBack(healedAt);
    const first = await run.done;
    const producerDone = Date.now() - healedAt;
    const drain = first.outcome?.complete ? undefined : await drainWithCollect(rig, ledger, first.batch, 90_000);
    ledger.recoveries = [healedAt - t0 + (await back)];
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.deadLettered = (await rig.deadCount(500)) - deadBefore;
    ledger.notes.push(
      `services noticed in ${detectMs} ms, producer in ${producerNoticed} ms (heartbeat ${HEARTBEAT_SECONDS} s); healed after ${healedAt - t0} ms; producer ${producerOutcome(first)} ${producerDone} ms after the heal; collect finished by itself: ${String(drain?.collectComplete ?? 'n/a')}`,
    );
    const f = report.add(ledger.figures());
    expectNoLoss(f);
    expect(detectMs).toBeLessThan(HEARTBEAT_SECONDS * 3 * 1000 + 1000);
    await rig.closeClient(client).catch(() => {});
  });

  it('when every connection is reset mid-batch (row 9), then all reconnect at once and nothing is lost', async () => {
    const ledger = new Ledger('9 connections reset');
    const client = await rig.client();
    const deadBefore = await rig.deadCount();
    const since = Date.now();
    const b = batch(2000);
    const run = submit(client, ledger, b.jobs, { timeoutMs: 120_000, titles: b.titles });
    await run.firstResult;
    await ledger.waitForComplete(70, 30_000);
    ledger.markFault();
    const t0 = Date.now();
    const reset = rig.proxy.resetAll();
    const back = servicesBack(t0);
    const first = await run.done;
    const drain = first.outcome?.complete ? undefined : await drainWithCollect(rig, ledger, first.batch, 90_000);
    ledger.recoveries = [await back];
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.deadLettered = (await rig.deadCount(500)) - deadBefore;
    ledger.notes.push(`${reset} connections reset; producer ${producerOutcome(first)}; collect finished by itself: ${String(drain?.collectComplete ?? 'n/a')}`);
    const f = report.add(ledger.figures());
    expectNoLoss(f);
    await rig.closeClient(client).catch(() => {});
  });

  it('when the broker application is stopped and started mid-batch (row 6), then clients get CONNECTION_FORCED, reconnect once it is back, and nothing is lost', async () => {
    const ledger = new Ledger('6 broker stop_app / start_app');
    const client = await rig.client();
    const deadBefore = await rig.deadCount();
    const since = Date.now();
    const b = batch(3000);
    const out = await outputFile(ledger.row);
    const run = submit(client, ledger, b.jobs, { timeoutMs: 20_000, titles: b.titles, file: out });
    await run.firstResult;
    await ledger.waitForComplete(70, 30_000);
    ledger.markFault();
    const t0 = Date.now();
    await rig.node.stopApp();
    const forced = await rig.log.waitFor((l) => l.json?.msg === 'connection to broker lost; reconnecting', 10_000, t0, 'a service to lose its connection');
    expect(JSON.stringify(forced.json)).toContain('CONNECTION_FORCED');
    const first = await run.done;
    expect(first.outcome?.complete ?? false, 'the producer cannot finish while the broker is down').toBe(false);
    await sleep(1000);
    await rig.node.startApp();
    const upAt = Date.now();
    // Counted from the stop: a service may reconnect while start_app is still waiting for the
    // node's startup to complete, i.e. before upAt.
    const back = servicesBack(t0);
    const drain = await drainWithCollect(rig, ledger, first.batch, 60_000, out);
    await out.close();
    ledger.recoveries = [await back];
    ledger.notes.push(`producer ${producerOutcome(first)}`);
    ledger.redeliveries = rig.log.redeliveries(since);
    ledger.deadLettered = (await rig.deadCount(500)) - deadBefore;
    ledger.notes.push(`broker down ${upAt - t0} ms; collect finished by itself: ${String(drain.collectComplete ?? false)}`);
    const f = report.add(ledger.figures());
    expectNoLoss(f);
    expect(f.outputDuplicates, 'results emitted by both the first run and collect').toBe(0);
    expect(duplicatesInFile(out.path), 'results in the output file twice').toBe(0);
    await rig.closeClient(client).catch(() => {});
  });
});
