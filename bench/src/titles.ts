/**
 * Title fetching throughput: pages per second read from a local server, 100 in flight.
 *
 * A node:http server (in a worker thread, so it does not compete with the client for the
 * event loop) serves 2,000 distinct ~10 KB HTML pages on 127.0.0.1. The same URLs are
 * fetched by:
 *
 *   (a) a bare undici loop: `request` + `body.text()` + a title regex, no limits or checks:
 *       about the most one Node process can do, the reference for (b);
 *   (b) our title fetcher (createTitleFetcher, called directly, no broker) with a per-host
 *       limit of 100, so that it runs the same 100 requests at once as the others;
 *   (c) the original Python approach, when /usr/bin/python3 has aiohttp: asyncio +
 *       aiohttp.ClientSession, a semaphore of 100, a title regex;
 *
 * plus, for information, (b) with the service's default per-host limit (8): all 2,000
 * pages are on one host here, so that row shows what politeness costs a one-host batch.
 *
 * Then the pipeline: our title-fetcher service fed by the producer library (batches taking
 * turns with the aiohttp client's passes), and the same batches served by the least possible
 * service (BARE_SERVICE_SOURCE), the yardstick for what our service adds. Last, a bound: a page
 * through the pipeline costs at least the CPU of a bare request/reply job plus that of a bare
 * undici fetch, both measured in this run; the machine's cores divided by that sum are the
 * most pages per second any pipeline could reach here.
 *
 * Every variant is warmed up, then timed five times over the 2,000 pages; the
 * Node variants take turns round by round (so a burst of load elsewhere on the machine
 * hits them alike) and keep their connection pools between rounds, as the aiohttp client
 * keeps its session; the aiohttp client's passes take turns with the pipeline's batches.
 * The median round is reported, and a target against another variant reads the median of
 * per-round ratios where they took turns. A variant that does not find every title says so
 * in its row's note.
 *
 * Traffic goes to 127.0.0.1 only.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { Agent, request } from 'undici';
import { publicAddressesOnly } from '@amqp-pipeline/title-fetcher/dist/address-policy.js';
import { createTitleFetcher } from '@amqp-pipeline/title-fetcher/dist/title-fetcher.js';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, urlJob } from '@amqp-pipeline/producer';
import { Queues, createLogger, loadConfig } from '@amqp-pipeline/shared';
import { measuredCeiling } from './pipeline.js';
import { brokerPid, cpuSeconds, median, rssMb } from './proc.js';
import type { Row } from './table.js';

/** URLs waiting in the queue for the memory row. */
const QUEUED = Number(process.env.BENCH_TITLES_QUEUED ?? 10_000);


/**
 * The whole pipeline: a title-fetcher service (ours by default: prefetch = IN_FLIGHT, per-host
 * limit lifted to match, private addresses allowed for the local pages), jobs published and
 * results collected by the producer library. A service is long-running, and its first pages
 * run before the JIT has compiled anything: a cold batch of `warmup` pages (reported as such)
 * and one untimed batch of all the `urls` come first (the first timed batch after only the
 * cold one ran at half the speed of the later ones). Then `rounds` batches of `urls` are
 * timed; the median is reported. Also returns the service's peak RSS.
 */
export async function throughPipeline(
  urls: string[],
  { warmup, rounds, beforeRound, service = startTitleFetcher }: {
    warmup: number;
    rounds: number;
    beforeRound?: (() => Promise<void>) | undefined;
    service?: () => Promise<RunningService>;
  },
): Promise<{ pagesPerSecond: number; rates: number[]; coldPagesPerSecond: number; peakMb: number; cpuNote: string }> {
  const config = loadConfig(process.env);
  const proc = await service();
  let peakMb = 0;
  const timer = setInterval(() => (peakMb = Math.max(peakMb, rssMb(proc.pid ?? 0))), 100);
  try {
    const client = await PipelineClient.connect(config, createLogger('bench', { level: 'error' }, 2));
    const batch = async (batchUrls: string[]): Promise<number> => {
      const started = performance.now();
      const outcome = await client.submit(batchUrls.map(urlJob), { wait: true, output: 'independent', timeoutMs: 600_000 });
      const secs = (performance.now() - started) / 1000;
      if (!outcome.complete || outcome.failed) throw new Error(`titles through the pipeline: ${outcome.failed} failed, complete ${outcome.complete}`);
      return batchUrls.length / secs;
    };
    try {
      const cold = await batch(warmup > 0 ? urls.slice(0, warmup) : urls);
      if (warmup === 0) return { pagesPerSecond: cold, rates: [cold], coldPagesPerSecond: cold, peakMb, cpuNote: '' };
      await batch(urls);
      const rates: number[] = [];
      // CPU per page of each party over the timed batches (not the rounds run between them).
      const beam = brokerPid();
      const spent = { service: 0, here: 0, broker: 0 };
      for (let i = 0; i < rounds; i++) {
        await beforeRound?.();
        const service0 = cpuSeconds(proc.pid ?? 0);
        const here0 = process.cpuUsage();
        const broker0 = cpuSeconds(beam);
        rates.push(await batch(urls));
        const here = process.cpuUsage(here0);
        spent.service += cpuSeconds(proc.pid ?? 0) - service0;
        spent.here += (here.user + here.system) / 1e6;
        spent.broker += cpuSeconds(beam) - broker0;
      }
      const perPage = (secs: number) => `${Math.round((secs * 1e6) / (rounds * urls.length))} µs`;
      const cpuNote =
        `CPU per page: service ${perPage(spent.service)}, ` +
        `producer + page server ${perPage(spent.here)}` +
        (beam ? `, broker ${perPage(spent.broker)}` : ' (broker not found on this machine: BEAM_PID=<beam.smp pid> adds it)');
      return { pagesPerSecond: median(rates), rates, coldPagesPerSecond: cold, peakMb, cpuNote };
    } finally {
      await client.close();
    }
  } finally {
    clearInterval(timer);
    await proc.stop();
  }
}

/** A service consuming the title queue, as the pipeline rows run it. */
interface RunningService {
  readonly pid: number | undefined;
  stop(): Promise<unknown>;
}

/** Our title-fetcher service, as the titles rows run it: 100 fetches at once, local pages allowed. */
async function startTitleFetcher(): Promise<RunningService> {
  const proc = new ServiceProcess('title-fetcher', {
    env: {
      AMQP_URL: loadConfig(process.env).AMQP_URL,
      PREFETCH: String(IN_FLIGHT),
      FETCH_PER_HOST_CONCURRENCY: String(IN_FLIGHT),
      FETCH_ALLOW_PRIVATE: 'true',
    },
  });
  await proc.ready;
  return proc;
}

/**
 * The least a service can do for these jobs, in a process of its own: an amqplib consumer
 * (prefetch IN_FLIGHT) that fetches each URL with undici's request, reads the whole body,
 * takes the title with a regex and publishes the result, acking the job once the broker has
 * confirmed it (as ours does). No limits, no address checks, no charset, retries or
 * dead-lettering, no metrics or logs: no real service can do with less, so this row is
 * what any title fetcher could reach through this broker on this machine.
 */
export const BARE_SERVICE_SOURCE = `
import amqp from 'amqplib';
import { Agent, request } from 'undici';
const agent = new Agent();
const TITLE = /<title[^>]*>([^<]*)<\\/title>/i;
const conn = await amqp.connect(process.env.AMQP_URL, { noDelay: true });
const ch = await conn.createConfirmChannel();
await ch.prefetch(Number(process.env.PREFETCH));
await ch.consume(process.env.QUEUE, async (m) => {
  if (!m) return;
  const { url } = JSON.parse(m.content.toString());
  const { body } = await request(url, { dispatcher: agent });
  const title = TITLE.exec(await body.text())?.[1] ?? '';
  const result = { ok: true, kind: 'title', title, source: 'title', url };
  ch.publish('', m.properties.replyTo, Buffer.from(JSON.stringify(result)), {
    correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json',
  }, (err) => { if (!err) ch.ack(m); });
});
console.log('ready');
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

async function startBareService(): Promise<RunningService> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', BARE_SERVICE_SOURCE], {
    env: { ...process.env, AMQP_URL: loadConfig(process.env).AMQP_URL, PREFETCH: String(IN_FLIGHT), QUEUE: Queues.titles.name },
    // Resolves amqplib and undici from the bench package.
    cwd: new URL('..', import.meta.url).pathname,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the bare title service exited (code ${code}) before it was ready`)));
  });
  return {
    pid: child.pid,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      if (child.exitCode === null) await exited;
    },
  };
}

const SUITE = 'titles';
const PAGES = 2000;
const WARMUP_PAGES = 200;
const IN_FLIGHT = 100;
const ROUNDS = 5;


/** FETCH_PER_HOST_CONCURRENCY's default. */
const DEFAULT_PER_HOST_LIMIT = 8;
const PYTHON = '/usr/bin/python3';
const TITLE_RE = /<title[^>]*>([^<]*)<\/title>/i;

/**
 * The page server, run in a worker thread (plain JavaScript, evaluated as CommonJS).
 * Page i is about 10 KB: a head with the title "Benchmark page i", then filler paragraphs.
 */
const SERVER_SOURCE = `
const { createServer } = require('node:http');
const { parentPort } = require('node:worker_threads');
const paragraph = '<p>' + 'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(8) + '</p>\\n';
const filler = Buffer.from(paragraph.repeat(Math.ceil(10000 / paragraph.length)) + '</body></html>\\n');
const server = createServer((req, res) => {
  const match = /^\\/page\\/(\\d+)$/.exec(req.url || '');
  if (!match) { res.writeHead(404); res.end(); return; }
  const head = Buffer.from('<!doctype html><html><head><meta charset="utf-8"><title>Benchmark page ' + match[1] +
    '</title><meta name="viewport" content="width=device-width"></head><body>\\n');
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': head.length + filler.length });
  res.end(Buffer.concat([head, filler]));
});
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
`;

/**
 * The aiohttp client, one round at a time: reads the URLs from its first line of stdin, warms
 * up on the first `warmup` of them and prints "ready"; then for each further line ("go") times
 * one pass over all of them and prints {"seconds", "found"} as a line of JSON. Ends at EOF.
 */
const AIOHTTP_SOURCE = `
import asyncio, json, re, sys, time
import aiohttp

TITLE = re.compile(r'<title[^>]*>(.*?)</title>', re.I | re.S)

async def fetch_all(session, urls, in_flight):
    semaphore = asyncio.Semaphore(in_flight)
    found = 0
    async def one(url):
        nonlocal found
        async with semaphore:
            async with session.get(url) as response:
                text = await response.text()
                if TITLE.search(text):
                    found += 1
    await asyncio.gather(*(one(url) for url in urls))
    return found

async def main():
    urls = sys.stdin.readline().split()
    warmup, in_flight = int(sys.argv[1]), int(sys.argv[2])
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        await fetch_all(session, urls[:warmup], in_flight)
        print("ready", flush=True)
        while sys.stdin.readline():
            start = time.perf_counter()
            found = await fetch_all(session, urls, in_flight)
            print(json.dumps({"seconds": time.perf_counter() - start, "found": found}), flush=True)

asyncio.run(main())
`;

interface Measurement {
  /** Median pages per second over the timed rounds. */
  pagesPerSecond: number;
  /** CPU per page, median over the timed rounds, µs: this whole process, so the page server's thread too. */
  cpuPerPageUs: number;
  /** Fewest titles found in a timed round (should be PAGES). */
  found: number;
}

/** One way of fetching a page's title: true when a title was found. */
interface Client {
  fetchOne(url: string): Promise<boolean>;
  close(): Promise<void>;
}

/** Starts the page server; resolves with its base URL and a function that stops it. */
export async function startPageServer(): Promise<{ base: string; stop: () => Promise<number> }> {
  const worker = new Worker(SERVER_SOURCE, { eval: true });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return { base: `http://127.0.0.1:${port}`, stop: () => worker.terminate() };
}

/** Fetches `urls` with IN_FLIGHT requests at once; returns the titles found. */
async function fetchAll(urls: readonly string[], client: Client): Promise<number> {
  let next = 0;
  let found = 0;
  const worker = async (): Promise<void> => {
    while (next < urls.length) {
      const url = urls[next++]!;
      if (await client.fetchOne(url)) found++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, urls.length) }, worker));
  return found;
}

/**
 * Warms every client up (one pass over all the URLs: the first timed rounds after a 200-page
 * warm-up still ran at half speed), then times ROUNDS passes of each over `urls`, taking turns.
 */
async function measureInTurns(urls: readonly string[], clients: readonly Client[]): Promise<Measurement[]> {
  for (const client of clients) await fetchAll(urls, client);
  const rates = clients.map((): number[] => []);
  const found = clients.map(() => Number.POSITIVE_INFINITY);
  const cpu = clients.map((): number[] => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, client] of clients.entries()) {
      const started = performance.now();
      const cpu0 = process.cpuUsage();
      found[i] = Math.min(found[i]!, await fetchAll(urls, client));
      const used = process.cpuUsage(cpu0);
      rates[i]!.push(urls.length / ((performance.now() - started) / 1000));
      cpu[i]!.push((used.user + used.system) / urls.length);
    }
  }
  return clients.map((_, i) => ({ pagesPerSecond: median(rates[i]!), found: found[i]!, cpuPerPageUs: median(cpu[i]!) }));
}


/** (a) undici's request, the whole body as text, a regex: no limits, no checks. */
function bareUndiciClient(): Client {
  const agent = new Agent();
  return {
    async fetchOne(url) {
      const { body } = await request(url, { dispatcher: agent });
      return TITLE_RE.test(await body.text());
    },
    close: () => agent.close(),
  };
}

/** (b) our fetcher, with the given per-host limit. */
function titleFetcherClient(perHostConcurrency: number): Client {
  const fetcher = createTitleFetcher({
    timeoutMs: 30_000,
    maxBytes: 1024 * 1024,
    maxRedirects: 5,
    perHostConcurrency,
    // The real policy runs on every connection; only the bench server's address is let through.
    addressPolicy: (address) => (address === '127.0.0.1' ? undefined : publicAddressesOnly(address)),
  });
  return {
    fetchOne: async (url) => (await fetcher.fetch(url)).title !== '',
    close: () => fetcher.close(),
  };
}

export function aiohttpAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import aiohttp'], { stdio: 'ignore' }).status === 0;
}

/**
 * (c) the Python aiohttp client, as a child process that runs one timed pass whenever asked,
 * so that its rounds can take turns with the pipeline's.
 */
export class AiohttpRounds {
  readonly rates: number[] = [];
  found = Number.POSITIVE_INFINITY;
  private stderr = '';
  private readonly lines: AsyncIterator<string>;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly pages: number,
  ) {
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  /** Starts the client and waits for its warm-up. */
  static async start(urls: readonly string[]): Promise<AiohttpRounds> {
    const child = spawn(PYTHON, ['-c', AIOHTTP_SOURCE, String(urls.length), String(IN_FLIGHT)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const rounds = new AiohttpRounds(child, urls.length);
    child.stdin.write(`${urls.join(' ')}\n`);
    await rounds.line('ready');
    return rounds;
  }

  /** One timed pass over all the URLs. */
  async round(): Promise<void> {
    this.child.stdin.write('go\n');
    const { seconds, found } = JSON.parse(await this.line('a round')) as { seconds: number; found: number };
    this.rates.push(this.pages / seconds);
    this.found = Math.min(this.found, found);
  }

  get pagesPerSecond(): number {
    return median(this.rates);
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('close', resolve));
    this.child.stdin.end();
    if (this.child.exitCode === null) await exited;
  }

  private async line(what: string): Promise<string> {
    const { value, done } = await this.lines.next();
    if (done) throw new Error(`aiohttp client ended before ${what}: ${this.stderr.trim()}`);
    return value;
  }
}

/** A note for a run that missed titles (empty when all were found). */
function missing(m: Pick<Measurement, 'found'>): string {
  return m.found === PAGES ? '' : `; only ${m.found}/${PAGES} titles found`;
}

export async function run(): Promise<Row[]> {
  const server = await startPageServer();
  try {
    const urls = Array.from({ length: PAGES }, (_, i) => `${server.base}/page/${i}`);
    const what = `${PAGES} local 10 KB pages, ${IN_FLIGHT} in flight`;

    const clients = [bareUndiciClient(), titleFetcherClient(IN_FLIGHT), titleFetcherClient(DEFAULT_PER_HOST_LIMIT)];
    let measured: Measurement[];
    try {
      measured = await measureInTurns(urls, clients);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
    const [bare, ours, oursDefault] = measured as [Measurement, Measurement, Measurement];
    // The aiohttp client's rounds take turns with the pipeline's batches: "ahead of aiohttp"
    // reads the median of per-round ratios (one after the other, the two landed in different
    // spells of this VM, whose speed drifts by 20-40% within minutes).
    const python = aiohttpAvailable() ? await AiohttpRounds.start(urls) : undefined;
    let pipeline: Awaited<ReturnType<typeof throughPipeline>>;
    try {
      pipeline = await throughPipeline(urls, { warmup: WARMUP_PAGES, rounds: ROUNDS, beforeRound: python && (() => python.round()) });
    } finally {
      await python?.close();
    }
    // The same batches served by the least possible service (BARE_SERVICE_SOURCE), after ours.
    const bareService = await throughPipeline(urls, { warmup: WARMUP_PAGES, rounds: ROUNDS, service: startBareService });
    // The broker's own request/reply ceiling on this machine now: no pipeline can beat it, so
    // DESIGN.md reads an "x times a bare loop" target against the lower of the two.
    const ceiling = await measuredCeiling(loadConfig(process.env).AMQP_URL, 1000, IN_FLIGHT, true);
    const yardstick = Math.min(bare.pagesPerSecond, ceiling.rate);
    const yardstickName = yardstick === ceiling.rate ? 'broker req/reply ceiling' : 'bare undici loop';
    // A page through the pipeline costs at least what a job costs the bare request/reply loop
    // (requester, echo and broker) plus what a page costs the bare undici loop (client and
    // server): all of it on this machine's cores.
    const cores = os.cpus().length;
    const floorUs = ceiling.cpuPerJobUs === undefined ? undefined : ceiling.cpuPerJobUs + bare.cpuPerPageUs;
    const queuedUrls = Array.from({ length: QUEUED }, (_, i) => `${server.base}/page/${i % PAGES}`);
    const queued = await throughPipeline(queuedUrls, { warmup: 0, rounds: 1 });

    const rows: Row[] = [
      {
        suite: SUITE,
        case: `bare undici loop (request + regex), ${what}`,
        ours: bare.pagesPerSecond,
        unit: 'pages/s',
        higherIsBetter: true,
        note: `reference for the rows below: no limits, no address checks, whole body read${missing(bare)}`,
      },
      {
        suite: SUITE,
        case: `title fetcher (createTitleFetcher, per-host limit ${IN_FLIGHT}), ${what}`,
        ours: ours.pagesPerSecond,
        baseline: bare.pagesPerSecond,
        baselineName: 'bare undici loop',
        unit: 'pages/s',
        higherIsBetter: true,
        note: `streaming parse, stops at </title>; address policy checked per connection${missing(ours)}`,
      },
      {
        suite: SUITE,
        case: `title fetcher, default per-host limit ${DEFAULT_PER_HOST_LIMIT}, ${what} (all on one host)`,
        ours: oursDefault.pagesPerSecond,
        baseline: ours.pagesPerSecond,
        baselineName: `title fetcher, per-host limit ${IN_FLIGHT}`,
        unit: 'pages/s',
        higherIsBetter: true,
        note: `what the politeness limit costs a one-host batch${missing(oursDefault)}`,
      },
    ];
    rows.push(
      {
        suite: SUITE,
        case: `broker ceiling: bare amqplib request/reply (as in the pipeline suite), 1000 in flight, prefetch ${IN_FLIGHT}, durable replies`,
        ours: ceiling.rate,
        unit: 'jobs/s',
        higherIsBetter: true,
        note: `no fetching at all: the most jobs/s the broker turns around here (DESIGN.md: targets read against the lower of this and the bare loop); ${ceiling.cpuNote}`,
      },
      {
        suite: SUITE,
        case: `end to end through the pipeline (1 title-fetcher, prefetch ${IN_FLIGHT}), ${what}`,
        ours: pipeline.pagesPerSecond,
        baseline: yardstick,
        baselineName: yardstickName,
        unit: 'pages/s',
        higherIsBetter: true,
        target: '>= 0.8x min(bare undici, broker ceiling)',
        met: pipeline.pagesPerSecond >= 0.8 * yardstick,
        note: `jobs published, fetched, answered and collected through the broker; warm service, median of ${ROUNDS} batches (the cold first batch of ${WARMUP_PAGES}: ${pipeline.coldPagesPerSecond.toFixed(0)} pages/s); ${(pipeline.pagesPerSecond / bare.pagesPerSecond).toFixed(2)}x the bare undici loop; ${pipeline.cpuNote}`,
      },
      {
        suite: SUITE,
        case: `bare service through the pipeline (amqplib consumer, undici request + regex, prefetch ${IN_FLIGHT}), ${what}`,
        ours: bareService.pagesPerSecond,
        baseline: yardstick,
        baselineName: yardstickName,
        unit: 'pages/s',
        higherIsBetter: true,
        note: `the least a service can do for these jobs (no limits, checks, charsets, retries, metrics or logs), same producer and broker, run after ours: what any title fetcher could reach here; median of ${ROUNDS} batches; ${bareService.cpuNote}`,
      },
      {
        suite: SUITE,
        case: `end to end through the pipeline vs the bare service, ${what}`,
        ours: pipeline.pagesPerSecond,
        baseline: bareService.pagesPerSecond,
        baselineName: 'bare service through the pipeline',
        unit: 'pages/s',
        higherIsBetter: true,
        note: 'our title-fetcher service against the least possible one, everything else the same',
      },
      {
        suite: SUITE,
        case: `CPU-time bound on this machine: a pipeline adding nothing to the bare request/reply loop and the bare undici loop, ${cores} cores`,
        ours: floorUs === undefined ? Number.NaN : (cores * 1e6) / floorUs,
        ...(floorUs !== undefined && { baseline: yardstick, baselineName: yardstickName }),
        unit: 'pages/s',
        higherIsBetter: true,
        note:
          floorUs === undefined
            ? 'not computed: the broker runs elsewhere (BEAM_PID=<beam.smp pid> gives its CPU)'
            : `a page costs at least a bare request/reply job (${ceiling.cpuPerJobUs!.toFixed(0)} µs of CPU: requester, echo, broker) plus a bare undici fetch (${bare.cpuPerPageUs.toFixed(0)} µs: client and page server), ${floorUs.toFixed(0)} µs in all, with all ${cores} cores busy all the time ` +
              `(the bare loops themselves keep ${((ceiling.cpuPerJobUs! * ceiling.rate) / 1e6).toFixed(2)} and ${((bare.cpuPerPageUs * bare.pagesPerSecond) / 1e6).toFixed(2)} busy); the end-to-end target asks for 0.8x the yardstick`,
      },
      {
        suite: SUITE,
        case: `title-fetcher RSS with ${QUEUED} URLs queued`,
        ours: queued.peakMb,
        unit: 'MB',
        higherIsBetter: false,
        target: '< 200 MB',
        met: queued.peakMb < 200,
        note: `${queued.pagesPerSecond.toFixed(0)} pages/s draining them`,
      },
    );
    if (python) {
      const ratios = pipeline.rates.map((r, i) => r / python.rates[i]!);
      rows.push({
        suite: SUITE,
        case: `end to end through the pipeline vs the original aiohttp client, ${what}`,
        ours: pipeline.pagesPerSecond,
        target: 'ahead of aiohttp',
        met: median(ratios) > 1,
        baseline: python.pagesPerSecond,
        baselineName: 'Python aiohttp, semaphore 100 + regex',
        unit: 'pages/s',
        higherIsBetter: true,
        note:
          `median of per-round ratios ${median(ratios).toFixed(2)}x (rounds: ${ratios.map((x) => x.toFixed(2)).join(' ')}), each pipeline batch after an aiohttp pass; ` +
          `aiohttp run as a child process, warm; its figure excludes interpreter start-up${missing({ found: python.found })}`,
      });
    } else {
      rows.push({
        suite: SUITE,
        case: `title fetcher vs the original aiohttp client, ${what}`,
        ours: ours.pagesPerSecond,
        unit: 'pages/s',
        higherIsBetter: true,
        note: `baseline not run: ${PYTHON} cannot import aiohttp`,
      });
    }
    return rows;
  } finally {
    await server.stop();
  }
}
