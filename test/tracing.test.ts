import { ServiceProcess } from '@amqp-pipeline/devtools';
import { rangeJob } from '@amqp-pipeline/producer';
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { amqpUrl, httpServer, runCli, withChannel } from './helpers.js';

/** One span as an OTLP/HTTP JSON export carries it, with its resource's service.name. */
interface ExportedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  links: { traceId: string; spanId: string }[];
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type OtlpAttribute = { key: string; value: OtlpValue };
const valueOf = (v: OtlpValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
const attributes = (list: OtlpAttribute[] | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]));

/** The OTLP receiver: a collector stand-in on port 0 taking `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`. */
const spans: ExportedSpan[] = [];
let receiver: Awaited<ReturnType<typeof httpServer>>;

beforeAll(async () => {
  receiver = await httpServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces') {
        const doc = JSON.parse(body) as {
          resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: (Omit<ExportedSpan, 'service' | 'attributes' | 'links'> & { attributes?: OtlpAttribute[]; links?: { traceId: string; spanId: string }[] })[] }[] }[];
        };
        for (const rs of doc.resourceSpans) {
          const service = String(attributes(rs.resource.attributes)['service.name']);
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) spans.push({ ...s, parentSpanId: s.parentSpanId ?? '', service, attributes: attributes(s.attributes), links: s.links ?? [] });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
});
afterAll(() => receiver?.close());

const otel = () => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.base,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_BSP_SCHEDULE_DELAY: '100',
});

let started: ServiceProcess[] = [];
afterEach(async () => {
  await Promise.all(started.map((s) => s.stop()));
  started = [];
});

async function startTraced(name: 'prime-filter' | 'square-mapper'): Promise<void> {
  const s = new ServiceProcess(name, { env: { AMQP_URL: amqpUrl(), ...otel() } });
  started.push(s);
  await s.ready;
}

/** The job must reach the traced replicas started here: skip (saying why) if another consumer is attached. */
async function needIdle(ctx: TestContext, ...queues: string[]): Promise<void> {
  for (const q of queues) {
    // A queue not declared yet (a new broker) has no consumer: the services declare it.
    const consumers = await withChannel(async (ch) => {
      ch.on('error', () => {});
      return (await ch.checkQueue(q)).consumerCount;
    }).catch(() => 0);
    if (consumers > 0) ctx.skip(`${q} already has ${consumers} consumer(s) on this broker; this test needs it idle`);
  }
}

/** Waits until `pick` finds what it looks for among the exported spans (exports come every ~100 ms). */
async function eventually<T>(pick: () => T | undefined, what: string, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const found = pick();
    if (found !== undefined) return found;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; spans seen: ${spans.map((s) => `${s.service}:${s.name}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const one = (list: ExportedSpan[], pred: (s: ExportedSpan) => boolean, what: string): ExportedSpan => {
  const found = list.filter(pred);
  expect(found, what).toHaveLength(1);
  return found[0]!;
};

describe('tracing (OpenTelemetry over OTLP)', () => {
  it('when `pipeline range 2 100` runs traced, then one trace holds spans from the CLI and both range services, parented as documented', async (ctx) => {
    await needIdle(ctx, 'pipeline.primes', 'pipeline.squares');
    await Promise.all([startTraced('prime-filter'), startTraced('square-mapper')]);
    const run = await runCli(['range', '2', '100', '--json'], { env: otel() });
    expect(run.code, run.stderr).toBe(0);
    const batch = run.lines[0]?.batch as string;

    const batchSpan = await eventually(() => spans.find((s) => s.name === 'pipeline batch' && s.attributes['pipeline.batch.id'] === batch), 'the batch span');
    expect(batchSpan.service).toBe('pipeline');
    // Each job's message (range: one to each service) is published in a child of the batch's span.
    const publishes = spans.filter((s) => s.service === 'pipeline' && s.name === 'publish pipeline.ranges' && s.attributes['pipeline.batch.id'] === batch);
    expect(publishes).toHaveLength(2);
    for (const publish of publishes) {
      expect(publish.traceId).toBe(batchSpan.traceId);
      expect(publish.parentSpanId).toBe(batchSpan.spanId);
      expect(publish.kind).toBe(4); // PRODUCER
      expect(publish.attributes).toMatchObject({ 'messaging.system': 'rabbitmq', 'messaging.operation.type': 'send', 'messaging.destination.name': 'pipeline.ranges' });
    }
    const publishTo = (key: string) => one(publishes, (s) => s.attributes['messaging.rabbitmq.destination.routing_key'] === key, `the publish to ${key}`);

    const trace = batchSpan.traceId;
    const inTrace = () => spans.filter((s) => s.traceId === trace);
    // Both services' process spans, their work, reply publish and ack, and the CLI's two reply spans.
    await eventually(() => (inTrace().filter((s) => s.service === 'pipeline' && s.name.startsWith('process pipeline.replies.')).length >= 2 ? true : undefined), 'the CLI reply spans');
    await eventually(() => (inTrace().filter((s) => s.name.startsWith('ack ')).length >= 2 ? true : undefined), 'both services ack spans');
    const services = new Set(inTrace().map((s) => s.service));
    expect([...services].sort()).toEqual(['pipeline', 'prime-filter', 'square-mapper']);

    for (const [service, queue, kind, key] of [
      ['prime-filter', 'pipeline.primes', 'primes', 'range.primes'],
      ['square-mapper', 'pipeline.squares', 'squares', 'range.squares'],
    ] as const) {
      const publish = publishTo(key);
      const spansOf = inTrace().filter((s) => s.service === service);
      const processing = one(spansOf, (s) => s.name === `process ${queue}`, `${service} process span`);
      expect(processing.parentSpanId, `${service} continues the CLI's publish`).toBe(publish.spanId);
      expect(processing.kind).toBe(5); // CONSUMER
      expect(processing.attributes).toMatchObject({ 'messaging.operation.type': 'process', 'messaging.destination.name': queue, 'pipeline.outcome': 'ok' });
      expect(processing.attributes['messaging.message.conversation_id']).toBe(publish.attributes['messaging.message.conversation_id']);
      const work = one(spansOf, (s) => s.name === `work ${kind}`, `${service} work span`);
      expect(work.parentSpanId).toBe(processing.spanId);
      const reply = one(spansOf, (s) => s.name === 'publish amq.default', `${service} reply publish span`);
      expect(reply.parentSpanId).toBe(processing.spanId);
      expect(String(reply.attributes['messaging.rabbitmq.destination.routing_key'])).toMatch(/^pipeline\.replies\./);
      const ack = one(spansOf, (s) => s.name === `ack ${queue}`, `${service} ack span`);
      expect(ack.parentSpanId).toBe(processing.spanId);
      expect(ack.attributes['messaging.operation.type']).toBe('settle');
      // The CLI's span for this service's reply continues the service's reply publish.
      one(inTrace(), (s) => s.service === 'pipeline' && s.parentSpanId === reply.spanId && s.name.startsWith('process pipeline.replies.'), `the CLI's span for the ${kind} reply`);
    }
  });

  it("when a foreign client sends a job with its own traceparent, then the service's spans continue that trace and the reply carries it on", async (ctx) => {
    await needIdle(ctx, 'pipeline.primes');
    await startTraced('prime-filter');
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentId = '00f067aa0ba902b7';
    const job = rangeJob('primes', { from: 2, to: 30 });
    const reply = await withChannel(async (ch) => {
      const { queue } = await ch.assertQueue('', { exclusive: true });
      const got = new Promise<{ headers: Record<string, unknown>; body: Record<string, unknown> }>((resolve) => {
        void ch.consume(queue, (m) => m && resolve({ headers: (m.properties.headers ?? {}) as Record<string, unknown>, body: JSON.parse(m.content.toString()) as Record<string, unknown> }), { noAck: true });
      });
      ch.publish(job.exchange, job.routingKey, Buffer.from(JSON.stringify(job.body)), {
        correlationId: 'foreign-1',
        replyTo: queue,
        type: job.type,
        contentType: 'application/json',
        headers: { traceparent: `00-${traceId}-${parentId}-01`, tracestate: 'vendor=abc' },
      });
      return got;
    });
    expect(reply.body).toMatchObject({ ok: true, kind: 'primes', primes: [2, 3, 5, 7, 11, 13, 17, 19, 23, 29] });
    const processing = await eventually(() => spans.find((s) => s.service === 'prime-filter' && s.name === 'process pipeline.primes' && s.attributes['messaging.message.conversation_id'] === 'foreign-1'), 'the service process span');
    expect(processing.traceId).toBe(traceId);
    expect(processing.parentSpanId).toBe(parentId);
    const publishReply = await eventually(() => spans.find((s) => s.traceId === traceId && s.name === 'publish amq.default'), 'the reply publish span');
    // The reply's own traceparent names the service's reply publish, in the foreign trace.
    expect(String(reply.headers.traceparent)).toBe(`00-${traceId}-${publishReply.spanId}-01`);
    expect(String(reply.headers.tracestate)).toBe('vendor=abc');
  });
});
