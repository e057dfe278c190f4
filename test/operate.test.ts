import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { ServiceProcess, type ServiceName } from '@amqp-pipeline/devtools';
import { Roles, producerPermissionsFor, type Permissions } from '@amqp-pipeline/shared';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amqpUrl, brokerRefusal, freePort, hasManagement, mgmt, runCli } from './helpers.js';

// .ci/run enables the management plugin; elsewhere these tests say why they are skipped.
const describeManaged = describe.skipIf(!(await hasManagement()));

describe('broker definitions', () => {
  it('when the topology is exported, then it is exactly the committed rabbitmq/definitions.json (no drift)', async () => {
    const run = await runCli(['topology', '--export']);
    expect(run.code, run.stderr).toBe(0);
    const committed = readFileSync(new URL('../rabbitmq/definitions.json', import.meta.url), 'utf8');
    expect(run.stdout).toBe(committed);
  });

  it('when the topology is exported with REPLY_QUEUE_TYPE=quorum, then it is exactly the committed rabbitmq/definitions.cluster.json (quorum retry tiers)', async () => {
    const run = await runCli(['topology', '--export'], { env: { REPLY_QUEUE_TYPE: 'quorum' } });
    expect(run.code, run.stderr).toBe(0);
    const committed = readFileSync(new URL('../rabbitmq/definitions.cluster.json', import.meta.url), 'utf8');
    expect(run.stdout).toBe(committed);
    const tiers = (JSON.parse(committed) as { queues: { name: string; arguments: Record<string, unknown> }[] }).queues.filter((q) => q.name.includes('.retry.'));
    expect(tiers).toHaveLength(9);
    for (const q of tiers) expect(q.arguments['x-queue-type'], q.name).toBe('quorum');
  });
});

describeManaged('operating the services (management API)', () => {
  const tag = randomUUID().slice(0, 8);
  const userFor = (role: keyof typeof Roles) => `pipeline-test-${tag}-${role}`;
  const urlFor = (role: keyof typeof Roles) => {
    const u = new URL(amqpUrl());
    u.username = userFor(role);
    u.password = `pw-${tag}`;
    return u.toString();
  };
  /** The producer as its user, taking each kind's results only from its service's user. */
  const producerEnv = () => ({
    AMQP_URL: urlFor('producer'),
    SERVICE_USERS: `primes=${userFor('prime-filter')},squares=${userFor('square-mapper')},title=${userFor('title-fetcher')}`,
  });
  const services: ServiceProcess[] = [];
  let healthPort = 0;

  beforeAll(async () => {
    // One broker user per role, with exactly the role's permissions.
    for (const [role, rolePerm] of Object.entries(Roles) as [keyof typeof Roles, Permissions][]) {
      // A producer user's permissions reach the queues named by that user (the definitions' one is `producer`).
      const perm = role === 'producer' ? producerPermissionsFor(userFor(role)) : rolePerm;
      expect((await mgmt('PUT', `/users/${encodeURIComponent(userFor(role))}`, { password: `pw-${tag}`, tags: '' })).ok).toBe(true);
      expect((await mgmt('PUT', `/permissions/%2F/${encodeURIComponent(userFor(role))}`, perm)).ok).toBe(true);
    }
    healthPort = await freePort();
    for (const name of ['prime-filter', 'square-mapper', 'title-fetcher'] as ServiceName[]) {
      const env: Record<string, string> = { AMQP_URL: urlFor(name) };
      if (name === 'prime-filter') env.HEALTH_PORT = String(healthPort);
      services.push(new ServiceProcess(name, { env }));
    }
    await Promise.all(services.map((s) => s.ready));
  });

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    for (const role of Object.keys(Roles) as (keyof typeof Roles)[]) await mgmt('DELETE', `/users/${encodeURIComponent(userFor(role))}`);
  });

  it('when every service runs as its own least-privilege user, then the pipeline works end to end for the producer user', async () => {
    const run = await runCli(['range', '2', '10', '--json'], { env: producerEnv() });
    expect(run.code, run.stderr).toBe(0);
    expect(Object.fromEntries(run.lines.map((l) => [l.kind, l[l.kind as string]]))).toEqual({ primes: [2, 3, 5, 7], squares: [4, 9, 16, 25, 36, 49, 64, 81, 100] });
  });

  it('when a role tries what it has no business doing, then the broker refuses it (403)', async () => {
    /** Runs `attempt` as `role`; resolves with the AMQP code the broker closed the channel with. */
    const refused = (role: keyof typeof Roles, attempt: (ch: amqp.ConfirmChannel) => Promise<unknown>) => brokerRefusal(urlFor(role), attempt);
    // The producer cannot consume work queues, nor publish to the dead-letter exchange.
    expect(await refused('producer', (ch) => ch.consume('pipeline.primes', () => {}))).toBe(403);
    expect(await refused('producer', (ch) => new Promise((resolve, reject) => ch.publish('pipeline.dead-letter', '', Buffer.from('x'), {}, (err) => (err ? reject(err) : resolve(undefined)))))).toBe(403);
    // Nor put anything into a queue by name (it has no right on the default exchange): not a work queue, not another producer's queues.
    expect(await refused('producer', (ch) => new Promise((resolve, reject) => ch.sendToQueue('pipeline.primes', Buffer.from('{"from":1,"to":2}'), {}, (err) => (err ? reject(err) : resolve(undefined)))))).toBe(403);
    // A service cannot consume another's queue, publish to an exchange it does not use, or declare others' queues.
    expect(await refused('prime-filter', (ch) => ch.consume('pipeline.titles', () => {}))).toBe(403);
    expect(await refused('prime-filter', (ch) => new Promise((resolve, reject) => ch.publish('pipeline.urls', 'url.title', Buffer.from('{}'), {}, (err) => (err ? reject(err) : resolve(undefined)))))).toBe(403);
    expect(await refused('square-mapper', (ch) => ch.assertQueue('pipeline.titles', { durable: true, arguments: { 'x-queue-type': 'quorum' } }))).toBe(403);
  });

  it('when the services run, then the UI shows every work queue consumed, every connection named, every binding in place', async () => {
    // The management API's statistics lag a few seconds behind: poll, with a deadline.
    await expect
      .poll(
        async () => {
          const queues = (await (await mgmt('GET', '/queues/%2F?columns=name,consumers')).json()) as { name: string; consumers: number }[];
          const consumers = Object.fromEntries(queues.map((q) => [q.name, q.consumers]));
          return ['pipeline.primes', 'pipeline.squares', 'pipeline.titles'].filter((q) => !((consumers[q] ?? 0) >= 1));
        },
        { timeout: 20_000, interval: 500 },
      )
      .toEqual([]);

    // The management API catches up with new connections within a few seconds.
    await expect
      .poll(
        async () => {
          const conns = (await (await mgmt('GET', '/connections')).json()) as { client_properties: { connection_name?: string; pid?: number } }[];
          const ours = new Set(services.map((s) => s.pid));
          return conns.filter((c) => ours.has(c.client_properties.pid)).map((c) => c.client_properties.connection_name).sort();
        },
        { timeout: 15_000, interval: 250 },
      )
      .toEqual([`prime-filter@${os.hostname()}`, `square-mapper@${os.hostname()}`, `title-fetcher@${os.hostname()}`]);

    const bindings = (await (await mgmt('GET', '/bindings/%2F')).json()) as { source: string; destination: string; routing_key: string }[];
    const have = new Set(bindings.map((b) => `${b.source} ${b.routing_key} ${b.destination}`));
    for (const b of [
      'pipeline.ranges range.primes pipeline.primes',
      'pipeline.ranges range.squares pipeline.squares',
      'pipeline.ranges range.all pipeline.primes',
      'pipeline.ranges range.all pipeline.squares',
      'pipeline.urls url.title pipeline.titles',
      'pipeline.dead-letter  pipeline.dead',
    ]) {
      expect(have.has(b), b).toBe(true);
    }
  });

  it('when the service connection is force-closed in the UI, then /readyz turns 503 and back to 200 after recovery', async () => {
    const health = `http://127.0.0.1:${healthPort}`;
    expect((await fetch(`${health}/healthz`)).status).toBe(200);
    expect((await fetch(`${health}/readyz`)).status).toBe(200);
    const filter = services[0]!;
    const name = await expect
      .poll(
        async () => {
          const conns = (await (await mgmt('GET', '/connections')).json()) as { name: string; client_properties: { pid?: number } }[];
          return conns.find((c) => c.client_properties.pid === filter.pid)?.name;
        },
        { timeout: 15_000, interval: 250 },
      )
      .toBeDefined()
      .then(async () => {
        const conns = (await (await mgmt('GET', '/connections')).json()) as { name: string; client_properties: { pid?: number } }[];
        return conns.find((c) => c.client_properties.pid === filter.pid)!.name;
      });
    const statuses: number[] = [];
    const watching = (async () => {
      for (let i = 0; i < 500; i++) {
        statuses.push((await fetch(`${health}/readyz`)).status);
        if (statuses.includes(503) && statuses.at(-1) === 200) return;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const del = await mgmt('DELETE', `/connections/${encodeURIComponent(name)}`);
    expect(del.status).toBeLessThan(300);
    await watching;
    expect(statuses).toContain(503);
    expect(statuses.at(-1)).toBe(200);
    const metrics = await (await fetch(`${health}/metrics`)).text();
    expect(metrics).toMatch(/^pipeline_reconnects_total\{service="prime-filter"\} 1$/m);
    // And it still works:
    const run = await runCli(['primes', '2', '20', '--json'], { env: producerEnv() });
    expect(run.lines[0]).toMatchObject({ primes: [2, 3, 5, 7, 11, 13, 17, 19] });
  });
});
