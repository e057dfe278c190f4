/**
 * The first large range of a fresh prime-filter against the same on a warm one: `pipeline primes
 * 1 1e9 --count` end to end (the CLI as a user runs it: its own Node process, connect, one job,
 * the answer), through the real broker at AMQP_URL.
 *
 * Each round starts a prime-filter, waits for its `consuming` line and at once runs the command
 * (fresh), then runs it again on the same process (warm), then stops it: the two take turns, so a
 * slow spell of the machine hits both alike. BENCH_ROUNDS rounds (default 5); the medians are
 * reported, and the target reads the median of the per-round ratios. Every answer is checked
 * against pi(1e9).
 *
 * Each round does the same with `pipeline primes 1 100 --count` on another fresh process, for
 * information: that range is sieved on the service's own thread, so what its first command
 * costs more is the service's first job itself (its code not yet compiled), no worker thread's.
 *
 * The note also gives what each command cost the service in CPU (its worker threads included),
 * and how long the fresh service took from spawn to `consuming` and to its threads being warm.
 */
import { spawn } from 'node:child_process';
import { ServiceProcess, cliEntry } from '@amqp-pipeline/devtools';
import { loadConfig } from '@amqp-pipeline/shared';
import { cpuSeconds, median } from './proc.js';
import type { Row } from './table.js';

const SUITE = 'cold-start';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const LARGE = ['primes', '1', '1e9', '--count', '--json'];
const SMALL = ['primes', '1', '100', '--count', '--json'];
/** pi(1e9) and pi(100), for checking the answers. */
const PI_1E9 = 50_847_534;
const PI_100 = 25;
/** Most a fresh ratio may be off a warm one and still count as "as fast". */
const TARGET_RATIO = 1.1;

/** One run of the CLI: wall seconds from spawn to exit, and the count it printed. */
function cli(env: NodeJS.ProcessEnv, args: string[]): Promise<{ secs: number; count: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [cliEntry(), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', reject);
    child.once('exit', (code) => {
      const secs = (performance.now() - started) / 1000;
      if (code !== 0) return reject(new Error(`pipeline ${args.join(' ')} exited ${code}: ${err || out}`));
      const count = (JSON.parse(out) as { summary?: { count?: number } }).summary?.count ?? -1;
      resolve({ secs, count });
    });
  });
}

interface Round {
  fresh: number;
  warm: number;
  /** Service CPU seconds (main thread and worker threads) spent during each command. */
  freshCpu: number;
  warmCpu: number;
  /** Milliseconds from spawn to the service's `consuming` line, and to its threads being warm (NaN if it never says). */
  toConsuming: number;
  toWarm: number;
  counts: number[];
}

/** A fresh prime-filter: `args` run at its `consuming` line, then again; then it is stopped. */
async function round(env: NodeJS.ProcessEnv, args: string[]): Promise<Round> {
  const spawned = performance.now();
  let toConsuming = Number.NaN;
  let toWarm = Number.NaN;
  const proc = new ServiceProcess('prime-filter', {
    env: { AMQP_URL: env.AMQP_URL ?? '' },
    onLine: (line) => {
      if (line.includes('"msg":"consuming"')) toConsuming = performance.now() - spawned;
      if (line.includes('"msg":"sieve worker threads warm"')) toWarm = performance.now() - spawned;
    },
  });
  try {
    await proc.ready;
    const pid = proc.pid ?? 0;
    const cpu0 = cpuSeconds(pid);
    const fresh = await cli(env, args);
    const cpu1 = cpuSeconds(pid);
    const warm = await cli(env, args);
    const cpu2 = cpuSeconds(pid);
    return { fresh: fresh.secs, warm: warm.secs, freshCpu: cpu1 - cpu0, warmCpu: cpu2 - cpu1, toConsuming, toWarm, counts: [fresh.count, warm.count] };
  } finally {
    await proc.stop();
  }
}

export async function run(): Promise<Row[]> {
  const config = loadConfig(process.env);
  const env = { ...process.env, AMQP_URL: config.AMQP_URL };
  // One round untimed: the first run of anything on this machine (disk cache, the broker's
  // queue declarations) would otherwise land on the first fresh figure only.
  await round(env, LARGE);
  const large: Round[] = [];
  const small: Round[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    large.push(await round(env, LARGE));
    small.push(await round(env, SMALL));
  }

  const ms = (xs: number[]) => `${Math.round(median(xs))} ms`;
  const compare = (rounds: Round[], expected: number) => {
    const ratios = rounds.map((r) => r.fresh / r.warm);
    const counts = rounds.flatMap((r) => r.counts);
    const right = counts.every((c) => c === expected);
    return {
      fresh: median(rounds.map((r) => r.fresh)),
      warm: median(rounds.map((r) => r.warm)),
      ratio: median(ratios),
      right,
      note:
        `medians of ${ROUNDS} rounds, fresh then warm in each; median of per-round ratios ${median(ratios).toFixed(2)}x ` +
        `(rounds: ${ratios.map((x) => x.toFixed(2)).join(' ')}); service CPU per command: fresh ${ms(rounds.map((r) => r.freshCpu * 1000))}, ` +
        `warm ${ms(rounds.map((r) => r.warmCpu * 1000))}; ${right ? `every count ${expected}` : `WRONG COUNTS: ${counts.join(', ')}`}`,
    };
  };
  const big = compare(large, PI_1E9);
  const tiny = compare(small, PI_100);
  const warmAfter = large.map((r) => r.toWarm);
  const base = { suite: SUITE, baselineName: 'the same command again on that service, warm', unit: 's', higherIsBetter: false };
  return [
    {
      ...base,
      case: '`pipeline primes 1 1e9 --count` end to end, on a prime-filter just started (run at its `consuming` line)',
      ours: big.fresh,
      baseline: big.warm,
      target: `<= ${TARGET_RATIO}x warm`,
      met: big.ratio <= TARGET_RATIO && big.right,
      note: big.note,
    },
    {
      ...base,
      case: '`pipeline primes 1 100 --count` the same way (sieved on the service thread: no worker thread involved)',
      ours: tiny.fresh,
      baseline: tiny.warm,
      note: `information: the first job's own cost; ${tiny.note}`,
    },
    {
      suite: SUITE,
      case: 'prime-filter start: spawn to `consuming`',
      ours: median(large.map((r) => r.toConsuming)),
      unit: 'ms',
      higherIsBetter: false,
      note: warmAfter.some((t) => Number.isNaN(t))
        ? 'the service did not report warm threads'
        : `of which its worker threads starting and warming up: until ${ms(warmAfter)} after spawn (before it connects); median of ${ROUNDS}`,
    },
  ];
}
