import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Writable } from 'node:stream';
import amqp, { type ChannelModel, type RecoveringChannelModel } from 'amqplib';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { brokerUrls, redactUrl } from './config.js';
import { ErrorCodes, PipelineError } from './errors.js';
import { BASIC_PUBLISH, encodePublish, type PublishFields } from './frames.js';
import type { Logger } from './log.js';

export interface BrokerOptions {
  /** amqp:// or amqps:// URL. */
  url: string;
  /** Shown in the management UI's Connections tab, e.g. `prime-filter@host`. */
  connectionName: string;
  /** With several URLs: start from a random one (default), or from the first (AMQP_URL_ORDER). */
  urlOrder?: 'random' | 'given' | undefined;
  /** AMQP heartbeat, seconds; 0 turns heartbeats off. Ignored if the URL sets `heartbeat`. */
  heartbeatSeconds: number;
  /** Attempts at start-up before `connectBroker` rejects; later reconnects never give up. */
  connectRetries: number;
  /** PEM files for amqps://: the CA to trust, a client certificate and its key. */
  tls?: { caFile?: string | undefined; certFile?: string | undefined; keyFile?: string | undefined } | undefined;
  log: Logger;
  /**
   * Runs after every successful (re)connect, before the connection is handed out:
   * declare topology, open channels, start consumers here.
   */
  setup?: (model: ChannelModel) => Promise<void>;
}

/** `service@hostname`, the connection name operators see in the management UI. */
export function connectionNameFor(service: string): string {
  return `${service}@${os.hostname()}`;
}

function withHeartbeat(url: string, seconds: number): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(seconds));
  return u.toString();
}

/** What to tell a person whose broker cannot be reached. */
export function brokerHelp(url: string): string {
  return [
    `cannot reach RabbitMQ at ${redactUrl(url)}.`,
    'Start a broker, or point AMQP_URL at one:',
    '  - this machine:  rabbitmq-server -detached   (Debian/Ubuntu: apt-get install rabbitmq-server)',
    '  - containers:    docker compose up -d rabbitmq   (then AMQP_URL=amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT:-5672})',
  ].join('\n');
}

/**
 * Connects with amqplib's built-in recovery: on any connection loss it reconnects
 * with backoff and runs `setup` again, so topology and consumers come back by themselves.
 * Nagle's algorithm is off (`noDelay`): with it on, each round trip costs ~40 ms.
 * Rejects with PIPELINE_ERR_BROKER_UNREACHABLE when the first connection cannot be made.
 */
export async function connectBroker(opts: BrokerOptions): Promise<RecoveringChannelModel> {
  const { log } = opts;
  const tls = {
    ...(opts.tls?.caFile ? { ca: [readFileSync(opts.tls.caFile)] } : {}),
    ...(opts.tls?.certFile ? { cert: readFileSync(opts.tls.certFile) } : {}),
    ...(opts.tls?.keyFile ? { key: readFileSync(opts.tls.keyFile) } : {}),
  };
  // One URL per node of a cluster: each attempt (the first connection and every reconnect)
  // takes the next one, starting from a random one so a fleet spreads over the nodes.
  const urls = brokerUrls(opts.url).map((u) => withHeartbeat(u, opts.heartbeatSeconds));
  let next = opts.urlOrder === 'given' ? 0 : Math.floor(Math.random() * urls.length);
  let current = urls[next] as string;
  const connectOptions = { ...tls, noDelay: true, clientProperties: { connection_name: opts.connectionName, pid: process.pid } };
  const model = await connectRecovering(
    () => {
      current = urls[next % urls.length] as string;
      next++;
      return amqp.connect(current, connectOptions);
    },
    {
      initialDelay: 200,
      maxDelay: 5000,
      initialMaxRetries: opts.connectRetries,
      maxRetries: Infinity,
      waitForConnect: false,
      setup: async (m: ChannelModel) => {
        coalesceWrites(m);
        fastPublishFrames(m);
        await opts.setup?.(m);
      },
    },
  );
  model.on('connect', () => log.info({ broker: redactUrl(current), nodes: urls.length }, 'connected to broker'));
  model.on('disconnect', (err: Error) => log.warn({ err }, 'connection to broker lost; reconnecting'));
  model.on('connect-failed', (err: Error) => log.warn({ err }, 'connection attempt failed'));
  model.on('reconnect-scheduled', (info: { attempt: number; delay: number }) =>
    log.info({ attempt: info.attempt, delayMs: info.delay }, 'reconnect scheduled'),
  );
  model.on('blocked', (reason: string) => log.warn({ reason }, 'broker blocked publishing (resource alarm)'));
  model.on('unblocked', () => log.info('broker unblocked publishing'));
  model.on('error', (err: Error) => log.warn({ err }, 'connection error'));
  model.on('handler-error', (err: Error, event: string) => log.error({ err, event }, 'connection event handler threw'));
  try {
    await model.waitForConnect();
  } catch (cause) {
    await model.close().catch(() => {});
    // The broker answered but `setup` refused to go on (e.g. a queue of another type): say that.
    if (cause instanceof PipelineError) throw cause;
    throw new PipelineError(ErrorCodes.BROKER_UNREACHABLE, brokerHelp(opts.url), {
      cause,
      details: { url: redactUrl(opts.url) },
    });
  }
  return model;
}

/**
 * amqplib's own recovery (backoff, `setup` after every reconnect, channels that wait for the
 * connection) around a function that opens a connection. `amqp.connect(url, { recovery })`
 * builds exactly this around one fixed URL; to try the nodes of a cluster in turn we hand
 * the same machinery (lib/recovery.js, which amqplib does not export by name) an opener that
 * picks the next URL each time. This is the only place that reaches into it; if a future
 * amqplib moves it, this throws at the first connect, and shared/src/broker.test.ts fails.
 */
type Opener = () => Promise<ChannelModel>;
const connectRecovering: (open: Opener, recovery: Record<string, unknown>) => Promise<RecoveringChannelModel> = (() => {
  const require = createRequire(import.meta.url);
  const lib = require(join(dirname(require.resolve('amqplib')), 'lib', 'recovery.js')) as {
    connectWithRecoveryPromise?: (open: Opener, recovery: Record<string, unknown>) => Promise<RecoveringChannelModel>;
  };
  const connect = lib.connectWithRecoveryPromise;
  if (typeof connect !== 'function') throw new Error('amqplib/lib/recovery.js has no connectWithRecoveryPromise: this amqplib is not the 2.x this project was built on');
  return connect;
})();

/**
 * amqplib writes every frame to the socket by itself: with Nagle off, one system call (and
 * one TCP segment for the broker to read) per publish and per ack. Corking the socket until
 * the end of the current tick sends everything written in one turn of the event loop in one
 * writev, and nothing waits longer than that turn. Reaches into amqplib's connection for its
 * socket; does nothing if that is not there.
 */
function coalesceWrites(model: ChannelModel): void {
  const stream = (model as unknown as { connection?: { stream?: Writable } }).connection?.stream;
  if (!stream || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function') return;
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    stream.uncork();
  };
  stream.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Writable['write'];
}

/** The parts of amqplib's connection that `fastPublishFrames` uses. */
interface AmqplibConnection {
  frameMax: number;
  channels: ({ buffer?: { write(chunk: Buffer): boolean } } | undefined)[];
  sentSinceLastCheck: boolean;
  sendMessage(channel: number, method: number, fields: PublishFields, propertiesClass: number, props: PublishFields, content: Buffer): boolean;
}

/**
 * Encodes small publishes with `encodePublish` (frames.ts: one buffer, ~1 µs) instead of
 * amqplib's field-by-field encoder (~5 µs, four buffers), then hands the bytes to the channel
 * exactly where amqplib would. Everything else, and any publish encodePublish declines, goes
 * through amqplib's own code. Reaches into amqplib's connection; does nothing if its shape is
 * not the one this was written against.
 */
function fastPublishFrames(model: ChannelModel): void {
  const conn = (model as unknown as { connection?: AmqplibConnection }).connection;
  if (!conn || typeof conn.sendMessage !== 'function' || !Array.isArray(conn.channels) || typeof conn.frameMax !== 'number') return;
  const amqplibSend = conn.sendMessage;
  conn.sendMessage = function (this: AmqplibConnection, channel, method, fields, propertiesClass, props, content) {
    if (method === BASIC_PUBLISH && fields === props && Buffer.isBuffer(content)) {
      const out = this.channels[channel]?.buffer;
      const frames = out ? encodePublish(channel, fields, content, this.frameMax) : undefined;
      if (out && frames) {
        this.sentSinceLastCheck = true;
        return out.write(frames);
      }
    }
    return amqplibSend.call(this, channel, method, fields, propertiesClass, props, content);
  };
}

/** The TLS files of a config, for BrokerOptions.tls. */
export function tlsFiles(config: { AMQP_CA_FILE?: string | undefined; AMQP_CERT_FILE?: string | undefined; AMQP_KEY_FILE?: string | undefined }): BrokerOptions['tls'] {
  return { caFile: config.AMQP_CA_FILE, certFile: config.AMQP_CERT_FILE, keyFile: config.AMQP_KEY_FILE };
}
