import { spawn } from 'node:child_process';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cliEntry } from '@amqp-pipeline/devtools';
import { ownedQueueId, replyQueueName, userOfUrl } from '@amqp-pipeline/shared';
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import { inject } from 'vitest';

export function amqpUrl(): string {
  return inject('amqpUrl');
}

/** The broker's management HTTP API (the plugin .ci/run enables), as the test URL's user. */
export function mgmt(method: string, path: string, body?: unknown): Promise<Response> {
  const broker = new URL(amqpUrl());
  const api = `http://${broker.hostname}:${process.env.RABBITMQ_MANAGEMENT_PORT ?? '15672'}/api`;
  const auth = `Basic ${Buffer.from(`${decodeURIComponent(broker.username || 'guest')}:${decodeURIComponent(broker.password || 'guest')}`).toString('base64')}`;
  return fetch(`${api}${path}`, {
    method,
    headers: { authorization: auth, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** Whether the management API answers; in CI it must (tests that need it run there in any case). */
export async function hasManagement(): Promise<boolean> {
  return (await mgmt('GET', '/overview').then((r) => r.ok, () => false)) || process.env.CI === 'true';
}

/**
 * Runs `attempt` on a confirm channel of a connection to `url`; resolves with the AMQP code
 * the broker closed the channel with (403 access refused, 406 precondition failed), or
 * undefined if it did not within 5 s.
 */
export async function brokerRefusal(url: string, attempt: (ch: ConfirmChannel) => Promise<unknown>): Promise<number | undefined> {
  const conn = await amqp.connect(url);
  conn.on('error', () => {});
  try {
    const ch = await conn.createConfirmChannel();
    let code: number | undefined;
    ch.on('error', (err: { code?: number }) => (code = err.code));
    const closed = new Promise<void>((resolve) => ch.once('close', () => resolve()));
    await attempt(ch).catch(() => {});
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
    return code;
  } finally {
    await conn.close().catch(() => {});
  }
}

/** Publishes one message on a confirm channel and waits for the broker's answer. */
export function publishConfirmed(ch: ConfirmChannel, exchange: string, routingKey: string, body: string, options: Options.Publish = {}): Promise<unknown> {
  return new Promise((resolve, reject) => ch.publish(exchange, routingKey, Buffer.from(body), options, (err) => (err ? reject(err) : resolve(undefined))));
}

/** A batch's (or session's) reply queue, as a producer connected with `url` names it: `pipeline.replies.<user>:<batch>`. */
export function batchQueue(batch: string, url: string = amqpUrl()): string {
  return replyQueueName(ownedQueueId(userOfUrl(url), batch));
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON lines (for --json runs). */
  lines: Record<string, unknown>[];
}

/** Runs the real `pipeline` CLI as a child process against the test broker. */
export function runCli(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliEntry(), ...args], {
      env: { ...process.env, AMQP_URL: amqpUrl(), ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.stdin.end(opts.input ?? '');
    child.once('close', (code) => {
      const lines = args.includes('--json')
        ? stdout
            .split('\n')
            .filter((l) => l.trim() !== '')
            .map((l) => JSON.parse(l) as Record<string, unknown>)
        : [];
      resolve({ code, stdout, stderr, lines });
    });
  });
}

/** Opens a connection and channel for the duration of `fn`, closing both whatever happens. */
export async function withChannel<T>(fn: (ch: Channel, conn: ChannelModel) => Promise<T>): Promise<T> {
  const conn = await amqp.connect(amqpUrl());
  try {
    const ch = await conn.createChannel();
    return await fn(ch, conn);
  } finally {
    await conn.close().catch(() => {});
  }
}

/** A loopback port with nothing listening on it (taken from the OS, then freed). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** An HTTP server on 127.0.0.1, on a free port. */
export async function httpServer(handler: RequestListener): Promise<{ server: Server; base: string; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    base: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The primes up to n by trial division: the slow, obviously right reference. */
export function naivePrimes(from: number, to: number): number[] {
  const out: number[] = [];
  for (let n = Math.max(2, from); n <= to; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) out.push(n);
  }
  return out;
}

/**
 * Consumes `queue` (no-ack) until `count` messages matching `match` have arrived;
 * rejects after `timeoutMs`. Non-matching messages are ignored.
 */
export async function receive(
  ch: Channel,
  queue: string,
  match: (m: amqp.ConsumeMessage) => boolean,
  count: number,
  timeoutMs = 15_000,
): Promise<amqp.ConsumeMessage[]> {
  const got: amqp.ConsumeMessage[] = [];
  let tag = '';
  try {
    return await new Promise<amqp.ConsumeMessage[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${got.length} of ${count} expected messages from ${queue}`)), timeoutMs);
      void ch
        .consume(
          queue,
          (m) => {
            if (!m || !match(m)) return;
            got.push(m);
            if (got.length === count) {
              clearTimeout(timer);
              resolve(got);
            }
          },
          { noAck: true },
        )
        .then((ok) => (tag = ok.consumerTag), reject);
    });
  } finally {
    if (tag) await ch.cancel(tag).catch(() => {});
  }
}
