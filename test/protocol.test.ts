import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { SERVICE_NAMES, startServices, stopServices, type ServiceProcess } from '@amqp-pipeline/devtools';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl } from './helpers.js';

/** The Python example in docs/protocol.md, exactly as a reader would copy it. */
function pythonExample(): string {
  const doc = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8');
  const match = /```python\n([\s\S]*?)```/.exec(doc);
  if (!match?.[1]) throw new Error('docs/protocol.md has no ```python example');
  return match[1];
}

const PYTHON = '/usr/bin/python3';
const hasPika = spawnSync(PYTHON, ['-c', 'import pika'], { stdio: 'ignore' }).status === 0;

let services: ServiceProcess[] = [];
beforeAll(async () => {
  services = await startServices(SERVICE_NAMES.filter((n) => n === 'prime-filter'), { env: { AMQP_URL: amqpUrl() } });
});
afterAll(async () => {
  await stopServices(services);
});

describe('docs/protocol.md', () => {
  // .ci/run installs Debian's python3-pika; elsewhere the test says why it is skipped.
  it.skipIf(!hasPika)('when its Python (pika) example is run as written, then it prints the primes of 2..100', () => {
    const script = pythonExample().replace('amqp://guest:guest@127.0.0.1:5672', amqpUrl());
    const run = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(
      "{'ok': True, 'kind': 'primes', 'job': {'from': 2, 'to': 100}, 'primes': [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]}",
    );
  });
});
