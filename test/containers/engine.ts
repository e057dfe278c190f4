/**
 * Small helpers for the container tests: run docker / docker compose with a hard time limit,
 * find free host ports, wait for a condition with a deadline. Nothing here ever waits unbounded.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const COMPOSE_FILE = fileURLToPath(new URL('../../docker-compose.yml', import.meta.url));
/** The three-node cluster, layered over COMPOSE_FILE. */
export const CLUSTER_COMPOSE_FILE = fileURLToPath(new URL('../../docker-compose.cluster.yml', import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs: number;
  env?: Record<string, string>;
  cwd?: string;
}

/** Runs a command (no shell); kills it (SIGKILL) at the deadline. Never rejects on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
}

/** Like run(), but throws (with the output) unless the command exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const why = r.timedOut ? `timed out after ${opts.timeoutMs} ms` : `exited ${r.code}`;
    throw new Error(`${cmd} ${args.join(' ')}: ${why}\n--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`);
  }
  return r;
}

export function tail(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Whether a Docker-compatible engine is configured (same rule as test/broker.ts). */
export function engineConfigured(): boolean {
  return Boolean(process.env.DOCKER_HOST) || existsSync('/var/run/docker.sock');
}

/**
 * The compose command: `docker compose` (v2 plugin) if present, else `docker-compose` (v1 or
 * the v2 standalone binary). COMPOSE_COMMAND (e.g. "docker-compose") overrides the choice.
 */
export function composeCommand(): string[] {
  const forced = process.env.COMPOSE_COMMAND?.trim();
  if (forced) return forced.split(/\s+/);
  if (spawnSync('docker', ['compose', 'version'], { stdio: 'ignore', timeout: 20_000 }).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version'], { stdio: 'ignore', timeout: 20_000 }).status === 0) return ['docker-compose'];
  throw new Error('neither `docker compose` nor `docker-compose` works on this machine');
}

export function log(msg: string): void {
  process.stderr.write(`[containers] ${msg}\n`);
}

/** A GET of the management HTTP API on 127.0.0.1:`port` (the compose files' admin user). */
export async function managementApi<T>(port: number, path: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}/api${path}`, {
    headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` },
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`management API ${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}
