import { createHash } from 'node:crypto';
import { Roles, producerPermissionsFor, topology, type Permissions, type Topology } from './topology.js';

/** A broker user in the definitions file. */
export interface UserSpec {
  name: string;
  password: string;
  /** Management tags, e.g. `administrator`; empty for service accounts. */
  tags: string[];
  permissions: Permissions;
}

/**
 * RabbitMQ's stored form of a password (rabbit_password_hashing_sha256):
 * base64(salt ++ sha256(salt ++ password)), with a 4-byte salt. The salt is derived from
 * the user name here, so the generated file is the same on every run (and can be diffed).
 */
export function rabbitPasswordHash(user: string, password: string): string {
  const salt = createHash('sha256').update(`amqp-pipeline:${user}`).digest().subarray(0, 4);
  const hash = createHash('sha256').update(Buffer.concat([salt, Buffer.from(password, 'utf8')])).digest();
  return Buffer.concat([salt, hash]).toString('base64');
}

/**
 * Development users: an administrator for the management UI, and one user per role with
 * exactly that role's permissions. Each password is the user's name unless
 * `BROKER_PASSWORD_<ROLE>` (e.g. BROKER_PASSWORD_PRIME_FILTER, BROKER_PASSWORD_ADMIN) is set
 * when the file is generated. `PRODUCER_USERS` (comma-separated names) adds producer users
 * beside `producer`, each reaching only its own queues (producerPermissionsFor). For anything
 * but a laptop, generate your own.
 */
export function defaultUsers(env: Record<string, string | undefined> = {}): UserSpec[] {
  const password = (name: string) => env[`BROKER_PASSWORD_${name.toUpperCase().replace(/-/g, '_')}`] ?? name;
  const all: Permissions = { configure: '.*', write: '.*', read: '.*' };
  const roles = Object.keys(Roles);
  const producers = (env.PRODUCER_USERS ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '' && n !== 'admin' && !roles.includes(n));
  return [
    { name: 'admin', password: password('admin'), tags: ['administrator'], permissions: all },
    ...Object.entries(Roles).map(([name, permissions]) => ({ name, password: password(name), tags: [], permissions })),
    ...[...new Set(producers)].map((name) => ({ name, password: password(name), tags: [], permissions: producerPermissionsFor(name) })),
  ];
}

/**
 * The broker definitions (the format of the management UI's export, loaded at boot by
 * `load_definitions`): topology, users and their permissions, all from the same data the
 * services declare, so the UI shows the whole topology before any service starts.
 */
export function brokerDefinitions(users: readonly UserSpec[] = defaultUsers(), t: Topology = topology, vhost = '/'): Record<string, unknown> {
  return {
    rabbit_version: '3.10.8',
    users: users.map((u) => ({
      name: u.name,
      password_hash: rabbitPasswordHash(u.name, u.password),
      hashing_algorithm: 'rabbit_password_hashing_sha256',
      tags: u.tags,
      limits: {},
    })),
    vhosts: [{ name: vhost }],
    permissions: users.map((u) => ({ user: u.name, vhost, ...u.permissions })),
    topic_permissions: [],
    parameters: [],
    global_parameters: [],
    policies: [],
    queues: t.queues.map((q) => ({ name: q.name, vhost, durable: true, auto_delete: false, arguments: q.arguments })),
    exchanges: t.exchanges.map((e) => ({ name: e.name, vhost, type: e.type, durable: true, auto_delete: false, internal: false, arguments: {} })),
    bindings: t.bindings.map((b) => ({
      source: b.exchange,
      vhost,
      destination: b.queue,
      destination_type: 'queue',
      routing_key: b.routingKey,
      arguments: {},
    })),
  };
}
