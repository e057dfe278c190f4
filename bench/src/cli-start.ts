/**
 * How fast the `pipeline` command answers: its start-up against bare Node (`node -e 0`),
 * measured in the same run, the runs taking turns so that a slow spell of the machine hits
 * both alike.
 *
 * - `--help`, a usage error and `completion bash`: spawn to exit, the CLI as npm links it
 *   (`node producer/bin/pipeline.js`); targets from issue 24: under 0.15 s.
 * - `npx pipeline --help`, for information: what the README's `npx` form adds.
 * - A one-job command, `pipeline primes 1 100 --json`, with a prime-filter running: from spawn
 *   to its first publish (the CLI logs `publishing the first job` with the time, at debug
 *   level) and to its exit; target: the first publish under 0.3 s. The same command run from
 *   tsc's output (dist/cli.js) instead of the bundle takes turns with it, for what the bundle saves.
 *
 * BENCH_CLI_RUNS runs of each (default 15); medians are reported.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { ServiceProcess, cliEntry } from '@amqp-pipeline/devtools';
import { loadConfig } from '@amqp-pipeline/shared';
import { median } from './proc.js';
import type { Row } from './table.js';

const SUITE = 'cli-start';
const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 15);

interface Run {
  /** Spawn to exit, ms. */
  ms: number;
  /** Spawn to the first publish, ms (NaN when the command publishes nothing). */
  firstPublishMs: number;
  code: number | null;
  stdout: string;
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    const spawnedAt = Date.now();
    const started = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('exit', (code) => {
      const ms = performance.now() - started;
      let firstPublishMs = NaN;
      for (const line of stderr.split('\n')) {
        if (!line.includes('publishing the first job')) continue;
        // pino's ISO time, to the millisecond, on the same clock as spawnedAt.
        firstPublishMs = Date.parse((JSON.parse(line) as { time: string }).time) - spawnedAt;
      }
      resolve({ ms, firstPublishMs, code, stdout });
    });
  });
}

export async function run(): Promise<Row[]> {
  const config = loadConfig(process.env);
  const node = process.execPath;
  const bin = cliEntry();
  const bare: number[] = [];
  const help: number[] = [];
  const usage: number[] = [];
  const completion: number[] = [];
  const npx: number[] = [];
  const npxBare: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    bare.push((await timed(node, ['-e', '0'])).ms);
    const h = await timed(node, [bin, '--help']);
    if (h.code !== 0 || !h.stdout.includes('Usage:')) throw new Error(`pipeline --help exited ${h.code}`);
    help.push(h.ms);
    const u = await timed(node, [bin, 'primes', '5', '2']);
    if (u.code !== 2) throw new Error(`pipeline primes 5 2 exited ${u.code}, not 2`);
    usage.push(u.ms);
    const c = await timed(node, [bin, 'completion', 'bash']);
    if (c.code !== 0 || !c.stdout.includes('complete -F')) throw new Error(`pipeline completion bash exited ${c.code}`);
    completion.push(c.ms);
    if (i < 5) {
      npxBare.push((await timed(node, ['-e', '0'])).ms);
      const n = await timed('npx', ['pipeline', '--help']);
      if (n.code !== 0) throw new Error(`npx pipeline --help exited ${n.code}`);
      npx.push(n.ms);
    }
  }

  const proc = new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL, LOG_LEVEL: 'info' } });
  const oneBare: number[] = [];
  const firstPublish: number[] = [];
  const oneJob: number[] = [];
  // The same command from tsc's output, not the bundle: what the bundle saves.
  const unbundled = join(dirname(bin), '..', 'dist', 'cli.js');
  const firstPublishUnbundled: number[] = [];
  try {
    await proc.ready;
    const env = { ...process.env, AMQP_URL: config.AMQP_URL, LOG_LEVEL: 'debug' };
    await timed(node, [bin, 'primes', '1', '100', '--json'], env); // the broker's first batch of this run
    for (let i = 0; i < RUNS; i++) {
      oneBare.push((await timed(node, ['-e', '0'])).ms);
      const r = await timed(node, [bin, 'primes', '1', '100', '--json'], env);
      if (r.code !== 0 || (JSON.parse(r.stdout.trim()) as { primes?: number[] }).primes?.length !== 25) throw new Error(`pipeline primes 1 100 exited ${r.code}: ${r.stdout}`);
      if (!Number.isFinite(r.firstPublishMs)) throw new Error('pipeline primes 1 100 did not log its first publish');
      firstPublish.push(r.firstPublishMs);
      oneJob.push(r.ms);
      const u = await timed(node, [unbundled, 'primes', '1', '100', '--json'], env);
      if (u.code !== 0 || !Number.isFinite(u.firstPublishMs)) throw new Error(`dist/cli.js primes 1 100 exited ${u.code}`);
      firstPublishUnbundled.push(u.firstPublishMs);
    }
  } finally {
    await proc.stop();
  }

  const b = median(bare);
  const row = (c: string, values: number[], baseline: number, target?: { ms: number; text: string }, note = ''): Row => {
    const ours = median(values);
    return {
      suite: SUITE,
      case: c,
      ours,
      baseline,
      baselineName: 'node -e 0',
      unit: 'ms',
      higherIsBetter: false,
      ...(target ? { target: target.text, met: ours < target.ms } : {}),
      note: `${(ours / baseline).toFixed(2)}x bare node; ${values.length} runs, taking turns with it${note}`,
    };
  };
  return [
    row('pipeline --help', help, b, { ms: 150, text: '< 150 ms' }),
    row('usage error (pipeline primes 5 2, exit 2)', usage, b, { ms: 150, text: '< 150 ms' }),
    row('pipeline completion bash', completion, b, { ms: 150, text: '< 150 ms' }),
    row('npx pipeline --help', npx, median(npxBare), undefined, '; what npx adds: put pipeline on the PATH (README)'),
    row('one-job command: spawn to first publish (primes 1 100)', firstPublish, median(oneBare), { ms: 300, text: '< 300 ms' }, `; to exit with its answer: ${median(oneJob).toFixed(0)} ms; unbundled (dist/cli.js) ${median(firstPublishUnbundled).toFixed(0)} ms to first publish`),
  ];
}
