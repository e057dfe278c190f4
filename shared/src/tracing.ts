/**
 * OpenTelemetry tracing: off unless the standard OTEL_* variables ask for it, and then spans
 * go out over OTLP through the maintained SDK packages (loaded only then: with tracing off,
 * nothing of the SDK is imported, and every call site costs one check of `tracing()`).
 *
 * Trace context travels in the message headers as W3C `traceparent` / `tracestate` (see
 * docs/protocol.md, "Tracing"). The spans follow the OpenTelemetry semantic conventions for
 * messaging, with RabbitMQ's attributes, and a few of the pipeline's own (`pipeline.*`).
 *
 * State kept: the one active Tracing (set by startTracing, cleared by stopTracing), and the
 * provider this module made, if it made one (an application that registered its own is left
 * to flush and shut down its own).
 */
import type * as Api from '@opentelemetry/api';
import type { Logger } from './log.js';

export interface Tracing {
  readonly api: typeof Api;
  readonly tracer: Api.Tracer;
}

/** A span, for code that keeps one (the type only: nothing of OpenTelemetry is loaded by it). */
export type TraceSpan = Api.Span;

let active: Tracing | undefined;
let starting: Promise<Tracing | undefined> | undefined;
let ownProvider: { forceFlush(): Promise<void>; shutdown(): Promise<void> } | undefined;

/** The active tracing, or undefined when tracing is off (the check every call site makes). */
export function tracing(): Tracing | undefined {
  return active;
}

export type TracingRequest = { on: false; why?: string } | { on: true; protocol: 'http/json' | 'http/protobuf' };

/**
 * Whether the environment asks for traces, read as the OpenTelemetry SDKs do:
 * OTEL_SDK_DISABLED=true turns everything off; OTEL_TRACES_EXPORTER=otlp (the SDKs' default)
 * or `none`; and, since tracing is off by default here, an OTLP endpoint must be named
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or
 * OTEL_TRACES_EXPORTER=otlp set (then the SDK's default endpoint, http://localhost:4318).
 * The protocol: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL,
 * http/protobuf by default, or http/json; grpc is not supported (`why` says so).
 */
export function tracingRequested(env: Record<string, string | undefined> = process.env): TracingRequest {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return { on: false };
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const endpoint = Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT);
  if (exporters.includes('none')) return { on: false };
  if (exporters.length > 0 && !exporters.includes('otlp')) {
    return { on: false, why: `OTEL_TRACES_EXPORTER=${env.OTEL_TRACES_EXPORTER}: only "otlp" (or "none") is supported; tracing is off` };
  }
  if (exporters.length === 0 && !endpoint) return { on: false };
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf').trim().toLowerCase();
  if (protocol === 'http/json' || protocol === 'http/protobuf') return { on: true, protocol };
  const name = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  return { on: false, why: `${name}=${protocol} is not supported: use http/protobuf (the default) or http/json, usually on port 4318; tracing is off` };
}

/**
 * Starts tracing if the environment asks for it (tracingRequested), once per process; later
 * calls get the same. `serviceName` is the default `service.name` (OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES win). If the application has registered a tracer provider of its
 * own, spans go to that one and nothing else is set up.
 */
export function startTracing(serviceName: string, log?: Logger, env: Record<string, string | undefined> = process.env): Promise<Tracing | undefined> {
  if (active) return Promise.resolve(active);
  const request = tracingRequested(env);
  if (!request.on) {
    if (request.why) log?.warn(request.why);
    return Promise.resolve(undefined);
  }
  starting ??= load(serviceName, request.protocol, env, log).then(
    (t) => (active = t),
    (err: unknown) => {
      log?.warn({ err }, 'tracing could not be started; going on without it');
      return undefined;
    },
  );
  return starting;
}

/**
 * The span queue of the batch processor when OTEL_BSP_MAX_QUEUE_SIZE is not set. The SDK's own
 * default, 2048, overflowed at full speed (a bundle of small jobs makes a span per job: the bench's
 * 20,000 small jobs on one prime-filter lost a quarter of the service's spans with it); spans
 * beyond the queue are dropped, and a warning says how many (see the diag logger below).
 */
export const SPAN_QUEUE_DEFAULT = 16_384;
const DIAG_EVERY_MS = 10_000;

async function load(serviceName: string, protocol: 'http/json' | 'http/protobuf', env: Record<string, string | undefined>, log?: Logger): Promise<Tracing> {
  const api = await import('@opentelemetry/api');
  const version = '0.1.0';
  const noop = new api.ProxyTracerProvider().getDelegate();
  const current = api.trace.getTracerProvider() as Api.ProxyTracerProvider;
  if (typeof current.getDelegate === 'function' && current.getDelegate() !== noop) {
    log?.info('tracing: using the tracer provider the application registered');
    return { api, tracer: api.trace.getTracer('amqp-pipeline', version) };
  }
  const [{ NodeTracerProvider, BatchSpanProcessor }, resources, exporterModule] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/resources'),
    protocol === 'http/json' ? import('@opentelemetry/exporter-trace-otlp-http') : import('@opentelemetry/exporter-trace-otlp-proto'),
  ]);
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes({ 'service.name': serviceName, 'service.version': version }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  // The exporter reads OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout) itself, the batch
  // processor OTEL_BSP_*, the provider OTEL_TRACES_SAMPLER(_ARG).
  const queue = env.OTEL_BSP_MAX_QUEUE_SIZE ? {} : { maxQueueSize: SPAN_QUEUE_DEFAULT };
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new exporterModule.OTLPTraceExporter(), queue)] });
  // The SDK's own warnings (spans dropped, an export that failed) into our log, not lost; at
  // most one line per DIAG_EVERY_MS (a full span queue warns on every drop), saying how many
  // more there were since the last.
  if (log) {
    let last = 0;
    let held = 0;
    const say = (level: 'warn' | 'error') => (message: string, ...args: unknown[]) => {
      const now = Date.now();
      if (now - last < DIAG_EVERY_MS) return void held++;
      log[level]({ ...(args.length ? { otel: args.map(String).join(' ') } : {}), ...(held ? { moreSinceLast: held } : {}) }, `tracing: ${message}`);
      last = now;
      held = 0;
    };
    api.diag.setLogger({ error: say('error'), warn: say('warn'), info: () => {}, debug: () => {}, verbose: () => {} }, { logLevel: api.DiagLogLevel.WARN, suppressOverrideMessage: true });
  }
  // The global provider, W3C trace-context propagator and AsyncLocalStorage context manager.
  provider.register();
  ownProvider = provider;
  log?.info({ protocol, serviceName: resource.attributes['service.name'] }, 'tracing on: spans exported over OTLP');
  return { api, tracer: provider.getTracer('amqp-pipeline', version) };
}

/** Exports what is buffered and stops (bounded by `waitMs`); tracing is off afterwards. */
export async function stopTracing(waitMs = 3000): Promise<void> {
  await starting;
  const provider = ownProvider;
  active = undefined;
  starting = undefined;
  ownProvider = undefined;
  if (!provider) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([provider.shutdown().catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
}

/** Exports what is buffered, without stopping (a library client's close). */
export async function flushTracing(waitMs = 3000): Promise<void> {
  const provider = ownProvider;
  if (!provider) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([provider.forceFlush().catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
}

// --- Messaging spans -----------------------------------------------------------------------

/** Attribute names, from the OpenTelemetry semantic conventions (messaging, RabbitMQ) and ours. */
export const Attr = {
  system: 'messaging.system',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  destination: 'messaging.destination.name',
  routingKey: 'messaging.rabbitmq.destination.routing_key',
  deliveryTag: 'messaging.rabbitmq.message.delivery_tag',
  messageId: 'messaging.message.id',
  conversationId: 'messaging.message.conversation_id',
  bodySize: 'messaging.message.body.size',
  errorType: 'error.type',
  batch: 'pipeline.batch.id',
  jobId: 'pipeline.job.id',
  jobType: 'pipeline.job.type',
  jobs: 'pipeline.jobs',
  attempt: 'pipeline.attempt',
  outcome: 'pipeline.outcome',
  errorCode: 'pipeline.error.code',
  service: 'pipeline.service',
} as const;

/** The default exchange, as the conventions name it. */
const destinationOf = (exchange: string) => exchange || 'amq.default';

interface MessageProps {
  messageId?: unknown;
  correlationId?: unknown;
  type?: unknown;
  headers?: Record<string, unknown> | undefined;
}

function messageAttributes(p: MessageProps): Api.Attributes {
  const a: Api.Attributes = {};
  if (typeof p.messageId === 'string') a[Attr.messageId] = p.messageId;
  if (typeof p.correlationId === 'string') a[Attr.conversationId] = p.correlationId;
  if (typeof p.type === 'string') a[Attr.jobType] = p.type;
  return a;
}

/**
 * A PRODUCER span for publishing one message (`publish <exchange>`), and the headers that carry
 * its context: to be merged into the message's headers. Its parent is the active context
 * (an application's own span, or our process span in a service), or `parent` (a batch's span).
 */
export function publishSpan(
  t: Tracing,
  exchange: string,
  routingKey: string,
  props: MessageProps,
  extra: { attributes?: Api.Attributes; root?: boolean; links?: Api.Link[]; parent?: Api.Span } = {},
): { span: Api.Span; headers: Record<string, string> } {
  const { api } = t;
  const context = extra.parent ? api.trace.setSpan(api.context.active(), extra.parent) : api.context.active();
  const span = t.tracer.startSpan(
    `publish ${destinationOf(exchange)}`,
    {
      kind: api.SpanKind.PRODUCER,
      root: extra.root ?? false,
      ...(extra.links ? { links: extra.links } : {}),
      attributes: {
        [Attr.system]: 'rabbitmq',
        [Attr.operationType]: 'send',
        [Attr.operationName]: 'publish',
        [Attr.destination]: destinationOf(exchange),
        [Attr.routingKey]: routingKey,
        ...messageAttributes(props),
        ...extra.attributes,
      },
    },
    context,
  );
  const headers: Record<string, string> = {};
  api.propagation.inject(api.trace.setSpan(context, span), headers);
  return { span, headers };
}

const headerGetter: Api.TextMapGetter<Record<string, unknown> | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get: (carrier, key) => {
    const v = carrier?.[key];
    if (typeof v === 'string') return v;
    if (Buffer.isBuffer(v)) return v.toString('utf8');
    return undefined;
  },
};

/**
 * A CONSUMER span for handling one delivery (`process <queue>`), a child of the context its
 * headers carry (traceparent), or a root if they carry none.
 */
export function processSpan(
  t: Tracing,
  queue: string,
  msg: { fields: { routingKey: string; deliveryTag: number; redelivered: boolean }; properties: MessageProps; content: Buffer },
  attributes: Api.Attributes = {},
): { span: Api.Span; context: Api.Context } {
  const { api } = t;
  const parent = api.propagation.extract(api.ROOT_CONTEXT, msg.properties.headers, headerGetter);
  const span = t.tracer.startSpan(
    `process ${queue}`,
    {
      kind: api.SpanKind.CONSUMER,
      attributes: {
        [Attr.system]: 'rabbitmq',
        [Attr.operationType]: 'process',
        [Attr.operationName]: 'process',
        [Attr.destination]: queue,
        [Attr.routingKey]: msg.fields.routingKey,
        [Attr.deliveryTag]: msg.fields.deliveryTag,
        [Attr.bodySize]: msg.content.length,
        'messaging.rabbitmq.message.redelivered': msg.fields.redelivered,
        ...messageAttributes(msg.properties),
        ...attributes,
      },
    },
    parent,
  );
  return { span, context: api.trace.setSpan(parent, span) };
}

/** A short span for acknowledging a delivery (`ack <queue>`, operation type settle), under the active context. */
export function settleSpan(t: Tracing, queue: string, operation: 'ack' | 'nack' = 'ack'): void {
  t.tracer
    .startSpan(`${operation} ${queue}`, {
      kind: t.api.SpanKind.CONSUMER,
      attributes: { [Attr.system]: 'rabbitmq', [Attr.operationType]: 'settle', [Attr.operationName]: operation, [Attr.destination]: queue },
    })
    .end();
}

/** Ends a span with an outcome: status ERROR and error.type when `errorCode` is given. */
export function endSpan(t: Tracing, span: Api.Span, outcome: string, errorCode?: string, message?: string): void {
  span.setAttribute(Attr.outcome, outcome);
  if (errorCode) {
    span.setAttribute(Attr.errorType, errorCode);
    span.setAttribute(Attr.errorCode, errorCode);
    span.setStatus({ code: t.api.SpanStatusCode.ERROR, ...(message ? { message: message.slice(0, 500) } : {}) });
  }
  span.end();
}

/**
 * Runs `fn` inside an INTERNAL (or `kind`) span under the active context; the span ends when
 * `fn` settles (ERROR with the error's code if it throws). With tracing off, just `fn()`.
 */
export function inSpan<T>(name: string, attributes: Api.Attributes, fn: () => T | PromiseLike<T>, kind?: Api.SpanKind): Promise<T> {
  const t = active;
  if (!t) return (async () => fn())();
  const span = t.tracer.startSpan(name, { attributes, ...(kind !== undefined ? { kind } : {}) });
  return t.api.context.with(t.api.trace.setSpan(t.api.context.active(), span), async () => {
    try {
      const value = await fn();
      span.end();
      return value;
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      endSpan(t, span, 'failed', typeof e.code === 'string' ? e.code : 'Error', typeof e.message === 'string' ? e.message : undefined);
      throw err;
    }
  });
}
