#!/usr/bin/env node
/**
 * `npm run demo`: the original asyncio example, done with a message queue.
 * Starts the three consumer services, serves five pages on 127.0.0.1, then runs the
 * real `pipeline` CLI: primes of 2..100, squares of 1..100, the titles of the pages.
 * Stops everything at the end; exits non-zero if any step failed.
 */
import { spawn } from 'node:child_process';
import { PipelineClient } from '@amqp-pipeline/producer';
import { createLogger, isPipelineError, loadConfig } from '@amqp-pipeline/shared';
import { startDemoSite } from './demo-site.js';
import { SERVICE_NAMES, cliEntry, startServices, stopServices } from './services.js';

function say(text: string): void {
  process.stdout.write(process.stdout.isTTY ? `\n\u001b[1m${text}\u001b[0m\n` : `\n${text}\n`);
}

function pipeline(args: string[]): Promise<number> {
  say(`$ pipeline ${args.join(' ')}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliEntry(), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

async function main(): Promise<number> {
  // Fail fast, with directions, when there is no broker.
  const config = loadConfig(process.env, { LOG_LEVEL: 'error', CONNECT_RETRIES: '2' });
  const probe = await PipelineClient.connect(config, createLogger('demo', { level: 'silent' }, 2));
  await probe.close();

  say('Starting the consumer services: ' + SERVICE_NAMES.join(', '));
  // The demo pages are on 127.0.0.1, so the title fetcher must be allowed to reach private addresses.
  const services = await startServices(SERVICE_NAMES, { env: { FETCH_ALLOW_PRIVATE: 'true' } });
  const site = await startDemoSite();
  try {
    const codes = [
      await pipeline(['primes', '2', '100']),
      await pipeline(['squares', '1', '100']),
      await pipeline(['titles', ...site.urls]),
    ];
    const ok = codes.every((c) => c === 0);
    say(ok ? 'Demo finished: every job succeeded.' : `Demo finished with failures (exit codes ${codes.join(', ')}).`);
    return ok ? 0 : 1;
  } finally {
    await stopServices(services);
    await site.close();
  }
}

process.exitCode = await main().catch((err: unknown) => {
  process.stderr.write(`demo: ${isPipelineError(err) ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
});
