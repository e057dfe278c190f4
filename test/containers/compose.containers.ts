/**
 * The container path, for real: builds the image through the engine at DOCKER_HOST, brings up
 * the real docker-compose.yml (broker + services, prime-filter scaled to two) under a project
 * name and host ports of its own, runs the producer in a container, checks users, health
 * endpoints, SIGTERM handling, and that `down -v` leaves nothing behind.
 *
 * Run with `npm run test:containers` (never part of `npm test`). Needs a Docker-compatible
 * engine: on a machine without Docker, `eval "$(../shared/tools/containers.sh up)"` first.
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPOSE_FILE, REPO_ROOT, composeCommand, engineConfigured, freePort, log, managementApi, run, runOk, tail, waitFor, type RunResult } from './engine.js';

const IMAGE = 'amqp-pipeline:local'; // the image docker-compose.yml names
const PROJECT = `plct-${process.pid}-${Date.now().toString(36)}`;
const SERVICES = ['prime-filter', 'square-mapper', 'title-fetcher'] as const;
const PRIMES_2_100 = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97];
const SQUARES_2_100 = Array.from({ length: 99 }, (_, i) => (i + 2) ** 2);

interface Definitions {
  users: { name: string }[];
  queues: { name: string; arguments: Record<string, unknown> }[];
  exchanges: { name: string }[];
}
const definitions = JSON.parse(readFileSync(`${REPO_ROOT}/rabbitmq/definitions.json`, 'utf8')) as Definitions;

interface ContainerInfo {
  Id: string;
  Name: string;
  Config: { User: string; Labels: Record<string, string> | null };
  State: { Status: string; Running: boolean; ExitCode: number; OOMKilled: boolean; Health?: { Status: string } | null };
}

let compose: string[] = [];
let env: Record<string, string> = {};
let mgmtPort = 0;
/** What the broker showed before any service had started. */
let brokerAtBoot: { queues: { name: string; type?: string; consumers?: number }[]; exchanges: string[]; users: string[] } | undefined;

function dc(args: readonly string[], timeoutMs: number): Promise<RunResult> {
  const [cmd, ...pre] = compose as [string, ...string[]];
  return run(cmd, [...pre, '-f', COMPOSE_FILE, '-p', PROJECT, ...args], { timeoutMs, env });
}
async function dcOk(args: readonly string[], timeoutMs: number): Promise<RunResult> {
  const [cmd, ...pre] = compose as [string, ...string[]];
  return runOk(cmd, [...pre, '-f', COMPOSE_FILE, '-p', PROJECT, ...args], { timeoutMs, env });
}

/** The project's containers (all states), optionally of one service, via the compose labels. */
async function containerIds(service?: string): Promise<string[]> {
  const filters = ['--filter', `label=com.docker.compose.project=${PROJECT}`];
  if (service) filters.push('--filter', `label=com.docker.compose.service=${service}`);
  const r = await runOk('docker', ['ps', '-a', '-q', '--no-trunc', ...filters], { timeoutMs: 30_000 });
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean).sort();
}

async function inspect(ids: readonly string[]): Promise<ContainerInfo[]> {
  if (ids.length === 0) return [];
  const r = await runOk('docker', ['inspect', ...ids], { timeoutMs: 30_000 });
  return JSON.parse(r.stdout) as ContainerInfo[];
}

/** Waits until every container of the given services is running and healthy. */
async function waitHealthy(services: readonly string[], expected: number, timeoutMs: number): Promise<ContainerInfo[]> {
  return waitFor(`${expected} healthy container(s) of ${services.join(', ')}`, timeoutMs, async () => {
    const ids = (await Promise.all(services.map((s) => containerIds(s)))).flat();
    const infos = await inspect(ids);
    const healthy = infos.filter((c) => c.State.Running && c.State.Health?.Status === 'healthy');
    return infos.length === expected && healthy.length === expected ? infos : undefined;
  }, 2000);
}

/** The producer, in a container of the same image: `pipeline ARGS --json`, parsed. */
async function producer(args: readonly string[]): Promise<Record<string, unknown>[]> {
  const r = await dcOk(['run', '--rm', '-T', 'producer', 'pipeline', ...args, '--json'], 180_000);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** GET http://127.0.0.1:8080<path> from inside a container, with its own node. */
async function fetchInside(id: string, path: string): Promise<{ status: number; body: string }> {
  const script = `fetch('http://127.0.0.1:8080${path}',{signal:AbortSignal.timeout(5000)}).then(async r=>{process.stdout.write(JSON.stringify({status:r.status,body:await r.text()}))},e=>{console.error(String(e));process.exit(1)})`;
  const r = await runOk('docker', ['exec', id, 'node', '-e', script], { timeoutMs: 30_000 });
  return JSON.parse(r.stdout) as { status: number; body: string };
}

describe('docker compose: the broker and the services in containers', () => {
  beforeAll(async () => {
    if (!engineConfigured()) {
      throw new Error('no Docker-compatible engine (DOCKER_HOST unset, no /var/run/docker.sock); on this machine: eval "$(../shared/tools/containers.sh up)"');
    }
    compose = composeCommand();
    await runOk('docker', ['version'], { timeoutMs: 30_000 });
    env = { RABBITMQ_PORT: String(await freePort()), RABBITMQ_MANAGEMENT_PORT: String((mgmtPort = await freePort())) };
    log(`project ${PROJECT}, compose: ${compose.join(' ')}, broker on 127.0.0.1:${env.RABBITMQ_PORT} (management ${mgmtPort})`);

    // The image, through the engine (a base image that is only local is used as is: no pull).
    const build = await runOk('docker', ['build', '-t', IMAGE, '.'], { timeoutMs: 900_000 });
    log(`image ${IMAGE} built in ${(build.ms / 1000).toFixed(1)} s`);

    // The broker alone first: its topology, users and permissions must be there before any service.
    await dcOk(['up', '-d', 'rabbitmq'], 300_000);
    await waitHealthy(['rabbitmq'], 1, 180_000);
    brokerAtBoot = await waitFor('the management API', 60_000, async () => ({
      queues: await managementApi<{ name: string; type?: string; consumers?: number }[]>(mgmtPort, '/queues'),
      exchanges: (await managementApi<{ name: string }[]>(mgmtPort, '/exchanges')).map((e) => e.name),
      users: (await managementApi<{ name: string }[]>(mgmtPort, '/users')).map((u) => u.name),
    }));

    // Then everything, prime-filter twice.
    const up = await dcOk(['up', '-d', '--scale', 'prime-filter=2'], 300_000);
    log(`compose up: ${(up.ms / 1000).toFixed(1)} s`);
    try {
      const infos = await waitHealthy(['rabbitmq', ...SERVICES], 1 + SERVICES.length + 1, 180_000);
      log(`healthy: ${infos.map((c) => c.Name.replace(/^\//, '')).join(', ')}`);
    } catch (err) {
      const ps = await dc(['ps'], 30_000);
      const logs = await dc(['logs', '--no-color', '--tail', '30'], 60_000);
      throw new Error(`${String(err)}\n--- ps\n${ps.stdout}\n--- logs\n${tail(logs.stdout, 120)}`);
    }
  }, 1_500_000);

  afterAll(async () => {
    // Always, even after a failure: remove the project's containers, volumes and network.
    if (compose.length === 0) return;
    const down = await dc(['down', '-v', '--remove-orphans', '-t', '15'], 180_000);
    if (down.code !== 0) log(`compose down failed (${down.code}): ${tail(down.stderr, 10)}`);
    const left = await containerIds();
    if (left.length > 0) {
      log(`removing leftover containers: ${left.join(' ')}`);
      await run('docker', ['rm', '-f', '-v', ...left], { timeoutMs: 60_000 });
    }
  }, 300_000);

  it('when only the broker has started, then the management API already shows the whole topology and the role users', () => {
    expect(brokerAtBoot).toBeDefined();
    const boot = brokerAtBoot!;
    expect(boot.queues.map((q) => q.name).sort()).toEqual(expect.arrayContaining(definitions.queues.map((q) => q.name).sort()));
    expect(boot.exchanges).toEqual(expect.arrayContaining(definitions.exchanges.map((e) => e.name)));
    expect(boot.users.sort()).toEqual(definitions.users.map((u) => u.name).sort());
    for (const q of definitions.queues) {
      const seen = boot.queues.find((b) => b.name === q.name);
      expect(seen?.consumers ?? 0, `${q.name}: no service may be consuming yet`).toBe(0);
      if (q.arguments['x-queue-type']) expect(seen?.type, q.name).toBe(q.arguments['x-queue-type']);
    }
  });

  it('when the stack is up with --scale prime-filter=2, then two prime-filters and one of each other service run healthy', async () => {
    for (const s of SERVICES) {
      const infos = await inspect(await containerIds(s));
      expect(infos.length, s).toBe(s === 'prime-filter' ? 2 : 1);
      for (const c of infos) expect(c.State.Health?.Status, c.Name).toBe('healthy');
    }
  });

  it('when the producer runs in a container, then range 2 100 gives the 25 primes of 2..100 and the squares 4..10000', async () => {
    const lines = await producer(['range', '2', '100']);
    const primes = lines.find((l) => l.kind === 'primes');
    const squares = lines.find((l) => l.kind === 'squares');
    expect(lines).toHaveLength(2);
    expect(primes).toMatchObject({ ok: true, input: { from: 2, to: 100 }, primes: PRIMES_2_100 });
    expect(squares).toMatchObject({ ok: true, input: { from: 2, to: 100 }, squares: SQUARES_2_100 });
  });

  it('when each service container is asked, then it runs as a non-root user with node as PID 1 and answers /healthz, /readyz and /metrics', async () => {
    const infos = await inspect((await Promise.all(SERVICES.map((s) => containerIds(s)))).flat());
    expect(infos).toHaveLength(SERVICES.length + 1);
    for (const c of infos) {
      expect(c.Config.User, c.Name).toBe('node');
      const uid = (await runOk('docker', ['exec', c.Id, 'id', '-u'], { timeoutMs: 30_000 })).stdout.trim();
      expect(uid, c.Name).not.toBe('0');
      const pid1 = (await runOk('docker', ['exec', c.Id, 'cat', '/proc/1/cmdline'], { timeoutMs: 30_000 })).stdout.split('\0');
      expect(pid1[0], `${c.Name}: PID 1`).toBe('node');
      expect(await fetchInside(c.Id, '/healthz'), c.Name).toMatchObject({ status: 200 });
      expect(await fetchInside(c.Id, '/readyz'), c.Name).toMatchObject({ status: 200 });
      const metrics = await fetchInside(c.Id, '/metrics');
      expect(metrics.status, c.Name).toBe(200);
      expect(metrics.body, c.Name).toMatch(/^# (HELP|TYPE) /m);
    }
    // The same through compose, as a person would type it.
    const viaCompose = await dcOk(['exec', '-T', 'prime-filter', 'id', '-u'], 30_000);
    expect(viaCompose.stdout.trim()).not.toBe('0');
  });

  it('when the image is inspected, then it holds production dependencies only and `pipeline` works in it', async () => {
    const ls = await runOk('docker', ['run', '--rm', IMAGE, 'sh', '-c', 'ls -A node_modules node_modules/@amqp-pipeline producer; echo "NODE_ENV=$NODE_ENV"; id -u'], { timeoutMs: 60_000 });
    const names = ls.stdout.split(/\s+/);
    for (const dev of ['typescript', 'vitest', 'vite', 'testcontainers', '@testcontainers', '@types', '@amqp-pipeline/devtools', 'devtools', 'bench']) {
      expect(names, `${dev} must not be in the image`).not.toContain(dev);
    }
    for (const prod of ['amqplib', 'pino', 'prom-client', 'zod', 'piscina', 'undici', 'cli-progress']) expect(names, prod).toContain(prod);
    expect(ls.stdout).toContain('NODE_ENV=production');
    expect(names).not.toContain('src'); // producer/: dist and package.json only
    expect(ls.stdout.trim().split('\n').at(-1)).toBe('1000');
    const version = await runOk('docker', ['run', '--rm', IMAGE, 'pipeline', '--version'], { timeoutMs: 60_000 });
    expect(version.stdout).toMatch(/^pipeline \d+\.\d+\.\d+/);
    if (existsSync(`${REPO_ROOT}/consumers/prime-filter/asconfig.json`)) {
      // prime-filter's WebAssembly kernel is built into the image and loads there.
      const script = "import('/app/consumers/prime-filter/dist/primes.js').then(m=>console.log(typeof m.kernelName==='function'?m.kernelName():'wasm'))";
      const kernel = await runOk('docker', ['run', '--rm', IMAGE, 'sh', '-c', `test -s consumers/prime-filter/build/sieve.wasm && node --input-type=module -e "${script}"`], { timeoutMs: 60_000 });
      expect(kernel.stdout.trim()).toBe('wasm');
    }
  });

  it('when one prime-filter gets SIGTERM, then it exits 0 within seconds and the other keeps serving', async () => {
    const [victim, survivor] = await containerIds('prime-filter');
    expect(survivor).toBeDefined();
    // docker stop sends SIGTERM and only SIGKILLs after 30 s: a quick exit 0 means node got the
    // signal as PID 1 and shut down cleanly (a SIGKILL would show as 137 after 30 s).
    const stop = await runOk('docker', ['stop', '-t', '30', victim!], { timeoutMs: 60_000 });
    const [after] = await inspect([victim!]);
    log(`prime-filter stopped in ${stop.ms} ms, exit code ${after?.State.ExitCode}`);
    expect(after?.State.Status).toBe('exited');
    expect(after?.State.ExitCode).toBe(0);
    expect(after?.State.OOMKilled).toBe(false);
    expect(stop.ms).toBeLessThan(10_000);
    const logs = await runOk('docker', ['logs', victim!], { timeoutMs: 30_000 });
    expect(logs.stdout + logs.stderr).toMatch(/"signal":"SIGTERM"/);

    const [other] = await inspect([survivor!]);
    expect(other?.State.Health?.Status).toBe('healthy');
    const lines = await producer(['primes', '2', '100']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ ok: true, kind: 'primes', primes: PRIMES_2_100 });
    // A stopped container stays stopped (restart: unless-stopped).
    expect((await inspect([victim!]))[0]?.State.Status).toBe('exited');
  });

  it('when the project is taken down with -v, then no container, volume or network of it is left', async () => {
    const label = `label=com.docker.compose.project=${PROJECT}`;
    const volumesBefore = (await runOk('docker', ['volume', 'ls', '-q', '--filter', label], { timeoutMs: 30_000 })).stdout.trim();
    expect(volumesBefore, 'the broker data volume exists while up').not.toBe('');

    const down = await dcOk(['down', '-v', '--remove-orphans', '-t', '15'], 180_000);
    log(`compose down -v: ${(down.ms / 1000).toFixed(1)} s`);
    expect(await containerIds()).toEqual([]);
    const volumes = await runOk('docker', ['volume', 'ls', '-q'], { timeoutMs: 30_000 });
    const networks = await runOk('docker', ['network', 'ls', '--format', '{{.Name}}'], { timeoutMs: 30_000 });
    const mine = (names: string) => names.split('\n').map((s) => s.trim()).filter((n) => n.startsWith(`${PROJECT}_`) || n.startsWith(`${PROJECT}-`));
    expect(mine(volumes.stdout)).toEqual([]);
    expect(mine(networks.stdout)).toEqual([]);
    expect((await runOk('docker', ['volume', 'ls', '-q', '--filter', label], { timeoutMs: 30_000 })).stdout.trim()).toBe('');
    expect((await runOk('docker', ['network', 'ls', '-q', '--filter', label], { timeoutMs: 30_000 })).stdout.trim()).toBe('');
  });
});
