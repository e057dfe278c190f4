#!/usr/bin/env node
/**
 * `npm run bench [-- SUITE...]`: runs the benchmark suites (all by default) and prints one
 * table. Every figure stands beside a baseline measured in the same run on this machine.
 */
import os from 'node:os';
import { renderTable, type Row } from './table.js';

type Suite = () => Promise<Row[]>;

const suites: Record<string, () => Promise<Suite>> = {
  sieve: async () => (await import('./sieve.js')).run,
  pipeline: async () => (await import('./pipeline.js')).run,
  titles: async () => (await import('./titles.js')).run,
  'fan-out': async () => (await import('./fanout.js')).run,
  'cold-start': async () => (await import('./cold-start.js')).run,
  'cli-start': async () => (await import('./cli-start.js')).run,
  scale: async () => (await import('./scale.js')).run,
  peers: async () => (await import('./peers.js')).run,
};

async function main(): Promise<number> {
  const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const names = asked.length ? asked : Object.keys(suites);
  const unknown = names.filter((n) => !(n in suites));
  if (unknown.length) {
    process.stderr.write(`bench: unknown suite(s) ${unknown.join(', ')}; known: ${Object.keys(suites).join(', ') || '(none yet)'}\n`);
    return 2;
  }
  const rows: Row[] = [];
  for (const name of names) {
    process.stderr.write(`bench: running ${name}...\n`);
    const run = await (await suites[name]!)();
    rows.push(...(await run()));
  }
  process.stdout.write(`Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}\n\n`);
  process.stdout.write(`${renderTable(rows)}\n`);
  return 0;
}

process.exitCode = await main();
