/**
 * docker-compose.cluster.yml, for real: the three broker nodes join one cluster, every quorum
 * queue gets a member on each, and the services and the producer (each given all three URLs)
 * run issue 19's batch, `pipeline primes 1 3e7 --chunk 1e4 --count`, while the `rabbitmq`
 * container is stopped half-way. The batch must still finish exactly: the count is pi(3e7) and
 * the producer exits 0.
 *
 * Run with `npm run test:containers` (never part of `npm test`), after
 * `eval "$(../shared/tools/containers.sh up)"` on a machine without Docker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_COMPOSE_FILE, COMPOSE_FILE, composeCommand, engineConfigured, freePort, log, managementApi, run, runOk, tail, waitFor, type RunResult } from './engine.js';

const IMAGE = 'amqp-pipeline:local';
const PROJECT = `plcl-${process.pid}-${Date.now().toString(36)}`;
const NODES = ['rabbitmq', 'rabbitmq-2', 'rabbitmq-3'] as const;
const SERVICES = ['prime-filter', 'square-mapper', 'title-fetcher'] as const;
const TO = 30_000_000;
const CHUNK = 10_000;

/** pi(TO), by a plain sieve. */
const PI = (() => {
  const composite = new Uint8Array(TO + 1);
  let n = 0;
  for (let i = 2; i <= TO; i++) {
    if (composite[i]) continue;
    n++;
    for (let m = i * i; m <= TO; m += i) composite[m] = 1;
  }
  return n;
})();

let compose: string[] = [];
let env: Record<string, string> = {};
let mgmtPort = 0;

function dc(args: readonly string[], timeoutMs: number): Promise<RunResult> {
  const [cmd, ...pre] = compose as [string, ...string[]];
  return run(cmd, [...pre, '-f', COMPOSE_FILE, '-f', CLUSTER_COMPOSE_FILE, '-p', PROJECT, ...args], { timeoutMs, env });
}
async function dcOk(args: readonly string[], timeoutMs: number): Promise<RunResult> {
  const r = await dc(args, timeoutMs);
  if (r.code !== 0) throw new Error(`compose ${args.join(' ')}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\n${tail(r.stdout)}\n${tail(r.stderr)}`);
  return r;
}

async function containerIds(service?: string): Promise<string[]> {
  const filters = ['--filter', `label=com.docker.compose.project=${PROJECT}`];
  if (service) filters.push('--filter', `label=com.docker.compose.service=${service}`);
  const r = await runOk('docker', ['ps', '-a', '-q', '--no-trunc', ...filters], { timeoutMs: 30_000 });
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean).sort();
}

interface State {
  Running: boolean;
  Status: string;
  ExitCode: number;
  Health?: { Status: string } | null;
}
async function states(service: string): Promise<State[]> {
  const ids = await containerIds(service);
  if (ids.length === 0) return [];
  return (JSON.parse((await runOk('docker', ['inspect', ...ids], { timeoutMs: 30_000 })).stdout) as { State: State }[]).map((c) => c.State);
}

/** rabbitmqctl inside a running node's container. */
async function ctl(service: string, args: string[]): Promise<string> {
  const [id] = await containerIds(service);
  return (await runOk('docker', ['exec', id!, 'rabbitmqctl', '-q', ...args], { timeoutMs: 60_000 })).stdout;
}

describe('docker compose: a three-node cluster (docker-compose.cluster.yml)', () => {
  beforeAll(async () => {
    if (!engineConfigured()) {
      throw new Error('no Docker-compatible engine (DOCKER_HOST unset, no /var/run/docker.sock); on this machine: eval "$(../shared/tools/containers.sh up)"');
    }
    compose = composeCommand();
    env = { RABBITMQ_PORT: String(await freePort()), RABBITMQ_MANAGEMENT_PORT: String((mgmtPort = await freePort())) };
    log(`project ${PROJECT}: a three-node cluster, management on 127.0.0.1:${mgmtPort}`);
    // The image (the layers are cached after the first build).
    const build = await runOk('docker', ['build', '-t', IMAGE, '.'], { timeoutMs: 900_000 });
    log(`image ${IMAGE} built in ${(build.ms / 1000).toFixed(1)} s`);
    const up = await dcOk(['up', '-d', '--scale', 'prime-filter=2'], 600_000);
    log(`compose up: ${(up.ms / 1000).toFixed(1)} s`);
    try {
      await waitFor('the cluster and the services healthy, cluster-init done', 300_000, async () => {
        const healthy = async (s: string, n: number) => {
          const st = await states(s);
          return st.length === n && st.every((x) => x.Running && x.Health?.Status === 'healthy');
        };
        for (const s of NODES) if (!(await healthy(s, 1))) return undefined;
        for (const s of SERVICES) if (!(await healthy(s, s === 'prime-filter' ? 2 : 1))) return undefined;
        const [init] = await states('cluster-init');
        if (!init || init.Running) return undefined;
        if (init.ExitCode !== 0) throw new Error(`cluster-init exited ${init.ExitCode}`);
        return true;
      }, 2000);
    } catch (err) {
      const logs = await dc(['logs', '--no-color', '--tail', '40'], 60_000);
      throw new Error(`${String(err)}\n--- logs\n${tail(logs.stdout, 150)}`);
    }
  }, 1_500_000);

  afterAll(async () => {
    if (compose.length === 0) return;
    const down = await dc(['down', '-v', '--remove-orphans', '-t', '15'], 300_000);
    if (down.code !== 0) log(`compose down failed (${down.code}): ${tail(down.stderr, 10)}`);
    const left = await containerIds();
    if (left.length > 0) await run('docker', ['rm', '-f', '-v', ...left], { timeoutMs: 60_000 });
  }, 400_000);

  it('when the cluster is up, then it has three nodes and every work queue and retry tier is a quorum queue with a member on each', async () => {
    const status = await ctl('rabbitmq', ['cluster_status', '--formatter', 'json']);
    const running = (JSON.parse(status) as { running_nodes: string[] }).running_nodes;
    expect([...running].sort()).toEqual(NODES.map((n) => `rabbit@${n}`).sort());
    const queues = await managementApi<{ name: string; type: string; members?: string[] }[]>(mgmtPort, '/queues/%2F');
    const ours = queues.filter((q) => /^pipeline\.(primes|squares|titles|dead)(\.retry\.\d)?$/.test(q.name));
    expect(ours).toHaveLength(4 + 9);
    for (const q of ours) {
      expect(q.type, q.name).toBe('quorum');
      expect([...(q.members ?? [])].sort(), q.name).toEqual(NODES.map((n) => `rabbit@${n}`).sort());
    }
  });

  it('when the rabbitmq container is stopped mid-batch, then the batch still completes with the exact count and the producer exits 0', async () => {
    const started = Date.now();
    const producer = dc(['run', '--rm', '-T', 'producer', 'pipeline', 'primes', '1', String(TO), '--chunk', String(CHUNK), '--count', '--json', '--timeout', '300'], 600_000);
    // A tenth of the jobs acknowledged, then the first node goes.
    await waitFor('a tenth of the batch done', 180_000, async () => {
      const q = await managementApi<{ message_stats?: { ack?: number } }>(mgmtPort, '/queues/%2F/pipeline.primes');
      return (q.message_stats?.ack ?? 0) >= TO / CHUNK / 10 ? true : undefined;
    }, 250);
    const stopAt = Date.now();
    const stop = await dcOk(['stop', '-t', '30', 'rabbitmq'], 120_000);
    log(`rabbitmq stopped ${((stopAt - started) / 1000).toFixed(1)} s into the batch, in ${(stop.ms / 1000).toFixed(1)} s`);
    const out = await producer;
    log(`producer exit ${out.code} after ${((Date.now() - started) / 1000).toFixed(1)} s; stderr tail:\n${tail(out.stderr, 8)}`);
    expect(out.code, tail(out.stderr, 60)).toBe(0);
    const lines = out.stdout.split('\n').filter((l) => l.trim().startsWith('{'));
    expect(lines, 'one summary line').toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ jobs: TO / CHUNK, summary: { count: PI } });
    // The services carried on on the other two nodes.
    for (const s of SERVICES) for (const st of await states(s)) expect(st.Running, s).toBe(true);
    // What is left in the queues, for the log only: with a member gone, a full list_queues can
    // wait long on queues still electing or homed on the stopped node (it once took over 60 s),
    // so this asks for the online ones, briefly, and never fails the test.
    const [node2] = await containerIds('rabbitmq-2');
    const left = await run('docker', ['exec', node2!, 'rabbitmqctl', '-q', 'list_queues', '--online', 'name', 'messages', '--formatter', 'json'], { timeoutMs: 20_000 });
    log(left.code === 0 ? `queues after the batch: ${left.stdout.trim().slice(0, 600)}` : `queues after the batch: not listed (${left.timedOut ? 'timed out' : `exit ${left.code}`})`);
  });
});
