/**
 * A session (PipelineSession) across a connection loss, on a throwaway node (run in CI):
 * every connection is reset (RST) while calls are in flight; each call still resolves with
 * its own, right result once the producer and the service have reconnected, and the session
 * goes on serving calls.
 */
import { rangeJob } from '@amqp-pipeline/producer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rig } from './harness.js';
import { sleep } from './rabbit-node.js';

let rig: Rig;

beforeAll(async () => {
  rig = await Rig.start();
  await rig.startService('prime-filter');
});

afterAll(async () => {
  await rig?.stop();
});

/** pi(n) for small n, by trial division: the expected counts. */
function countPrimes(from: number, to: number): number {
  let n = 0;
  for (let k = Math.max(2, from); k <= to; k++) {
    let prime = true;
    for (let d = 2; d * d <= k; d++) if (k % d === 0) prime = false;
    if (prime) n++;
  }
  return n;
}

describe('a session across a connection loss', () => {
  it('when every connection is reset while calls are in flight, then each call still gets its own result, and later calls work', async () => {
    const client = await rig.client('faults-session');
    const session = await client.session({ timeoutMs: 60_000 });
    const call = async (i: number) => {
      const from = i * 1000;
      const result = await session.call(rangeJob('primes', { from, to: from + 999, count: true }));
      return { i, result };
    };
    for (let i = 0; i < 10; i++) {
      const { result } = await call(i);
      expect(result).toMatchObject({ ok: true, summary: { count: countPrimes(i * 1000, i * 1000 + 999) } });
    }
    // 40 calls in flight, and every connection (producer's and service's) reset under them.
    const inFlight = Array.from({ length: 40 }, (_, k) => call(100 + k));
    await sleep(5);
    const reset = rig.proxy.resetAll();
    expect(reset).toBeGreaterThanOrEqual(2);
    const t0 = Date.now();
    const results = await Promise.all(inFlight);
    const recoveredMs = Date.now() - t0;
    for (const { i, result } of results) expect(result, `call ${i}`).toMatchObject({ ok: true, summary: { count: countPrimes(i * 1000, i * 1000 + 999) } });
    expect(rig.log.lines.some((l) => l.source === 'producer' && l.text.includes('session channel lost'))).toBe(true);
    for (let i = 200; i < 210; i++) {
      const { result } = await call(i);
      expect(result).toMatchObject({ ok: true, summary: { count: countPrimes(i * 1000, i * 1000 + 999) } });
    }
    expect(session.waiting).toBe(0);
    console.log(`session across a reset: 40 calls in flight answered ${recoveredMs} ms after the reset of ${reset} connections`);
    await session.close();
    await rig.closeClient(client);
  });
});
