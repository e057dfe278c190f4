import { ServiceProcess, startServices, stopServices } from '@amqp-pipeline/devtools';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl, naivePrimes, runCli } from './helpers.js';

let filters: ServiceProcess[] = [];
beforeAll(async () => {
  // Two copies of the prime filter share the work queue; debug logs show who did which job.
  filters = await startServices(['prime-filter', 'prime-filter'], { env: { AMQP_URL: amqpUrl(), LOG_LEVEL: 'debug', PREFETCH: '1' } });
});
afterAll(async () => {
  await stopServices(filters);
});

const jobsDone = (p: ServiceProcess) => p.recentLines().filter((l) => l.includes('"msg":"job done"')).length;

describe('chunked fan-out and fan-in', () => {
  it('when a count is split into chunks, then both replicas share the jobs and the counts add up to pi(2*10^7)', async () => {
    const before = filters.map(jobsDone);
    const run = await runCli(['primes', '1', '2e7', '--count', '--chunk', '1e6', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines).toEqual([
      {
        batch: expect.any(String),
        input: { from: 1, to: 20_000_000 },
        jobs: 20,
        ok: true,
        kind: 'primes',
        summary: { count: 1_270_607, first: 2, last: 19_999_999, sum: '12272577818052' },
      },
    ]);
    const shares = filters.map((p, i) => jobsDone(p) - (before[i] ?? 0));
    expect(shares.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(20);
    for (const share of shares) expect(share).toBeGreaterThan(0);
  });

  it('when a count has hundreds of chunks, then each summary is folded in as it comes and the sum is exact', async () => {
    // Summaries are folded into running totals and acked at the next checkpoint, so a count
    // of any size needs no more of the reply window than a few (test/scale-matrix: 20,000).
    const run = await runCli(['primes', '1', '3e6', '--count', '--chunk', '5000', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines[0]).toMatchObject({ jobs: 600, summary: { count: 216_816, first: 2, last: 2_999_999 } });
  });

  it('when a list is split into chunks, then the chunks come back in order as one list', async () => {
    const run = await runCli(['primes', '1', '300000', '--chunk', '40000', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines).toHaveLength(8);
    expect(run.lines.map((l) => (l.input as { from: number }).from)).toEqual([1, 40001, 80001, 120001, 160001, 200001, 240001, 280001]);
    expect(run.lines.flatMap((l) => l.primes as number[])).toEqual(naivePrimes(1, 300_000));
  });
});
