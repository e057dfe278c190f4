import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Outcomes a job can have, as counted in `pipeline_jobs_total`. */
/** requeued: a classic work queue's redelivered job, put back with its delivery count. */
export type JobOutcome = 'ok' | 'failed' | 'retried' | 'dead_lettered' | 'handed_back' | 'requeued';

/**
 * The metrics of one service process, in Prometheus' text format on /metrics.
 * Names follow Prometheus conventions; `service` and `kind` are labels.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly jobs: Counter<'kind' | 'outcome'>;
  private readonly duration: Histogram<'kind' | 'outcome'>;
  private readonly inFlight: Gauge;
  private readonly reconnects: Counter;
  private readonly consuming: Gauge;

  constructor(service: string) {
    this.registry.setDefaultLabels({ service });
    // The event-loop delay is sampled every 100 ms, not prom-client's 10: an idle service then
    // wakes ~20 times a second instead of ~190 (measured with strace), and a stall that matters
    // (tens of ms and more) still shows in nodejs_eventloop_lag_*.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    this.jobs = new Counter({
      name: 'pipeline_jobs_total',
      help: 'Jobs handled, by result kind and outcome (ok, failed, retried, dead_lettered, handed_back, requeued).',
      labelNames: ['kind', 'outcome'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'pipeline_job_duration_seconds',
      help: 'Time from delivery to acknowledgement of a job, including publishing its result.',
      labelNames: ['kind', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.inFlight = new Gauge({ name: 'pipeline_jobs_in_flight', help: 'Jobs being handled right now.', registers: [this.registry] });
    this.reconnects = new Counter({
      name: 'pipeline_reconnects_total',
      help: 'Times the connection to the broker was re-established after a loss.',
      registers: [this.registry],
    });
    this.consuming = new Gauge({
      name: 'pipeline_consuming',
      help: '1 while connected and consuming, 0 while reconnecting or stopped.',
      registers: [this.registry],
    });
  }

  jobStarted(): void {
    this.inFlight.inc();
  }

  /** Per (kind, outcome): the label children, looked up once (prom-client hashes labels on every call). */
  private readonly children = new Map<string, { jobs: { inc(): void }; duration: { observe(v: number): void } }>();

  jobFinished(kind: string, outcome: JobOutcome, seconds: number): void {
    this.inFlight.dec();
    const key = `${kind}\u0000${outcome}`;
    let c = this.children.get(key);
    if (!c) this.children.set(key, (c = { jobs: this.jobs.labels({ kind, outcome }), duration: this.duration.labels({ kind, outcome }) }));
    c.jobs.inc();
    c.duration.observe(seconds);
  }

  reconnected(): void {
    this.reconnects.inc();
  }

  setConsuming(on: boolean): void {
    this.consuming.set(on ? 1 : 0);
  }
}
