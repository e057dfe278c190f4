/**
 * The scale matrix: every mode at sizes past every window and prefetch (the reply window is
 * 1,024 replies, 256 for long lists; a range service prefetches up to 128 jobs, a title fetcher
 * 64, a session 256), each with and without a replica SIGKILLed mid-batch, and `--no-wait`
 * followed by `collect`. Every row checks the exact answer: counts against a sieve, lists in
 * order and whole, every job answered once, and no stall of the reply path.
 *
 * By default the sizes 1, 2,000 and 20,000 run; SCALE=full adds 100 and 5,000.
 */
import { cliEntry, startServices, stopServices, type ServiceName, type ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, rangeJobs, urlJob, type BatchOutcome, type Emitted, type JobSpec } from '@amqp-pipeline/producer';
import { Queues, createLogger, loadConfig } from '@amqp-pipeline/shared';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl, httpServer, withChannel } from './helpers.js';

const FULL = process.env.SCALE === 'full';
const SIZES = FULL ? [1, 100, 2000, 5000, 20_000] : [1, 2000, 20_000];
/** Numbers per job: 20,000 jobs cover 1..2,000,000. */
const CHUNK = 100;

const env = { AMQP_URL: amqpUrl(), LOG_LEVEL: 'info', FETCH_ALLOW_PRIVATE: 'true' };
let client: PipelineClient;
/** The running replicas, by service; a killed one is replaced after its row. */
const replicas = new Map<ServiceName, ServiceProcess[]>();

async function ensureReplicas(name: ServiceName, n: number): Promise<void> {
  const alive = (replicas.get(name) ?? []).filter((p) => p.child.exitCode === null && p.child.signalCode === null);
  if (alive.length < n) alive.push(...(await startServices(Array.from({ length: n - alive.length }, () => name), { env })));
  replicas.set(name, alive);
}

/** SIGKILLs one replica of `name` (the first): mid-batch, its jobs in hand go back to the queue. */
function killOne(name: ServiceName): void {
  replicas.get(name)?.[0]?.child.kill('SIGKILL');
}

beforeAll(async () => {
  await Promise.all([ensureReplicas('prime-filter', 2), ensureReplicas('square-mapper', 2)]);
  client = await PipelineClient.connect(loadConfig({ ...process.env, AMQP_URL: amqpUrl() }), createLogger('scale', { level: 'warn' }, 2));
}, 120_000);

afterAll(async () => {
  await client?.close();
  await stopServices([...replicas.values()].flat());
});

// --- The exact answers -------------------------------------------------------------------

const LIMIT = 20_000 * CHUNK;
const composite = new Uint8Array(LIMIT + 1);
composite[0] = composite[1] = 1;
for (let p = 2; p * p <= LIMIT; p++) if (!composite[p]) for (let m = p * p; m <= LIMIT; m += p) composite[m] = 1;
const primesUpTo = (to: number) => {
  const out: number[] = [];
  for (let n = 2; n <= to; n++) if (!composite[n]) out.push(n);
  return out;
};
function primeSummary(to: number) {
  const list = primesUpTo(to);
  return { count: list.length, first: list[0] ?? null, last: list.at(-1) ?? null, sum: list.reduce((a, b) => a + BigInt(b), 0n).toString() };
}
/** The same for a bound past LIMIT, by a sieve of its own. */
function primeSummaryUpTo(to: number) {
  const c = new Uint8Array(to + 1);
  let count = 0;
  let sum = 0n;
  let last = 0;
  for (let n = 2; n <= to; n++) {
    if (c[n]) continue;
    count++;
    sum += BigInt(n);
    last = n;
    for (let m = n * n; m <= to; m += n) c[m] = 1;
  }
  return { count, first: 2, last, sum: sum.toString() };
}
function squareSummary(to: number) {
  const n = BigInt(to);
  return { count: to, first: 1, last: to * to, sum: ((n * (n + 1n) * (2n * n + 1n)) / 6n).toString() };
}

type Mode = 'lists' | 'counts' | 'squares';
const target = (mode: Mode) => (mode === 'squares' ? 'squares' : 'primes');
const service = (mode: Mode): ServiceName => (mode === 'squares' ? 'square-mapper' : 'prime-filter');

function jobsFor(mode: Mode, jobs: number): JobSpec[] {
  const range = { from: 1, to: jobs * CHUNK, ...(mode === 'counts' ? { count: true } : {}) };
  return rangeJobs(target(mode), range, CHUNK);
}

/** Checks the output as it comes: lists in order and whole, or one exact combined summary. */
function checker(mode: Mode, jobs: number) {
  const to = jobs * CHUNK;
  const emitted: Emitted[] = [];
  let next = 1; // squares: the next number whose square is owed
  let lastFrom = 1 - CHUNK;
  const expectedPrimes = mode === 'lists' ? primesUpTo(to) : [];
  let k = 0;
  const problems: string[] = [];
  return {
    onResult: (r: Emitted) => {
      if (mode === 'counts') {
        emitted.push(r);
        return;
      }
      if (r.type !== 'result' || !r.result.ok) {
        problems.push(`unexpected ${JSON.stringify(r).slice(0, 200)}`);
        return;
      }
      const values = 'primes' in r.result ? r.result.primes : 'squares' in r.result ? r.result.squares : [];
      const from = (r.input as { from: number }).from;
      // A job's parts share its `from`; a new job must be the next chunk.
      if (from !== lastFrom && from !== lastFrom + CHUNK) problems.push(`job ${from} came after job ${lastFrom}`);
      lastFrom = from;
      for (const v of values) {
        if (mode === 'squares') {
          if (v !== next * next) problems.push(`square ${v} where ${next * next} was owed`);
          next++;
        } else if (v !== expectedPrimes[k++]) problems.push(`prime ${v} where ${expectedPrimes[k - 1]} was owed`);
      }
    },
    verify(outcome: BatchOutcome) {
      expect(problems.slice(0, 5)).toEqual([]);
      expect(outcome.complete, `missing ${outcome.missing.length}`).toBe(true);
      expect(outcome.failed).toBe(0);
      expect(outcome.window.stalls).toBe(0);
      expect(outcome.stats.received).toBe(mode === 'counts' ? jobs : jobs);
      if (mode === 'squares') expect(next - 1).toBe(to);
      if (mode === 'lists') expect(k).toBe(expectedPrimes.length);
      if (mode === 'counts') {
        expect(emitted).toHaveLength(1);
        expect(emitted[0]).toMatchObject({ type: 'combined', jobs, result: { ok: true, summary: primeSummary(to) } });
      }
    },
  };
}

const output = (mode: Mode) => (mode === 'counts' ? 'combine' : 'ordered');
const request = (jobs: number) => ({ from: 1, to: jobs * CHUNK });

describe.each(['counts', 'lists', 'squares'] as const)('%s at scale', (mode) => {
  describe.each(SIZES)('%i jobs', (jobs) => {
    it.each([false, true])('when the batch runs (replica SIGKILLed mid-batch: %s), then the answer is exact and complete', async (kill) => {
      await ensureReplicas(service(mode), 2);
      // A one-job batch has no "mid-batch": its replica is killed as the job is sent.
      if (kill && jobs === 1) killOne(service(mode));
      const check = checker(mode, jobs);
      let killed = jobs === 1;
      const outcome = await client.submit(jobsFor(mode, jobs), {
        wait: true,
        timeoutMs: 90_000,
        output: output(mode),
        request: request(jobs),
        onResult: check.onResult,
        onProgress: (done, total) => {
          if (kill && !killed && done >= total / 3) {
            killed = true;
            killOne(service(mode));
          }
        },
      });
      check.verify(outcome);
      if (kill) expect(killed).toBe(true);
    }, 150_000);

    it('when the batch is sent with --no-wait and a replica is killed while it runs, then `collect` gets the exact answer', async () => {
      await ensureReplicas(service(mode), 2);
      const sent = await client.submit(jobsFor(mode, jobs), { wait: false, timeoutMs: 60_000, output: output(mode), request: request(jobs) });
      // Kill a replica once the work queue has started to drain (or at once for tiny batches).
      await withChannel(async (ch) => {
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline && jobs > 1) {
          const { messageCount } = await ch.checkQueue(mode === 'squares' ? Queues.squares.name : Queues.primes.name);
          if (messageCount <= (jobs * 2) / 3) break;
        }
      });
      killOne(service(mode));
      const check = checker(mode, jobs);
      const outcome = await client.collect(sent.batch, { timeoutMs: 90_000, onResult: check.onResult });
      check.verify(outcome);
    }, 150_000);
  });
});

describe('a narrow reply window', () => {
  // Small enough that 2,000 jobs overflow it many times over: held replies are bounded, and
  // the only ways past the bound are the publisher's lead (waiting) and spills (collect).
  const narrow = { prefetch: 128, holdMessages: 32, holdBytes: 1 << 20 };

  it('when an ordered batch is gathered while it runs and a replica is SIGKILLed, then the lead keeps every result within the window: in order, none sent round', async () => {
    await ensureReplicas('square-mapper', 2);
    const check = checker('squares', 2000);
    let killed = false;
    const outcome = await client.submit(jobsFor('squares', 2000), {
      wait: true,
      timeoutMs: 90_000,
      output: 'ordered',
      request: request(2000),
      window: narrow,
      onResult: check.onResult,
      onProgress: (done, total) => {
        if (!killed && done >= total / 3) {
          killed = true;
          killOne('square-mapper');
        }
      },
    });
    check.verify(outcome);
    expect(killed).toBe(true);
    expect(outcome.window).toMatchObject({ prefetch: 128, spilled: 0 });
  }, 150_000);

  it('when an ordered batch is collected out of order (a replica SIGKILLed while it ran), then replies past the bound are sent round and the lists still come in order', async () => {
    await ensureReplicas('square-mapper', 2);
    const sent = await client.submit(jobsFor('squares', 2000), { wait: false, timeoutMs: 60_000, output: 'ordered', request: request(2000) });
    await withChannel(async (ch) => {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && (await ch.checkQueue(Queues.squares.name)).messageCount > 1500);
    });
    killOne('square-mapper');
    const check = checker('squares', 2000);
    const outcome = await client.collect(sent.batch, { timeoutMs: 90_000, onResult: check.onResult, window: narrow });
    check.verify(outcome);
    expect(outcome.window.spilled).toBeGreaterThan(0);
  }, 150_000);
});

describe('titles at scale', () => {
  it('when 2,000 pages are fetched by two title-fetchers and one is SIGKILLed mid-batch, then every page gets exactly one title', async () => {
    await ensureReplicas('title-fetcher', 2);
    const site = await httpServer((req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(`<html><head><title>page ${req.url?.slice(1)}</title></head><body>x</body></html>`);
    });
    try {
      const n = 2000;
      const seen = new Map<string, number>();
      let killed = false;
      const outcome = await client.submit(
        Array.from({ length: n }, (_, i) => urlJob(`${site.base}/${i}`)),
        {
          wait: true,
          timeoutMs: 90_000,
          output: 'independent',
          onResult: (r) => {
            if (r.type === 'result' && r.result.ok && 'title' in r.result) seen.set(r.result.title, (seen.get(r.result.title) ?? 0) + 1);
          },
          onProgress: (done, total) => {
            if (!killed && done >= total / 3) {
              killed = true;
              killOne('title-fetcher');
            }
          },
        },
      );
      expect(outcome.complete).toBe(true);
      expect(outcome.failed).toBe(0);
      expect(outcome.window.stalls).toBe(0);
      expect(seen.size).toBe(n);
      expect([...seen.values()].every((c) => c === 1)).toBe(true);
      expect(seen.has('page 1999')).toBe(true);
    } finally {
      await site.close();
      await stopServices(replicas.get('title-fetcher') ?? []);
      replicas.delete('title-fetcher');
    }
  });
});

describe('sessions at scale', () => {
  it('when 2,000 calls are in flight on one session and a prime-filter is SIGKILLed mid-way, then each call gets its own exact result', async () => {
    await ensureReplicas('prime-filter', 2);
    const session = await client.session({ timeoutMs: 90_000 });
    try {
      let done = 0;
      let killed = false;
      const results = await Promise.all(
        Array.from({ length: 2000 }, async (_, i) => {
          const [job] = rangeJobs('primes', { from: i * CHUNK + 1, to: (i + 1) * CHUNK, count: true });
          const r = await session.call(job!);
          if (++done >= 666 && !killed) {
            killed = true;
            killOne('prime-filter');
          }
          return r;
        }),
      );
      expect(killed).toBe(true);
      results.forEach((r, i) => {
        const from = i * CHUNK + 1;
        const list = primesUpTo((i + 1) * CHUNK).filter((p) => p >= from);
        expect(r).toMatchObject({ ok: true, summary: { count: list.length } });
      });
    } finally {
      await session.close();
    }
  });
});

describe('the CLI at scale', () => {
  const cli = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [cliEntry(), ...args], { env: { ...process.env, AMQP_URL: amqpUrl() }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });

  it.each([1000, 666, 400, 100])('when `primes 1 2000000 --chunk %i --count` runs, then it finishes with pi(2e6) and exit 0', async (chunk) => {
    await ensureReplicas('prime-filter', 2);
    const run = await cli(['primes', '1', '2000000', '--chunk', String(chunk), '--count', '--json', '--timeout', '60']);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, summary: primeSummary(2_000_000) });
    expect(run.stderr).not.toContain('stalled');
  });

  it('when a prime-filter is SIGKILLed during a 30,000-job count batch, then the count is exact and the CLI exits 0', async () => {
    await ensureReplicas('prime-filter', 1);
    // Small jobs go 50 to a message, so a batch of 3,000 was over before a replica could be
    // killed in it: 30,031 jobs of 666 numbers. The victim logs each job it finishes, so it can
    // be killed when it is surely mid-batch.
    let victimDone = 0;
    const [victim] = await startServices(['prime-filter'], {
      env: { ...env, LOG_LEVEL: 'debug' },
      onLine: (line) => {
        if (line.includes('"msg":"job done"')) victimDone++;
      },
    });
    const running = cli(['primes', '1', '20000000', '--chunk', '666', '--count', '--json', '--timeout', '60']);
    let finished = false;
    void running.then(() => (finished = true));
    const deadline = Date.now() + 30_000;
    while (victimDone < 200 && !finished && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    // Killed mid-batch: it had done jobs, and the CLI was still waiting for others.
    const finishedAtKill = finished;
    victim!.child.kill('SIGKILL');
    const run = await running;
    expect(victimDone).toBeGreaterThanOrEqual(200);
    expect(finishedAtKill).toBe(false);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ jobs: 30031, ok: true, summary: primeSummaryUpTo(20_000_000) });
    await victim!.exited;
  });
});
