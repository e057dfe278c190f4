import { spawn } from 'node:child_process';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cliEntry } from '@amqp-pipeline/devtools';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { inject } from 'vitest';

export function amqpUrl(): string {
  return inject('amqpUrl');
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
