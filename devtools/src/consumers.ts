#!/usr/bin/env node
/**
 * `npm run consumers`: the three services in one terminal, each line prefixed with its
 * service's name. Ctrl-C (or SIGTERM) stops them all gracefully; if one dies, the rest
 * are stopped too and the exit code says so.
 */
import { SERVICE_NAMES, ServiceProcess, type ServiceName } from './services.js';

const colors: Record<ServiceName, string> = { 'prime-filter': '36', 'square-mapper': '35', 'title-fetcher': '33' };
const width = Math.max(...SERVICE_NAMES.map((n) => n.length));
const tty = process.stdout.isTTY;

function prefix(name: ServiceName): string {
  const label = `[${name}]`.padEnd(width + 2);
  return tty ? `\u001b[${colors[name]}m${label}\u001b[0m ` : `${label} `;
}

const procs = SERVICE_NAMES.map(
  (name) =>
    new ServiceProcess(name, {
      detached: true,
      env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
      onLine: (line, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(`${prefix(name)}${line}\n`),
    }),
);

let stopping = false;
async function stopAll(reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`consumers: ${reason}; stopping all services\n`);
  await Promise.all(procs.map((p) => p.stop('SIGTERM')));
}

process.on('SIGINT', () => void stopAll('SIGINT'));
process.on('SIGTERM', () => void stopAll('SIGTERM'));

Promise.all(procs.map((p) => p.ready)).then(
  () => process.stderr.write(`consumers: all ${procs.length} services consuming (Ctrl-C stops them)\n`),
  () => {},
);

const results = await Promise.all(
  procs.map(async (p) => {
    const { code, signal } = await p.exited;
    const expected = stopping;
    if (!stopping) await stopAll(`${p.name} exited unexpectedly (code ${code}, signal ${signal})`);
    return expected && code === 0;
  }),
);
process.exitCode = results.every(Boolean) ? 0 : 1;
