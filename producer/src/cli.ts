#!/usr/bin/env node
/**
 * `pipeline`: submit jobs to the pipeline and print their results.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  EXIT_CONFIG,
  ErrorCodes,
  REPLY_QUEUE_PREFIX,
  Roles,
  brokerDefinitions,
  createLogger,
  defaultUsers,
  isPipelineError,
  loadConfig,
  topologyOf,
  replyQueueType,
  type Topology,
  type Config,
} from '@amqp-pipeline/shared';
import cliProgress from 'cli-progress';
import { PipelineClient, type BatchOutcome } from './client.js';
import type { Emitted } from './collector.js';
import { BATCH_ID_PATTERN, chunkCount, countJobs, primeCountChunk, rangeJobs, urlJob, type JobSpec, type RangeTarget } from './jobs.js';
import { HumanPrinter, jsonLine } from './output.js';
import { ResultFile } from './result-file.js';

/** Exit codes, documented in --help. */
export const Exit = {
  OK: 0,
  JOB_FAILED: 1,
  USAGE: 2,
  BROKER: 3,
  TIMEOUT: 4,
  CONFIG: EXIT_CONFIG,
  INTERRUPTED: 130,
} as const;

const HELP = `pipeline — submit jobs to the amqp-pipeline and print their results

Usage:
  pipeline range FROM TO          primes AND squares of every integer in [FROM, TO]
  pipeline primes FROM TO         the primes in [FROM, TO]
  pipeline squares FROM TO        the square of every integer in [FROM, TO] (exact;
                                  squares above 2^53 are printed as exact digit strings)
  pipeline titles URL...          the <title> of each web page
  pipeline titles --file FILE     URLs from FILE, one per line ('-' reads stdin)
  pipeline collect BATCH          results of an earlier batch (see --no-wait)
  pipeline topology               the exchanges, queues, bindings and per-role permissions
  pipeline topology --export      the same as broker definitions (JSON) for load_definitions:
                                  this is how rabbitmq/definitions.json is made

Options:
  --count           a summary instead of the list: how many, first, last, exact sum.
                    A prime count over more than 1e9 numbers goes as jobs of up to 1e9
                    (~0.2 s of work each, the last ones shorter), shared by every running
                    prime-filter; --chunk overrides
  --chunk N         split the range into jobs of N numbers each, shared by every running
                    copy of the service; lists come back in order, counts are added up
  --json            one JSON object per result on stdout (for scripts); nothing else on stdout.
                    A long list arrives as several lines with "part": {"index", "last"}
  --timeout SECS    longest wait for results (default 120); what has not arrived
                    stays queued, and 'pipeline collect BATCH' picks it up later
  --no-wait         publish, print the batch id, and exit; results wait in a durable
                    queue (pipeline.replies.BATCH) until collected or expired
  -f, --file FILE   with 'titles': read URLs from FILE ('-' for stdin); blank lines
                    and lines starting with # are skipped
  -o, --out FILE    append the results to FILE as JSON lines (as --json prints them)
                    instead of printing them. Safe to repeat: 'pipeline collect BATCH
                    -o FILE' after a crash or Ctrl-C skips every result FILE already holds,
                    so each result is in FILE exactly once (on stdout, the last second
                    before a crash may be printed again by collect)
  -h, --help        this text
  --version         the version

Examples:
  pipeline range 2 100                      the original example: primes of 2..100 and their squares
  pipeline primes 1 1e10 --count            count the primes below 10^10 (in 15 jobs)
  pipeline primes 1 1e10 --count --chunk 5e7   the same in 200 smaller jobs
  pipeline primes 1000000 1001000 --json | jq '.primes | length'
  pipeline titles https://example.com https://www.rabbitmq.com
  B=$(pipeline squares 1 50000 --no-wait --json | jq -r .batch); pipeline collect "$B"
  pipeline primes 1 1e8 --chunk 1e6 -o primes.jsonl   if it dies, finish with:
  pipeline collect BATCH -o primes.jsonl              (BATCH: see the log, or the file)

Environment:
  AMQP_URL            broker (default amqp://guest:guest@127.0.0.1:5672)
  REPLY_QUEUE_TTL_MS  how long uncollected results are kept (default 86400000, a day)
  MAX_RANGE_WIDTH     most numbers in one list job (default 10000000); wider needs --count or --chunk
  MAX_COUNT_WIDTH     most numbers in one --count job (default 100000000000); wider needs --chunk
  LOG_LEVEL           diagnostics on stderr, JSON lines (default error)
  WORK_QUEUE_TYPE     quorum (default) or classic; must match the services' setting

Exit codes:
  0 every job succeeded     1 some job failed (its error is printed)
  2 usage error             3 broker unreachable or connection lost
  4 timed out (some results missing; collect them later)   78 bad configuration
  130 interrupted (Ctrl-C or SIGTERM): what has not arrived stays queued for collect
`;

class UsageError extends Error {}

interface Parsed {
  command: string;
  export: boolean;
  args: string[];
  json: boolean;
  count: boolean;
  chunk: number | undefined;
  wait: boolean;
  timeoutMs: number;
  file: string | undefined;
  out: string | undefined;
}

function parse(argv: string[]): Parsed | 'help' | 'version' {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean', default: false },
        count: { type: 'boolean', default: false },
        chunk: { type: 'string' },
        timeout: { type: 'string' },
        'no-wait': { type: 'boolean', default: false },
        export: { type: 'boolean', default: false },
        file: { type: 'string', short: 'f' },
        out: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  if (values.version) return 'version';
  const [command, ...args] = positionals;
  if (!command) throw new UsageError('no command given');
  let timeoutMs = 120_000;
  if (values.timeout !== undefined) {
    const secs = Number(values.timeout);
    if (!Number.isFinite(secs) || secs <= 0) throw new UsageError(`--timeout must be a positive number of seconds, not "${values.timeout}"`);
    timeoutMs = Math.round(secs * 1000);
  }
  const chunk = values.chunk === undefined ? undefined : integer('--chunk', values.chunk);
  if (chunk !== undefined && chunk < 1) throw new UsageError('--chunk must be at least 1');
  return { command, export: values.export, args, json: values.json, count: values.count, chunk, wait: !values['no-wait'], timeoutMs, file: values.file, out: values.out };
}

/** An integer as people type it: 100, -5, 10_000_000, 1e10. Exact, or refused. */
function integer(name: string, text: string | undefined): number {
  if (text === undefined) throw new UsageError(`missing ${name}`);
  const plain = text.replace(/_/g, '');
  const m = /^(-?)(\d+)(?:e(\d+))?$/i.exec(plain);
  if (!m) throw new UsageError(`${name} must be an integer (like 100, 10_000 or 1e9), not "${text}"`);
  const n = BigInt(`${m[1]}${m[2]}`) * 10n ** BigInt(m[3] ?? 0);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new UsageError(`${name} ${text} is out of range: integers up to ±${Number.MAX_SAFE_INTEGER} (2^53 - 1)`);
  }
  return Number(n);
}

/** Most jobs one command may submit. */
const MAX_JOBS = 1_000_000;

function rangeRequest(target: RangeTarget, p: Parsed, config: Config): JobSpec[] {
  const name = target === 'all' ? 'range' : target;
  if (p.args.length !== 2) throw new UsageError(`'${name}' takes two integers, FROM and TO`);
  const from = integer('FROM', p.args[0]);
  const to = integer('TO', p.args[1]);
  if (from > to) throw new UsageError(`FROM (${from}) is greater than TO (${to})`);
  const range = { from, to, ...(p.count ? { count: true } : {}) };
  const width = to - from + 1;
  // A count with no --chunk: the primes are split (see primeCountRanges), squares are one job.
  const autoChunk = p.count && p.chunk === undefined && target === 'primes' ? primeCountChunk(width, MAX_JOBS) : undefined;
  const chunk = p.chunk ?? autoChunk;
  const perJob = chunk === undefined ? width : Math.min(chunk, width);
  const [limit, setting] = p.count ? [config.MAX_COUNT_WIDTH, 'MAX_COUNT_WIDTH'] : [config.MAX_RANGE_WIDTH, 'MAX_RANGE_WIDTH'];
  if (perJob > limit) {
    const advice = p.chunk !== undefined ? `use a smaller --chunk (at most ${limit})` : p.count ? `add --chunk N (N <= ${limit})` : `add --count for a summary, or --chunk N (N <= ${limit}) to split it`;
    throw new UsageError(`${from}..${to} holds ${width} numbers, and one ${p.count ? 'count' : 'list'} job may cover at most ${limit} (${setting}): ${advice}`);
  }
  if (p.chunk !== undefined && chunkCount(range, p.chunk) > MAX_JOBS) {
    throw new UsageError(`--chunk ${p.chunk} would make ${chunkCount(range, p.chunk)} jobs; at most ${MAX_JOBS} per command: use a larger --chunk`);
  }
  return p.count && p.chunk === undefined ? countJobs(target, range, MAX_JOBS) : rangeJobs(target, range, p.chunk);
}

async function readUrls(file: string): Promise<string[]> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function titleJobs(p: Parsed): Promise<JobSpec[]> {
  if (p.count || p.chunk !== undefined) throw new UsageError("--count and --chunk apply to ranges, not to 'titles'");
  const urls = [...p.args, ...(p.file ? await readUrls(p.file) : [])];
  if (urls.length === 0) throw new UsageError("'titles' needs at least one URL, or --file FILE");
  for (const url of urls) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UsageError(`not a URL: "${url}" (write it in full, e.g. https://example.com/)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`only http and https URLs can be fetched, not "${url}"`);
  }
  return urls.map(urlJob);
}

let stdoutBlocked: Promise<void> | undefined;

/** Writes to stdout; the promise resolves once stdout has room again (backpressure). */
function write(text: string): Promise<void> {
  if (!process.stdout.write(text) && !stdoutBlocked) {
    stdoutBlocked = new Promise<void>((resolve) =>
      process.stdout.once('drain', () => {
        stdoutBlocked = undefined;
        resolve();
      }),
    );
  }
  return stdoutBlocked ?? Promise.resolve();
}

function describeTopology(topology: Topology): string {
  const lines = ['Exchanges:'];
  for (const e of topology.exchanges) lines.push(`  ${e.name} (${e.type})`);
  lines.push('Queues:');
  for (const q of topology.queues) lines.push(`  ${q.name}  ${JSON.stringify(q.arguments)}`);
  lines.push('Bindings:');
  for (const b of topology.bindings) lines.push(`  ${b.exchange} --${b.routingKey || '(any)'}--> ${b.queue}`);
  lines.push('Per-role permissions (configure / write / read):');
  for (const [role, perm] of Object.entries(Roles)) lines.push(`  ${role}\n    configure ${perm.configure}\n    write     ${perm.write}\n    read      ${perm.read}`);
  lines.push(`Reply queues: ${REPLY_QUEUE_PREFIX}<batch> (classic, durable, x-expires)`);
  return `${lines.join('\n')}\n`;
}

/** A progress bar on stderr for batches with several results, when stderr is a terminal. */
function progressBar(p: Parsed): { update: (done: number, total: number) => void; stop: () => void } {
  if (p.json || !process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  let bar: cliProgress.SingleBar | undefined;
  const started = Date.now();
  return {
    update(done, total) {
      if (total < 2) return;
      if (!bar) {
        bar = new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: '{bar} {value}/{total} results | {rate}/s | ETA {eta_formatted}',
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0, { rate: '0' });
      }
      const secs = (Date.now() - started) / 1000;
      bar.update(done, { rate: secs > 0 ? (done / secs).toFixed(1) : '0' });
    },
    stop() {
      bar?.stop();
    },
  };
}

/** Set when Ctrl-C (or SIGTERM) stopped the wait. */
const interrupt = new AbortController();

function report(outcome: BatchOutcome, p: Parsed): number {
  const { stats } = outcome;
  if (!outcome.complete) {
    const why = interrupt.signal.aborted ? 'interrupted' : `timed out after ${p.timeoutMs / 1000}s`;
    const lines = [`pipeline: ${why} with ${outcome.missing.length} result(s) missing:`];
    for (const m of outcome.missing.slice(0, 10)) lines.push(`  ${m.kind} of ${JSON.stringify(m.input)} (job ${m.id})`);
    if (outcome.missing.length > 10) lines.push(`  ... and ${outcome.missing.length - 10} more`);
    lines.push(`They stay queued: run \`pipeline collect ${outcome.batch}\` later (are the consumers running? npm run consumers).`);
    process.stderr.write(`${lines.join('\n')}\n`);
    return interrupt.signal.aborted ? Exit.INTERRUPTED : Exit.TIMEOUT;
  }
  if (!p.json) {
    const extra =
      (stats.duplicates ? `, ${stats.duplicates} duplicate(s) dropped` : '') +
      (stats.unexpected ? `, ${stats.unexpected} unexpected message(s) dropped` : '');
    process.stderr.write(`batch ${outcome.batch}: ${stats.received} result(s), ${outcome.failed} failed${extra}\n`);
  }
  return outcome.failed > 0 ? Exit.JOB_FAILED : Exit.OK;
}

async function run(argv: string[]): Promise<number> {
  const p = parse(argv);
  if (p === 'help') {
    process.stdout.write(HELP);
    return Exit.OK;
  }
  if (p === 'version') {
    process.stdout.write('pipeline 0.1.0\n');
    return Exit.OK;
  }

  const config: Config = loadConfig(process.env, { LOG_LEVEL: 'error', CONNECT_RETRIES: '2' });
  let jobs: JobSpec[] | undefined;
  let batch: string | undefined;
  let request: Record<string, unknown> | undefined;
  switch (p.command) {
    case 'range':
    case 'primes':
    case 'squares': {
      const target: RangeTarget = p.command === 'range' ? 'all' : p.command;
      jobs = rangeRequest(target, p, config);
      request = jobs.length > 1 || p.count ? { from: integer('FROM', p.args[0]), to: integer('TO', p.args[1]) } : undefined;
      break;
    }
    case 'titles':
      jobs = await titleJobs(p);
      break;
    case 'collect':
      if (p.args.length !== 1 || !BATCH_ID_PATTERN.test(p.args[0] as string)) throw new UsageError("'collect' takes one batch id, as printed by --no-wait");
      batch = p.args[0];
      break;
    case 'topology':
      // WORK_QUEUE_TYPE=classic exports definitions with classic work queues.
      process.stdout.write(
        p.export
          ? `${JSON.stringify(brokerDefinitions(defaultUsers(process.env), topologyOf(config.WORK_QUEUE_TYPE, replyQueueType(config))), null, 2)}\n`
          : describeTopology(topologyOf(config.WORK_QUEUE_TYPE, replyQueueType(config))),
      );
      return Exit.OK;
    case 'help':
      process.stdout.write(HELP);
      return Exit.OK;
    default:
      throw new UsageError(`unknown command "${p.command}"`);
  }

  const log = createLogger('pipeline', { level: config.LOG_LEVEL }, 2);
  // The output file first: a bad path is a usage error, before any connection is open.
  const file = p.out === undefined ? undefined : await openOutFile(p.out);
  const client = await PipelineClient.connect(config, log).catch(async (err: unknown) => {
    await file?.close();
    throw err;
  });
  const printer = new HumanPrinter(Math.max(40, process.stdout.columns ?? 80));
  const onResult = file ? file.write : (r: Emitted): Promise<void> => write(p.json ? jsonLine(r) : printer.format(r));
  const written = file?.has;
  const flushed = async () => {
    await write('');
    await file?.sync();
  };
  const progress = progressBar(p);
  try {
    if (batch !== undefined) {
      const outcome = await client.collect(batch, { onResult, ...(written ? { written } : {}), onProgress: progress.update, timeoutMs: p.timeoutMs, signal: interrupt.signal });
      progress.stop();
      await flushed();
      return report(outcome, p);
    }
    for (const queue of await client.idleQueues(jobs ?? [])) {
      process.stderr.write(`pipeline: warning: no service is consuming ${queue}; its jobs wait there until one starts (npm run consumers)\n`);
    }
    const output = p.command === 'titles' ? 'independent' : p.count ? 'combine' : 'ordered';
    const outcome = await client.submit(jobs ?? [], {
      wait: p.wait,
      timeoutMs: p.timeoutMs,
      output,
      ...(request ? { request } : {}),
      onResult,
      ...(written ? { written } : {}),
      onProgress: progress.update,
      signal: interrupt.signal,
    });
    progress.stop();
    await flushed();
    if (!p.wait) {
      if (p.json) await write(`${JSON.stringify({ batch: outcome.batch, jobs: outcome.jobs })}\n`);
      else {
        await write(`${outcome.batch}\n`);
        process.stderr.write(`submitted ${outcome.jobs} job(s); collect the results with: pipeline collect ${outcome.batch}\n`);
      }
      return Exit.OK;
    }
    return report(outcome, p);
  } finally {
    progress.stop();
    await client.close();
    await file?.close();
  }
}

async function openOutFile(path: string): Promise<ResultFile> {
  try {
    return await ResultFile.open(path);
  } catch (err) {
    throw new UsageError(`cannot use ${path} for --out: ${(err as Error).message}`);
  }
}

function fail(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`pipeline: ${err.message}\nRun 'pipeline --help' for usage.\n`);
    return Exit.USAGE;
  }
  if (isPipelineError(err)) {
    process.stderr.write(`pipeline: ${err.message}\n`);
    if (err.code === ErrorCodes.CONFIG) return Exit.CONFIG;
    if (err.code === ErrorCodes.BROKER_UNREACHABLE || err.code === ErrorCodes.CHANNEL_CLOSED) return Exit.BROKER;
    return Exit.JOB_FAILED;
  }
  process.stderr.write(`pipeline: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return Exit.JOB_FAILED;
}

// Ctrl-C or SIGTERM: stop waiting, leave what has not arrived queued, say how to collect it.
// A second one exits at once (explicitly, since a container's PID 1 has no default handling).
const onSignal = () => {
  if (interrupt.signal.aborted) process.exit(Exit.INTERRUPTED);
  interrupt.abort();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

process.exitCode = await run(process.argv.slice(2)).catch(fail);
