/**
 * The `pipeline` commands that do real work (cli.ts loads this module only for them): build
 * the jobs, connect, submit or collect, print, and turn the outcome into an exit code.
 */
import { readFile } from 'node:fs/promises';
import {
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
} from '@amqp-pipeline/shared/client';
import type { SingleBar } from 'cli-progress';
import { Exit, UsageError, rangeArgs, type Parsed } from './cli-args.js';
import { PipelineClient, type BatchOutcome } from './client.js';
import type { Emitted } from './collector.js';
import { statusCommand } from './status.js';
import { BATCH_ID_PATTERN, chunkCount, countJobs, primeCountChunk, rangeJobs, urlJob, type JobSpec, type RangeTarget } from './jobs.js';
import { HumanPrinter, jsonLine } from './output.js';
import { ResultFile } from './result-file.js';

/** Most jobs one command may submit. */
const MAX_JOBS = 1_000_000;

function rangeRequest(target: RangeTarget, p: Parsed, config: Config): JobSpec[] {
  const { from, to } = rangeArgs(p);
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
  lines.push(`Reply queues: ${REPLY_QUEUE_PREFIX}<user>:<batch> with .manifest and .progress (durable, x-expires; quorum on a cluster), bound to the producer's exchange pipeline.producer.<user>`);
  return `${lines.join('\n')}\n`;
}

/** A progress bar on stderr for batches with several results, when stderr is a terminal. */
async function progressBar(p: Parsed): Promise<{ update: (done: number, total: number) => void; stop: () => void }> {
  if (p.json || !process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  // Loaded only for a terminal: scripts and pipes never pay for it.
  const { default: cliProgress } = await import('cli-progress');
  let bar: SingleBar | undefined;
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
      (stats.unexpected ? `, ${stats.unexpected} unexpected message(s) refused (not results of its jobs; LOG_LEVEL=warn logs each with its sender)` : '');
    process.stderr.write(`batch ${outcome.batch}: ${stats.received} result(s), ${outcome.failed} failed${extra}\n`);
  }
  return outcome.failed > 0 ? Exit.JOB_FAILED : Exit.OK;
}

/** Runs a parsed command line; every failure becomes its exit code (see --help). */
export function main(p: Parsed): Promise<number> {
  return run(p).catch(fail);
}

async function run(p: Parsed): Promise<number> {
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
      request = jobs.length > 1 || p.count ? rangeArgs(p) : undefined;
      break;
    }
    case 'titles':
      jobs = await titleJobs(p);
      break;
    case 'status':
      // The management HTTP API, not AMQP: no broker connection is opened.
      return statusCommand({ json: p.json, watch: p.watch });
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
  const progress = await progressBar(p);
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

export function fail(err: unknown): number {
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
  // The CLI runs as a bundle: its stack names bundle lines unless Node maps them back.
  const hint = process.execArgv.includes('--enable-source-maps') || /--enable-source-maps/.test(process.env.NODE_OPTIONS ?? '') ? '' : '\n(run with NODE_OPTIONS=--enable-source-maps to see the TypeScript lines)';
  process.stderr.write(`pipeline: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}${hint}\n`);
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
