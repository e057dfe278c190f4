/**
 * What tracing costs: the same small jobs through two pipelines that differ only in their
 * OTEL_* variables. Off: none set (what every user runs by default). On: spans exported over
 * OTLP/HTTP (protobuf, the SDK's default) to a collector stand-in in a process of its own
 * (otlp-sink.ts), from the producer and from the service alike. Each pipeline has its own vhost
 * (so its prime-filter takes only its own jobs), its own producer process (bench-producer.ts)
 * and its own prime-filter; they take turns round by round, the order swapped every round, and
 * the cost reads the median of the per-round ratios, as the other rows of the suite do.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ServiceProcess } from '@amqp-pipeline/devtools';
import { cpuSeconds } from './proc.js';
import { withVhost } from './vhost.js';

interface BatchReply {
  secs: number;
  complete: boolean;
  failed: number;
  cpuSecs: number;
  error?: string;
}

function forked(script: string, env: NodeJS.ProcessEnv): { child: ChildProcess; first: Promise<unknown> } {
  const child = fork(fileURLToPath(new URL(script, import.meta.url)), [], { env });
  const first = new Promise<unknown>((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`${script} exited (${code}) before it was ready`)));
  });
  return { child, first };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.disconnect();
  await exited;
}

function ask<T>(child: ChildProcess, message: unknown): Promise<T> {
  return new Promise<T>((resolve) => {
    child.once('message', (m) => resolve(m as T));
    child.send(message as never);
  });
}

/** One pipeline: a producer process and a prime-filter, in a vhost of their own. */
class Variant {
  readonly rates: number[] = [];
  producerCpu = 0;
  serviceCpu = 0;
  /** Jobs sent, warm-up included; and those of the timed batches. */
  jobs = 0;
  timedJobs = 0;

  private constructor(
    private readonly producer: ChildProcess,
    private readonly service: ServiceProcess,
  ) {}

  static async start(url: string, otel: Record<string, string>): Promise<Variant> {
    const env: Record<string, string> = { AMQP_URL: url, WORK_QUEUE_TYPE: 'quorum', ...otel };
    // Readiness is the service's info-level "consuming" line: LOG_LEVEL info, as ServiceProcess sets it.
    const service = new ServiceProcess('prime-filter', { env: { ...env, LOG_LEVEL: 'info' } });
    await service.ready;
    const { child, first } = forked('./bench-producer.js', { ...process.env, ...env, LOG_LEVEL: 'warn' });
    await first;
    return new Variant(child, service);
  }

  async batch(n: number, offset: number, timed: boolean): Promise<void> {
    const service0 = cpuSeconds(this.service.pid ?? 0);
    const reply = await ask<BatchReply>(this.producer, { n, offset });
    if (reply.error || !reply.complete || reply.failed > 0) throw new Error(`tracing bench batch incomplete: ${reply.error ?? JSON.stringify(reply)}`);
    this.jobs += n;
    if (!timed) return;
    this.timedJobs += n;
    this.rates.push(n / reply.secs);
    this.producerCpu += reply.cpuSecs;
    this.serviceCpu += cpuSeconds(this.service.pid ?? 0) - service0;
  }

  /** CPU per timed job, µs: producer, prime-filter. */
  cpuPerJob(): { producer: number; service: number } {
    const n = Math.max(1, this.timedJobs);
    return { producer: (this.producerCpu * 1e6) / n, service: (this.serviceCpu * 1e6) / n };
  }

  async stop(): Promise<void> {
    await stopChild(this.producer);
    await this.service.stop();
  }
}

export interface TracingCost {
  off: number[];
  on: number[];
  /** on / off, round by round. */
  ratios: number[];
  cpuOff: { producer: number; service: number };
  cpuOn: { producer: number; service: number };
  /** Spans the collector stand-in took, per job sent to the traced pipeline (warm-up included). */
  spansPerJob: number;
  /** The same by service.name. */
  spansPerJobBy: Record<string, number>;
  exports: number;
  skipped?: string;
}

/**
 * ROUNDS timed batches of `jobs` small jobs on each pipeline, after a warm-up batch each.
 * OTEL_* variables of the bench's own environment are kept from the untraced pipeline; of them,
 * the traced one keeps those that tune the SDK (OTEL_BSP_* and the like), not the endpoint.
 */
export async function tracingCost(amqpUrl: string, jobs: number, rounds: number, warmupJobs: number): Promise<TracingCost | { skipped: string }> {
  const removed: Record<string, string> = {};
  const own: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('OTEL_') || v === undefined) continue;
    removed[k] = v;
    if (!/ENDPOINT|PROTOCOL|EXPORTER|SDK_DISABLED/.test(k)) own[k] = v;
    delete process.env[k];
  }
  const sink = forked('./otlp-sink.js', process.env);
  const { port } = (await sink.first) as { port: number };
  try {
    const result = await withVhost(amqpUrl, 'amqp-pipeline-bench-untraced', (offHost) =>
      withVhost(amqpUrl, 'amqp-pipeline-bench-traced', async (onHost) => {
        const off = await Variant.start(offHost.url, {});
        const on = await Variant.start(onHost.url, { ...own, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` });
        try {
          let offset = 0;
          await off.batch(warmupJobs, 0, false);
          await on.batch(warmupJobs, 0, false);
          for (let i = 0; i < rounds; i++) {
            offset += jobs;
            for (const v of i % 2 === 0 ? [off, on] : [on, off]) await v.batch(jobs, offset, true);
          }
        } finally {
          await on.stop();
          await off.stop();
        }
        return { off, on };
      }),
    );
    const pair = result.value?.value;
    if (!pair) return { skipped: result.skipped ?? result.value?.skipped ?? 'no vhost' };
    const took = await ask<{ requests: number; spans: number; byService: Record<string, number> }>(sink.child, 'count');
    const { off, on } = pair;
    return {
      off: off.rates,
      on: on.rates,
      ratios: on.rates.map((r, i) => r / off.rates[i]!),
      cpuOff: off.cpuPerJob(),
      cpuOn: on.cpuPerJob(),
      spansPerJob: took.spans / on.jobs,
      spansPerJobBy: Object.fromEntries(Object.entries(took.byService).map(([k, v]) => [k, v / on.jobs])),
      exports: took.requests,
    };
  } finally {
    await stopChild(sink.child);
    Object.assign(process.env, removed);
  }
}
