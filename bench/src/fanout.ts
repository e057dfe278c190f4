/**
 * Chunked fan-out/fan-in end to end: count the primes in [1, 10^10] as 200 jobs of 5*10^7,
 * first with one prime-filter process, then with two (one worker thread each), through the
 * real broker. The same run measures both, so the ratio is the scaling.
 */
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { PipelineClient, rangeJobs } from '@amqp-pipeline/producer';
import { createLogger, loadConfig, type Config } from '@amqp-pipeline/shared';
import type { Row } from './table.js';

const TO = Number(process.env.BENCH_FANOUT_TO ?? 1e10);
const CHUNK = Number(process.env.BENCH_FANOUT_CHUNK ?? 5e7);
/** pi(10^10), for checking the answer. */
const PI_1E10 = 455_052_511;

async function countWith(config: Config, processes: number): Promise<{ secs: number; count: number }> {
  const procs = Array.from(
    { length: processes },
    () => new ServiceProcess('prime-filter', { env: { AMQP_URL: config.AMQP_URL, WORKERS: '1', PREFETCH: '2' } }),
  );
  try {
    await Promise.all(procs.map((p) => p.ready));
    const client = await PipelineClient.connect(config, createLogger('bench', { level: 'error' }, 2));
    try {
      let count = -1;
      const started = performance.now();
      const outcome = await client.submit(rangeJobs('primes', { from: 1, to: TO, count: true }, CHUNK), {
        wait: true,
        output: 'combine',
        request: { from: 1, to: TO },
        timeoutMs: 1_800_000,
        onResult: (r) => {
          if (r.type === 'combined' && r.result.ok && 'summary' in r.result) count = r.result.summary.count;
        },
      });
      const secs = (performance.now() - started) / 1000;
      if (!outcome.complete || outcome.failed) throw new Error('fan-out bench batch did not complete');
      return { secs, count };
    } finally {
      await client.close();
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

export async function run(): Promise<Row[]> {
  const config = loadConfig(process.env);
  const one = await countWith(config, 1);
  const two = await countWith(config, 2);
  const jobs = Math.ceil(TO / CHUNK);
  const check = TO === 1e10 ? (one.count === PI_1E10 && two.count === PI_1E10 ? `count ${one.count} = pi(10^10)` : `WRONG count ${one.count}/${two.count}`) : `count ${one.count}`;
  return [
    {
      suite: 'fan-out',
      case: `count primes in [1, ${TO.toExponential()}] as ${jobs} jobs: 2 prime-filter processes vs 1`,
      ours: two.secs,
      baseline: one.secs,
      baselineName: '1 process',
      unit: 's',
      higherIsBetter: false,
      target: '2 processes >= 1.7x faster (ratio <= 0.59)',
      met: one.secs / two.secs >= 1.7,
      note: `${(one.secs / two.secs).toFixed(2)}x faster; ${check}`,
    },
  ];
}
