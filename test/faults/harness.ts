/**
 * One fault-injection rig per test file: a throwaway RabbitMQ node, a TCP proxy in front of
 * it, the real services (child processes, debug logs captured), the real producer library
 * (through the proxy), a page server on 127.0.0.1 and an admin connection straight to the node.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ServiceProcess, type ServiceName } from '@amqp-pipeline/devtools';
import { PipelineClient, ResultFile, lineKey, newBatchId, type BatchOutcome, type Emitted, type JobSpec } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import type { Ledger } from './ledger.js';
import { TcpProxy } from './proxy.js';
import { RabbitNode, sleep } from './rabbit-node.js';

/** FAULTS=full runs the slow rows too; CI runs the default set. */
export const FULL = process.env.FAULTS === 'full';

/** Heartbeat of every pipeline process in these tests: a dead link is noticed in ~2x this. */
export const HEARTBEAT_SECONDS = 2;

export interface LogLine {
  at: number;
  source: string;
  pid: number | undefined;
  json: Record<string, unknown> | undefined;
  text: string;
}

/** Every log line of every process of the rig (services and producer), parsed. */
export class LogBook {
  readonly lines: LogLine[] = [];
  private waiters = new Set<() => void>();

  add(source: string, text: string, pid?: number): void {
    let json: Record<string, unknown> | undefined;
    try {
      const v = JSON.parse(text) as unknown;
      if (v && typeof v === 'object') json = v as Record<string, unknown>;
    } catch {
      /* not a JSON line */
    }
    this.lines.push({ at: Date.now(), source, pid, json, text });
    for (const w of this.waiters) w();
  }

  /** Lines whose msg is `msg` (optionally since a time). */
  find(msg: string, since = 0): LogLine[] {
    return this.lines.filter((l) => l.at >= since && l.json?.msg === msg);
  }

  /** Waits for a line matching `pred` at or after `since`; rejects after timeoutMs. */
  async waitFor(pred: (l: LogLine) => boolean, timeoutMs: number, since = 0, what = 'a log line'): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find((l) => l.at >= since && pred(l));
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(wake, Math.min(left, 500));
        this.waiters.add(wake);
      });
    }
  }

  /**
   * Redeliveries seen in the services' logs since `since`: per (service, job), the highest
   * `redeliveries` (x-delivery-count) any of its lines carried, summed.
   */
  redeliveries(since = 0): number {
    const max = new Map<string, number>();
    for (const l of this.lines) {
      if (l.at < since || !l.json?.correlationId) continue;
      const n = Number(l.json.redeliveries ?? 0);
      const key = `${String(l.json.service)}|${String(l.json.correlationId)}`;
      if (n > (max.get(key) ?? 0)) max.set(key, n);
    }
    let sum = 0;
    for (const n of max.values()) sum += n;
    return sum;
  }

  /** 'job done' lines per (service, job) since `since`. */
  jobsDone(since = 0): Map<string, number> {
    const done = new Map<string, number>();
    for (const l of this.find('job done', since)) {
      const key = `${String(l.json?.service)}|${String(l.json?.correlationId)}`;
      done.set(key, (done.get(key) ?? 0) + 1);
    }
    return done;
  }
}

export interface Site {
  base: string;
  hits: Map<string, number>;
  /** Called with every request's URL before it is answered (a test's hook). */
  onRequest: ((url: string) => void) | undefined;
  close: () => Promise<void>;
}

/** How long `/slow/<n>` takes to answer: the title fetcher is then the slow stage of a batch. */
export const SLOW_PAGE_MS = 300;

/**
 * Fixture pages on 127.0.0.1: `/p/<n>` has the title `Page <n>`, `/slow/<n>` too but after
 * SLOW_PAGE_MS, `/down` always answers 503.
 */
export async function startSite(): Promise<Site> {
  const hits = new Map<string, number>();
  const site: Partial<Site> = {};
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '';
    hits.set(url, (hits.get(url) ?? 0) + 1);
    site.onRequest?.(url);
    if (url.startsWith('/down')) return void res.writeHead(503).end('down');
    const m = /^\/(p|slow)\/(\d+)$/.exec(url);
    if (!m) return void res.writeHead(404).end();
    const page = () =>
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<html><head><title>Page ${m[2]}</title></head><body>${m[2]}</body></html>`);
    if (m[1] === 'slow') setTimeout(page, SLOW_PAGE_MS);
    else page();
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(site, {
    base: `http://127.0.0.1:${port}`,
    hits,
    onRequest: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  }) as Site;
}

export interface RigOptions {
  /** Extra environment for every service. */
  serviceEnv?: Record<string, string>;
  /** Extra environment for the producer clients (their config). */
  clientEnv?: Record<string, string>;
}

export class Rig {
  readonly log = new LogBook();
  readonly services: ServiceProcess[] = [];
  private clients = new Set<PipelineClient>();
  private constructor(
    readonly node: RabbitNode,
    readonly proxy: TcpProxy,
    readonly site: Site,
    private readonly opts: RigOptions,
  ) {}

  static async start(opts: RigOptions = {}): Promise<Rig> {
    const node = await RabbitNode.start();
    try {
      const proxy = await TcpProxy.start(node.amqpPort);
      const site = await startSite();
      return new Rig(node, proxy, site, opts);
    } catch (err) {
      await node.dispose();
      throw err;
    }
  }

  /** Environment of the services: through the proxy, short heartbeats, debug logs, quick retries. */
  serviceEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      AMQP_URL: this.proxy.url,
      HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS),
      LOG_LEVEL: 'debug',
      CONNECT_RETRIES: '30',
      FETCH_ALLOW_PRIVATE: 'true',
      RETRY_DELAYS_MS: '100,200,300',
      RESULT_PART_BYTES: '16384',
      SHUTDOWN_GRACE_MS: '5000',
      ...this.opts.serviceEnv,
      ...extra,
    };
  }

  /** Starts one service and waits until it consumes. */
  async startService(name: ServiceName, extra: Record<string, string> = {}): Promise<ServiceProcess> {
    const p: ServiceProcess = new ServiceProcess(name, {
      env: this.serviceEnv(extra),
      onLine: (line) => this.log.add(name, line, p.pid),
    });
    this.services.push(p);
    await p.ready;
    return p;
  }

  running(name?: ServiceName): ServiceProcess[] {
    return this.services.filter((s) => (!name || s.name === name) && s.child.exitCode === null && s.child.signalCode === null);
  }

  /** The producer library, connected through the proxy. */
  async client(name = 'faults-producer'): Promise<PipelineClient> {
    const config = loadConfig({ AMQP_URL: this.proxy.url, HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS), CONNECT_RETRIES: '10', LOG_LEVEL: 'warn', ...this.opts.clientEnv });
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.log.add('producer', line);
        done();
      },
    });
    const c = await PipelineClient.connect(config, createLogger('faults-producer', { level: process.env.FAULTS_DUMP ? 'debug' : 'warn' }, sink), name);
    this.clients.add(c);
    return c;
  }

  async closeClient(c: PipelineClient): Promise<void> {
    this.clients.delete(c);
    await c.close();
  }

  /**
   * A poison page: from now on, fetching any URL containing `token` SIGKILLs every running
   * title-fetcher (before it can answer). `restartUntil` restarts the fetcher after each
   * crash, at most `tries` times, until `parked()` says the poison reached pipeline.dead; then
   * the hook is lifted and a fetcher is left running. `kills` counts the crashes.
   */
  poisonFetch(token: string): { kills: () => number; restartUntil: (parked: () => boolean, tries?: number) => Promise<void>; remove: () => void } {
    let kills = 0;
    this.site.onRequest = (url) => {
      if (!url.includes(token)) return;
      for (const s of this.running('title-fetcher')) {
        kills++;
        s.child.kill('SIGKILL');
      }
    };
    const remove = () => {
      this.site.onRequest = undefined;
    };
    const restartUntil = async (parked: () => boolean, tries = 10) => {
      for (let i = 0; i < tries && !parked(); i++) {
        const [current] = this.running('title-fetcher');
        if (current) await Promise.race([current.exited, sleep(5000)]);
        if (this.running('title-fetcher').length === 0) await this.startService('title-fetcher').catch(() => {});
        await sleep(300);
      }
      remove();
      if (this.running('title-fetcher').length === 0) await this.startService('title-fetcher');
    };
    return { kills: () => kills, restartUntil, remove };
  }

  /** A short-lived connection straight to the node (not through the proxy). */
  async admin<T>(fn: (ch: Channel, conn: ChannelModel) => Promise<T>): Promise<T> {
    const conn = await amqp.connect(this.node.amqpUrl);
    conn.on('error', () => {});
    try {
      const ch = await conn.createChannel();
      ch.on('error', () => {});
      return await fn(ch, conn);
    } finally {
      await conn.close().catch(() => {});
    }
  }

  /** Messages in pipeline.dead now (quorum queue counts trail a little: settle for a moment). */
  async deadCount(settleMs = 0): Promise<number> {
    if (settleMs) await sleep(settleMs);
    return this.admin(async (ch) => (await ch.checkQueue('pipeline.dead')).messageCount);
  }

  /** Polls the management API until a named connection shows up (or timeoutMs). */
  async connectionsNamed(prefix: string, timeoutMs = 15_000): Promise<{ name: string; client_properties?: { connection_name?: string } }[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { body } = await this.node.api<{ name: string; client_properties?: { connection_name?: string } }[]>('GET', '/connections');
      const hits = (Array.isArray(body) ? body : []).filter((c) => c.client_properties?.connection_name?.startsWith(prefix));
      if (hits.length > 0 || Date.now() > deadline) return hits;
      await sleep(500);
    }
  }

  /**
   * With FAULTS_DUMP=<dir>: writes what a failing row needs for its post-mortem — the jobs
   * still owed, every queue's depth on the node, and every log line of the rig — to
   * `<dir>/<row>.json`. Does nothing without it.
   */
  async dump(ledger: Ledger): Promise<void> {
    const dir = process.env.FAULTS_DUMP;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    const queues = await this.node
      .api<{ name: string; messages_ready?: number; messages_unacknowledged?: number; consumers?: number }[]>('GET', '/queues')
      .then(({ body }) => (Array.isArray(body) ? body.map((q) => ({ name: q.name, ready: q.messages_ready, unacked: q.messages_unacknowledged, consumers: q.consumers })) : body))
      .catch((err: unknown) => String(err));
    let nodeLog = '';
    try {
      const logs = join(this.node.dir, 'log');
      nodeLog = readdirSync(logs)
        .filter((f) => f.endsWith('.log') && !f.includes('upgrade'))
        .map((f) => readFileSync(join(logs, f), 'utf8').slice(-200_000))
        .join('\n');
    } catch {
      /* no log folder */
    }
    const file = join(dir, `${ledger.row.replace(/[^a-z0-9]+/gi, '-')}.json`);
    writeFileSync(`${file.slice(0, -5)}.node.log`, nodeLog);
    writeFileSync(file, JSON.stringify({ missing: ledger.missingDetail(), queues, log: this.log.lines.map((l) => ({ at: l.at, source: l.source, pid: l.pid, text: l.text })) }, null, 1));
    console.log(`fault dump: ${file}`);
  }

  async stop(): Promise<void> {
    for (const c of this.clients) await c.close().catch(() => {});
    this.clients.clear();
    await Promise.all(
      this.running().map(async (s) => {
        const r = await Promise.race([s.stop('SIGTERM'), sleep(10_000).then(() => undefined)]);
        if (!r) await s.stop('SIGKILL');
      }),
    );
    await this.site.close();
    await this.proxy.close();
    await this.node.dispose();
  }
}

export interface BatchRun {
  batch: string;
  outcome: BatchOutcome | undefined;
  error: unknown;
  /** True once every job was confirmed (the manifest is published only after that). */
  confirmed: boolean;
}

/**
 * Submits jobs with the real producer (wait, output 'independent'), feeding every result to
 * the ledger. Resolves with the outcome, or with the error if the producer gave up.
 */
export function submit(
  client: PipelineClient,
  ledger: Ledger,
  jobs: JobSpec[],
  opts: { timeoutMs: number; titles?: Record<string, string | { code: string }>; file?: ResultFile },
): { batch: string; done: Promise<BatchRun>; firstResult: Promise<void> } {
  const batch = newBatchId();
  ledger.expect(batch, jobs, opts.titles);
  let confirmed = false;
  let first!: () => void;
  const firstResult = new Promise<void>((resolve) => (first = resolve));
  const done = client
    .submit(jobs, {
      batch,
      wait: true,
      output: 'independent',
      timeoutMs: opts.timeoutMs,
      ...(opts.file ? { written: opts.file.has } : {}),
      onResult: (e) => {
        if (!confirmed) {
          // A result is emitted only once the manifest is in, which follows every job's confirm.
          confirmed = true;
          ledger.confirmed += jobs.length;
        }
        ledger.record(e);
        first();
        return opts.file?.write(e);
      },
    })
    .then(
      (outcome): BatchRun => {
        if (!confirmed) {
          confirmed = true;
          ledger.confirmed += jobs.length;
        }
        ledger.addStats(outcome);
        return { batch, outcome, error: undefined, confirmed };
      },
      (error: unknown): BatchRun => ({ batch, outcome: undefined, error, confirmed }),
    );
  return { batch, done, firstResult };
}

/**
 * The final drain after a fault broke the producer: `collect` from a new client until every
 * expected result is in (then it is cut short) or the budget passes.
 */
export async function drainWithCollect(
  rig: Rig,
  ledger: Ledger,
  batch: string,
  budgetMs: number,
  file?: ResultFile,
): Promise<{ collectComplete: boolean | undefined; error: unknown; collectSaw: string }> {
  const client = await rig.client('faults-collect');
  let outcome: BatchOutcome | undefined;
  let error: unknown;
  const onResult = (e: Emitted) => {
    ledger.record(e);
    return file?.write(e);
  };
  // What collect itself counts as done, last heard (for the row's notes when it does not end by itself).
  let seen = { done: -1, total: -1 };
  const onProgress = (done: number, total: number) => {
    seen = { done, total };
  };
  const collecting = client.collect(batch, { timeoutMs: budgetMs, onResult, onProgress, ...(file ? { written: file.has } : {}) }).then(
    (o) => (outcome = o),
    (e: unknown) => (error = e),
  );
  const allIn = ledger.waitForComplete(ledger.expected, budgetMs).catch(() => {});
  await Promise.race([collecting, allIn]);
  // If every result is in but collect still waits (for results acked in an earlier session),
  // give it a moment to finish by itself, then stop it.
  await Promise.race([collecting, sleep(3000)]);
  await rig.closeClient(client);
  await collecting;
  ledger.addStats(outcome);
  return { collectComplete: outcome?.complete, error, collectSaw: `${seen.done}/${seen.total}` };
}

/**
 * The output file of a row whose producer loses its broker (then `collect` finishes the
 * batch): the two sessions write through it, as `pipeline ... -o FILE` does.
 */
export async function outputFile(row: string): Promise<ResultFile> {
  const dir = mkdtempSync(join(tmpdir(), 'faults-out-'));
  return ResultFile.open(join(dir, `${row.replace(/[^a-z0-9]+/gi, '-')}.jsonl`));
}

/** Pieces of output a file holds more than once (by `outputKey`): must be 0. */
export function duplicatesInFile(path: string): number {
  const seen = new Set<string>();
  let dups = 0;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const key = lineKey(JSON.parse(line) as Record<string, unknown>) ?? line;
    if (seen.has(key)) dups++;
    seen.add(key);
  }
  return dups;
}
