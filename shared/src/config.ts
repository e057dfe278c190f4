import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ErrorCodes, PipelineError } from './errors.js';
import { WORK_QUEUE_TYPES } from './topology.js';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const hostList = z
  .string()
  .transform((v) =>
    v
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h !== ''),
  );

/**
 * Every setting of every process, read from the environment once.
 * Each entry: its environment variable, its unit, its default.
 */
const schema = z.object({
  /** Broker URL (amqp:// or amqps://). */
  AMQP_URL: z
    .string()
    .refine((v) => brokerUrls(v).length > 0 && brokerUrls(v).every((u) => /^amqps?:\/\//.test(u)), 'must be amqp:// or amqps:// URLs (several, comma-separated, for the nodes of a cluster)')
    .refine(
      (v) => new Set(brokerUrls(v).map(userOfUrl)).size <= 1,
      {
        error: (iss) =>
          `names several users (${[...new Set(brokerUrls(String(iss.input)).map(userOfUrl))].join(', ')}): a cluster's nodes share their users, and a process is one user (it signs its messages with it), so give every URL the same user`,
      },
    )
    .default('amqp://guest:guest@127.0.0.1:5672'),
  /**
   * Whose results the producer takes, per kind (results carry the broker-checked AMQP
   * user_id): `roles` (the service users of rabbitmq/definitions.json: prime-filter,
   * square-mapper, title-fetcher), `primes=USER,squares=USER,title=USER`, or `off` (any
   * sender; the only choice when every process shares one user, like guest in development).
   * Default: `roles` when the producer runs as the definitions' `producer` user, else `off`.
   */
  SERVICE_USERS: z
    .string()
    .transform((v, ctx) => {
      const parsed = parseServiceUsers(v);
      if ('problem' in parsed) {
        ctx.addIssue({ code: 'custom', message: parsed.problem });
        return z.NEVER;
      }
      return parsed.users;
    })
    .optional(),
  /**
   * Where the first connection starts in AMQP_URL's list: `random` (default: a fleet spreads
   * over the nodes) or `given` (the first URL first: a preferred, e.g. local, node).
   */
  AMQP_URL_ORDER: z.enum(['random', 'given'], { error: 'must be random or given' }).default('random'),
  /**
   * Type of the per-batch reply, manifest and progress queues, and of a session's queue:
   * quorum (replicated: they survive the loss of a node) or classic (one node; cheaper).
   * Default: quorum when AMQP_URL names several nodes, classic for one.
   */
  REPLY_QUEUE_TYPE: z.enum(WORK_QUEUE_TYPES, { error: `must be ${WORK_QUEUE_TYPES.join(' or ')}` }).optional(),
  /** A file holding the broker URL (a mounted secret); used when AMQP_URL is not set. */
  AMQP_URL_FILE: z.string().min(1).optional(),
  /** For amqps://: PEM files of the CA to trust, and of a client certificate and its key. */
  AMQP_CA_FILE: z.string().min(1).optional(),
  AMQP_CERT_FILE: z.string().min(1).optional(),
  AMQP_KEY_FILE: z.string().min(1).optional(),
  /** pino level. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** AMQP heartbeat, seconds: a dead peer is noticed within about two of these. */
  HEARTBEAT_SECONDS: int(0, 600).default(5),
  /** Connection attempts at start-up before giving up (reconnects after that never give up). */
  CONNECT_RETRIES: int(0, 1000).default(5),
  /**
   * Type of the three work queues: quorum (default; replicated on a cluster, the broker counts
   * deliveries) or classic (one node; cheaper for the broker when jobs come one or two at a
   * time). Producers and services of one broker must agree: docs/protocol.md.
   */
  WORK_QUEUE_TYPE: z.enum(WORK_QUEUE_TYPES, { error: `must be ${WORK_QUEUE_TYPES.join(' or ')}` }).default('quorum'),
  /** Messages a consumer holds unacknowledged at once (its concurrency). Default depends on the service. */
  PREFETCH: int(1, 65535).optional(),
  /** Largest job body a consumer accepts, bytes; bigger ones are dead-lettered. */
  MAX_MESSAGE_BYTES: int(64, 128 * 1024 * 1024).default(1024 * 1024),
  /** Most numbers one list job may cover (to - from + 1); wider ones need --count or --chunk. */
  MAX_RANGE_WIDTH: int(1, 1_000_000_000).default(10_000_000),
  /** Most numbers one count (summary) job may cover. */
  MAX_COUNT_WIDTH: int(1, Number.MAX_SAFE_INTEGER).default(100_000_000_000),
  /** Largest result message, bytes: longer lists are sent as ordered parts under this size. */
  // 64 KiB: a part's list (~6,500 numbers) stays under V8's large-object size, so a producer
  // streaming millions of numbers frees it in a young-generation collection. With 1 MiB parts
  // streaming 10^7 primes took 150-180 MB in the CLI against 120 for 10^6; with 64 KiB, 82
  // for both, in the same time.
  RESULT_PART_BYTES: int(1024, 64 * 1024 * 1024).default(64 * 1024),
  /**
   * Producer: most small range jobs sent in one message (docs/protocol.md, "Several jobs in one
   * message"); the broker's work is per message, so small jobs go several at a time. 1 sends
   * every job alone (for services from before 2026-12-07, which take one job a message).
   */
  JOBS_PER_MESSAGE: int(1, 1000).default(50),
  /** Worker threads for CPU-heavy work (the prime sieve); 0 means one per core. */
  WORKERS: int(0, 256).default(0),
  /** Attempts per job (the first included) when it fails for a passing reason (timeout, 5xx). */
  RETRY_ATTEMPTS: int(1, 50).default(4),
  /** Waits before the 2nd, 3rd, 4th... attempt, ms, comma-separated; the last repeats. At most 3. */
  RETRY_DELAYS_MS: z
    .string()
    .transform((v) => v.split(',').map((x) => Number(x.trim())))
    .pipe(z.array(z.number().int().min(1).max(24 * 3600 * 1000)).min(1).max(3))
    .default([1000, 5000, 30000]),
  /** Port of the service's /healthz, /readyz and /metrics endpoints; unset or 0 turns them off. */
  HEALTH_PORT: int(0, 65535).default(0),
  /** Address those endpoints listen on (0.0.0.0 in containers). */
  HEALTH_HOST: z.string().min(1).default('127.0.0.1'),
  /** How long a consumer waits for in-flight jobs on SIGTERM before handing them back, ms. */
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  /** How long an uncollected per-batch reply queue lives, ms. */
  REPLY_QUEUE_TTL_MS: int(1000, 30 * 24 * 3600 * 1000).default(24 * 3600 * 1000),
  /** Whole-request time limit for a page fetch, ms. */
  FETCH_TIMEOUT_MS: int(100, 600_000).default(10_000),
  /** Most bytes read from one page before giving up on finding its title. */
  FETCH_MAX_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  /** Redirects followed per page. */
  FETCH_MAX_REDIRECTS: int(0, 20).default(5),
  /** Allow fetching loopback, private, link-local and other non-public addresses (local use, tests). */
  FETCH_ALLOW_PRIVATE: bool.default(false),
  /** If set (comma-separated host names), only these hosts (and their subdomains) are fetched. */
  FETCH_ALLOWED_HOSTS: hostList.default([]),
  /** Fetches in flight at once to one host (origin). */
  FETCH_PER_HOST_CONCURRENCY: int(1, 1024).default(8),
  /** Requests per second started against one host; 0 means no limit. */
  FETCH_PER_HOST_RATE: z.coerce.number().min(0).max(100_000).default(0),
});

export type Config = Readonly<z.infer<typeof schema>>;

/** Names of the settings, for documentation and `--help`. */
export const configKeys = Object.keys(schema.shape) as (keyof Config)[];

/**
 * Parses the environment once. Every problem is reported in one error
 * (code PIPELINE_ERR_CONFIG); the result is frozen.
 * `defaults` supplies per-service defaults beneath the environment.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  defaults: Partial<Record<keyof Config, string>> = {},
): Config {
  const input: Record<string, string> = {};
  if (!env.AMQP_URL && env.AMQP_URL_FILE) {
    try {
      env = { ...env, AMQP_URL: readFileSync(env.AMQP_URL_FILE, 'utf8').trim() };
    } catch (cause) {
      throw new PipelineError(ErrorCodes.CONFIG, `invalid configuration:\n  AMQP_URL_FILE: cannot read ${env.AMQP_URL_FILE}: ${(cause as Error).message}`, { cause });
    }
  }
  for (const key of configKeys) {
    const value = env[key];
    const fallback = defaults[key];
    if (value !== undefined && value !== '') input[key] = value;
    else if (fallback !== undefined) input[key] = fallback;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new PipelineError(ErrorCodes.CONFIG, `invalid configuration:\n${problems.join('\n')}`, {
      details: { problems },
    });
  }
  return Object.freeze(parsed.data);
}

/**
 * The broker URLs in AMQP_URL: one, or one per node of a cluster, comma-separated (a comma
 * starts a new URL only where a scheme such as `amqp://` follows, so passwords may hold commas).
 */
export function brokerUrls(value: string): string[] {
  return value
    .split(/,(?=\s*[a-z][a-z0-9+.-]*:\/\/)/i)
    .map((u) => u.trim())
    .filter((u) => u !== '');
}

/**
 * The broker user of a URL, by amqplib's own rule (lib/connect.js credentialsFromUrl): guest
 * when the URL has neither user nor password, else its user name through `unescape` (so the
 * user_id a process signs with is exactly the user it logs in as).
 */
export function userOfUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'guest';
  }
  if (u.username === '' && u.password === '') return 'guest';
  return u.username ? unescape(u.username) : '';
}

/** The broker user a process connects as (AMQP_URL names one, however many nodes). */
export function brokerUser(config: Pick<Config, 'AMQP_URL'>): string {
  return userOfUrl(brokerUrls(config.AMQP_URL)[0] ?? '');
}

/** The kinds of result (a result's `kind`), each made by one service. */
export const SERVICE_KINDS = ['primes', 'squares', 'title'] as const;
export type ServiceKind = (typeof SERVICE_KINDS)[number];
/** Per kind, the one broker user whose results are taken; `off`: any sender. */
export type ServiceUsers = Readonly<Record<ServiceKind, string>> | 'off';

/** The service users of rabbitmq/definitions.json (its role names). */
export const ROLE_SERVICE_USERS: Readonly<Record<ServiceKind, string>> = Object.freeze({ primes: 'prime-filter', squares: 'square-mapper', title: 'title-fetcher' });

/** SERVICE_USERS's value, or what is wrong with it. */
export function parseServiceUsers(value: string): { users: ServiceUsers } | { problem: string } {
  const v = value.trim();
  if (v === 'off') return { users: 'off' };
  if (v === 'roles') return { users: ROLE_SERVICE_USERS };
  const users: Partial<Record<ServiceKind, string>> = {};
  for (const entry of v.split(',').map((e) => e.trim()).filter(Boolean)) {
    const m = /^(\w+)=(.+)$/.exec(entry);
    const kind = (m?.[1] === 'titles' ? 'title' : m?.[1]) as ServiceKind | undefined;
    if (!m || !kind || !(SERVICE_KINDS as readonly string[]).includes(kind)) {
      return { problem: `must be roles, off, or ${SERVICE_KINDS.map((k) => `${k}=USER`).join(',')} ("${entry}" is none of these)` };
    }
    users[kind] = m[2]!.trim();
  }
  const missing = SERVICE_KINDS.filter((k) => !users[k]);
  if (missing.length > 0) return { problem: `names no user for ${missing.join(', ')} (give all three: ${SERVICE_KINDS.map((k) => `${k}=USER`).join(',')})` };
  return { users: users as Record<ServiceKind, string> };
}

/**
 * Whose results a producer takes: SERVICE_USERS, else the definitions' roles for their
 * `producer` user, else any sender (`off`).
 */
export function serviceUsers(config: Pick<Config, 'AMQP_URL' | 'SERVICE_USERS'>): ServiceUsers {
  return config.SERVICE_USERS ?? (brokerUser(config) === 'producer' ? ROLE_SERVICE_USERS : 'off');
}

/** The reply queues' type: REPLY_QUEUE_TYPE, else quorum for a cluster (several URLs), classic for one node. */
export function replyQueueType(config: Pick<Config, 'AMQP_URL' | 'REPLY_QUEUE_TYPE'>): 'quorum' | 'classic' {
  return config.REPLY_QUEUE_TYPE ?? (brokerUrls(config.AMQP_URL).length > 1 ? 'quorum' : 'classic');
}

/** The URL (or each of the URLs) with its password masked, for logs and error messages. */
export function redactUrl(url: string): string {
  const urls = brokerUrls(url);
  if (urls.length > 1) return urls.map(redactOne).join(',');
  return redactOne(url);
}

function redactOne(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  }
}
