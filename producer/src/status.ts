/**
 * `pipeline status [--json] [--watch]`: what the broker holds for the pipeline, read from
 * RabbitMQ's management HTTP API (never over AMQP): the batches whose results wait for
 * collection, each work queue's depth, rates and consumers, and the dead letters by reason.
 *
 * A thin shell (statusCommand: the HTTP calls, the watch loop, the signals) around pure parts
 * that status.test.ts covers: the API's address from the environment (managementTarget), the
 * API's answers turned into a typed snapshot (buildSnapshot), and the snapshot as a table
 * (renderStatus).
 */
import {
  ErrorCodes,
  PipelineError,
  Queues,
  REPLY_QUEUE_PREFIX,
  brokerUrls,
  isPipelineError,
  loadConfig,
} from '@amqp-pipeline/shared/client';
import { z } from 'zod';
import { Exit } from './cli-args.js';

/**
 * Between a producer's user and its batch in a reply queue's name (shared/src/topology.ts
 * OWNER_SEPARATOR, which the package does not export; status.test.ts checks they agree).
 */
export const OWNER_SEPARATOR = ':';

/**
 * Headers our services put on a dead letter (shared/src/consumer.ts DeadLetterHeaders;
 * status.test.ts checks they agree). The main entry exports them, but loading it would load
 * the services' metrics code into the CLI.
 */
export const DEAD_LETTER_HEADERS = {
  reason: 'x-pipeline-reason',
  code: 'x-pipeline-error-code',
  service: 'x-pipeline-service',
  queue: 'x-pipeline-queue',
} as const;

/** The work queues, in the order they are shown. */
export const WORK_QUEUES: readonly string[] = [Queues.primes.name, Queues.squares.name, Queues.titles.name];

/** Dead letters read (and put back, in order) for the breakdown by reason. */
export const DEAD_SAMPLE = 500;
/** Each HTTP request's time limit, ms. */
export const REQUEST_TIMEOUT_MS = 5000;
/** Time between two frames of --watch, ms. */
export const WATCH_INTERVAL_MS = 1000;
/** --watch reads the dead letters again when their count changed (at most this often, ms)... */
export const DEAD_RESAMPLE_CHANGED_MS = 2000;
/** ...and in any case this often, ms. */
export const DEAD_RESAMPLE_MS = 10_000;
/** Batches the table lists (--json lists all). */
export const MAX_BATCH_ROWS = 20;
const PAGE_SIZE = 500;
const MANAGEMENT_VARIABLE = 'PIPELINE_MANAGEMENT_URL';

// ---------------------------------------------------------------------------------------
// Where the management API is

export interface ManagementTarget {
  /** The API's root without credentials and without `/api`: `http://127.0.0.1:15672`, or with a path prefix. */
  base: string;
  /** The broker user the requests are made as. */
  user: string;
  /** The `authorization` header (HTTP basic). Never printed. */
  authorization: string;
  /** The virtual host the pipeline lives in (from AMQP_URL's path, as amqplib reads it). */
  vhost: string;
  /** The variable the address came from, named in every error message. */
  source: typeof MANAGEMENT_VARIABLE | 'AMQP_URL';
}

/** The URL with its password masked (`***`), for messages. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  }
}

function decoded(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** The vhost of an AMQP URL by amqplib's rule: its path without the leading slash, unescaped; `/` when empty. */
export function vhostOf(amqpUrl: URL): string {
  const path = amqpUrl.pathname.slice(1);
  return path === '' ? '/' : decoded(path);
}

/**
 * The management API to ask, from PIPELINE_MANAGEMENT_URL (`http[s]://[user:pass@]host[:port][/prefix]`;
 * user and password default to AMQP_URL's), else derived from AMQP_URL's first URL: the same
 * host, http on 15672 (amqps: https on 15671), the same user and password (guest/guest when it
 * names none). The vhost always comes from AMQP_URL. Throws PIPELINE_ERR_CONFIG, naming the
 * variable, for a URL that cannot be used; never with the password in the message.
 */
export function managementTarget(amqpUrl: string, managementUrl?: string): ManagementTarget {
  const first = brokerUrls(amqpUrl)[0] ?? '';
  let amqp: URL;
  try {
    amqp = new URL(first);
  } catch {
    throw new PipelineError(ErrorCodes.CONFIG, `AMQP_URL is not a URL: the management API's address and the vhost are derived from it (or set ${MANAGEMENT_VARIABLE})`);
  }
  if (amqp.protocol !== 'amqp:' && amqp.protocol !== 'amqps:') {
    throw new PipelineError(ErrorCodes.CONFIG, `AMQP_URL must be an amqp:// or amqps:// URL, not "${maskUrl(first)}"`);
  }
  const vhost = vhostOf(amqp);
  let api: URL;
  let source: ManagementTarget['source'];
  if (managementUrl !== undefined && managementUrl.trim() !== '') {
    source = MANAGEMENT_VARIABLE;
    try {
      api = new URL(managementUrl.trim());
    } catch {
      throw new PipelineError(ErrorCodes.CONFIG, `${MANAGEMENT_VARIABLE} is not a URL: write it like http://user:password@host:15672 (with a path prefix if a proxy serves the API under one)`);
    }
    if (api.protocol !== 'http:' && api.protocol !== 'https:') {
      throw new PipelineError(ErrorCodes.CONFIG, `${MANAGEMENT_VARIABLE} must be an http:// or https:// URL, not "${maskUrl(managementUrl)}"`);
    }
  } else {
    source = 'AMQP_URL';
    const tls = amqp.protocol === 'amqps:';
    api = new URL(`${tls ? 'https' : 'http'}://${amqp.host.replace(/:\d+$/, '')}:${tls ? 15671 : 15672}`);
  }
  // Credentials: the management URL's own, else AMQP_URL's, else amqplib's default guest/guest.
  const [rawUser, rawPass] = api.username || api.password ? [api.username, api.password] : amqp.username || amqp.password ? [amqp.username, amqp.password] : ['guest', 'guest'];
  const user = decoded(rawUser);
  const password = decoded(rawPass);
  // A path prefix (the API behind a reverse proxy), without a trailing slash or `/api`.
  const prefix = api.pathname.replace(/\/+$/, '').replace(/\/api$/, '');
  return {
    base: `${api.protocol}//${api.host}${prefix}`,
    user,
    authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
    vhost,
    source,
  };
}

// ---------------------------------------------------------------------------------------
// The API's answers, read leniently: unknown fields kept, missing or odd ones left undefined

const count = z.number().nonnegative().optional().catch(undefined);
const rate = z.looseObject({ rate: z.number().optional().catch(undefined) }).optional().catch(undefined);

const QueueItem = z.looseObject({
  name: z.string(),
  type: z.string().optional().catch(undefined),
  messages: count,
  messages_ready: count,
  messages_unacknowledged: count,
  consumers: count,
  message_stats: z
    .looseObject({ publish_details: rate, ack_details: rate, deliver_get_details: rate })
    .optional()
    .catch(undefined),
});
type QueueItem = z.infer<typeof QueueItem>;

const QueueDetail = z.looseObject({
  consumer_details: z
    .array(
      z.looseObject({
        // The broker sends [] here when the channel is already gone.
        channel_details: z.looseObject({ connection_name: z.string().optional().catch(undefined) }).optional().catch(undefined),
      }),
    )
    .optional()
    .catch(undefined),
});

const ConnectionItem = z.looseObject({
  name: z.string(),
  client_properties: z.looseObject({ connection_name: z.string().optional().catch(undefined) }).optional().catch(undefined),
});

const DeadMessage = z.looseObject({
  properties: z.looseObject({ headers: z.record(z.string(), z.unknown()).optional().catch(undefined) }).optional().catch(undefined),
});

const Page = z.looseObject({ items: z.array(z.unknown()), page: z.number().optional(), page_count: z.number().optional() });

/** The items of a list answer: a page (`{items, ...}`) or a plain array; items that fail `schema` are left out. */
function itemsOf<T>(raw: unknown, schema: z.ZodType<T>): T[] {
  const page = Page.safeParse(raw);
  const list = page.success ? page.data.items : Array.isArray(raw) ? raw : [];
  const out: T[] = [];
  for (const item of list) {
    const parsed = schema.safeParse(item);
    if (parsed.success) out.push(parsed.data);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The snapshot: what --json prints (field names are stable; documented in --help)

export interface BatchRow {
  /** The producer's broker user; null for a queue named without one (from before owned queues). */
  user: string | null;
  batch: string;
  queue: string;
  /** From the id's UTC stamp (newBatchId); null when the id has none. */
  startedAt: string | null;
  ageSeconds: number | null;
  /** Results waiting in the reply queue. */
  ready: number;
  unacked: number;
  consumers: number;
  /** `collecting`: someone consumes the reply queue now; `waiting`: nobody does. */
  state: 'collecting' | 'waiting';
}

export interface QueueCounts {
  name: string;
  /** False when the broker has no such queue (no service or producer declared it yet). */
  declared: boolean;
  ready: number;
  unacked: number;
}

export interface WorkQueueRow extends QueueCounts {
  type: string | null;
  /** Messages a second into the queue (published), null when the broker has no rates for it. */
  rateIn: number | null;
  /** Messages a second out of it (acked; delivered when nothing acks), null when no rates. */
  rateOut: number | null;
  consumers: number;
  /** The consumers' connections by their client-provided names (the broker's name when hidden). */
  clients: { name: string; consumers: number }[];
  /** Jobs waiting out a retry delay, over all tiers, and per tier. */
  retry: { ready: number; unacked: number; tiers: QueueCounts[] };
}

export interface ReasonCount {
  /** The service's error code (x-pipeline-error-code), or `broker:<reason>` for the broker's own dead letters (delivery_limit, expired...). */
  code: string;
  count: number;
  /** The services that refused them (x-pipeline-service). */
  services: string[];
  /** One reason as written (x-pipeline-reason, or the queue the broker took it from), cut short. */
  example: string | null;
}

export interface DeadSummary extends QueueCounts {
  messages: number;
  rateIn: number | null;
  /** The breakdown by reason of the first `read` dead letters; null when none were read. */
  sample: { read: number; at: string; byReason: ReasonCount[] } | null;
  /** Why there is no breakdown (e.g. no read permission on the queue), else null. */
  sampleError: string | null;
}

export interface StatusSnapshot {
  at: string;
  /** The management API asked, without credentials. */
  management: string;
  vhost: string;
  batches: BatchRow[];
  sessions: { open: number; consuming: number };
  queues: WorkQueueRow[];
  dead: DeadSummary;
}

/** Dead letters as read for the breakdown: the `get` answer, or why it could not be read. */
export type DeadRead = { messages: unknown; at: Date } | { error: string; at: Date };

export interface RawStatus {
  at: Date;
  management: string;
  vhost: string;
  /** GET /api/queues/<vhost> (one page or all pages' items). */
  queues: unknown;
  /** GET /api/queues/<vhost>/<name> per work queue with consumers. */
  details?: Record<string, unknown>;
  /** GET /api/connections. */
  connections?: unknown;
  dead?: DeadRead;
}

const STAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?=-|$)/;

/** When a batch started, from the UTC stamp newBatchId puts first in its id; undefined without one. */
export function batchStartedAt(batch: string): Date | undefined {
  const m = STAMP.exec(batch);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const at = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Date.UTC rolls 2026-13-45 over into a valid date: only a stamp that reads back the same counts.
  return at.getUTCMonth() === mo - 1 && at.getUTCDate() === d && at.getUTCHours() === h && at.getUTCMinutes() === mi && at.getUTCSeconds() === s ? at : undefined;
}

/** The owner and batch of a reply queue's name; undefined for other queues (a batch's .manifest and .progress too). */
export function parseReplyQueue(name: string): { user: string | null; batch: string; session: boolean } | undefined {
  if (!name.startsWith(REPLY_QUEUE_PREFIX)) return undefined;
  const id = name.slice(REPLY_QUEUE_PREFIX.length);
  if (id === '' || id.endsWith('.manifest') || id.endsWith('.progress')) return undefined;
  const at = id.indexOf(OWNER_SEPARATOR);
  const [user, batch] = at < 0 ? [null, id] : [id.slice(0, at), id.slice(at + 1)];
  if (batch === '') return undefined;
  return { user, batch, session: batch.startsWith('session-') };
}

function headerString(headers: Record<string, unknown>, key: string): string | undefined {
  const v = headers[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

const cut = (s: string, n = 120) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/**
 * Why one dead letter is there: our services' code (x-pipeline-error-code) with their reason,
 * else the broker's own reason (x-first-death-reason, or the first x-death entry's), as
 * `broker:<reason>`, with the queue it came from.
 */
export function deadLetterReason(headers: Record<string, unknown> | undefined): { code: string; service?: string; example?: string } {
  const h = headers ?? {};
  const code = headerString(h, DEAD_LETTER_HEADERS.code);
  if (code) {
    const service = headerString(h, DEAD_LETTER_HEADERS.service);
    const reason = headerString(h, DEAD_LETTER_HEADERS.reason);
    return { code, ...(service ? { service } : {}), ...(reason ? { example: cut(reason) } : {}) };
  }
  const deaths = Array.isArray(h['x-death']) ? (h['x-death'] as unknown[]) : [];
  const death = (deaths[0] ?? {}) as Record<string, unknown>;
  const reason = headerString(h, 'x-first-death-reason') ?? (typeof death.reason === 'string' ? death.reason : undefined);
  const queue = headerString(h, 'x-first-death-queue') ?? (typeof death.queue === 'string' ? death.queue : undefined);
  if (reason) return { code: `broker:${reason}`, ...(queue ? { example: `from ${queue}` } : {}) };
  return { code: 'unknown' };
}

/** The dead letters of a `get` answer grouped by reason code, most first. */
export function reasonsOf(messages: unknown): { read: number; byReason: ReasonCount[] } {
  const list = Array.isArray(messages) ? messages : [];
  const groups = new Map<string, ReasonCount>();
  let read = 0;
  for (const raw of list) {
    const m = DeadMessage.safeParse(raw);
    if (!m.success) continue;
    read++;
    const r = deadLetterReason(m.data.properties?.headers);
    let g = groups.get(r.code);
    if (!g) groups.set(r.code, (g = { code: r.code, count: 0, services: [], example: null }));
    g.count++;
    if (r.service && !g.services.includes(r.service)) g.services.push(r.service);
    if (g.example === null && r.example) g.example = r.example;
  }
  const byReason = [...groups.values()].sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));
  return { read, byReason };
}

const countsOf = (name: string, q: QueueItem | undefined): QueueCounts => ({
  name,
  declared: q !== undefined,
  ready: q?.messages_ready ?? 0,
  unacked: q?.messages_unacknowledged ?? 0,
});

const rateIn = (q: QueueItem | undefined) => q?.message_stats?.publish_details?.rate ?? null;
const rateOut = (q: QueueItem | undefined) => {
  const s = q?.message_stats;
  return (s?.ack_details ? s.ack_details.rate : s?.deliver_get_details?.rate) ?? null;
};

/** The consumers of one queue by their connections' client-provided names. */
function clientsOf(detail: unknown, clientNames: ReadonlyMap<string, string>): { name: string; consumers: number }[] {
  const parsed = QueueDetail.safeParse(detail);
  const byName = new Map<string, number>();
  for (const c of (parsed.success ? parsed.data.consumer_details : undefined) ?? []) {
    const broker = c.channel_details?.connection_name;
    const name = broker === undefined ? '(unknown connection)' : (clientNames.get(broker) ?? broker);
    byName.set(name, (byName.get(name) ?? 0) + 1);
  }
  return [...byName].map(([name, consumers]) => ({ name, consumers })).sort((a, b) => b.consumers - a.consumers || a.name.localeCompare(b.name));
}

/** The snapshot the API's answers describe (pure: everything it needs is in `raw`). */
export function buildSnapshot(raw: RawStatus): StatusSnapshot {
  const items = itemsOf(raw.queues, QueueItem);
  const byName = new Map(items.map((q) => [q.name, q]));
  const clientNames = new Map<string, string>();
  for (const c of itemsOf(raw.connections, ConnectionItem)) {
    const given = c.client_properties?.connection_name;
    if (given) clientNames.set(c.name, given);
  }

  const batches: BatchRow[] = [];
  const sessions = { open: 0, consuming: 0 };
  for (const q of items) {
    const owner = parseReplyQueue(q.name);
    if (!owner) continue;
    const consumers = q.consumers ?? 0;
    if (owner.session) {
      sessions.open++;
      if (consumers > 0) sessions.consuming++;
      continue;
    }
    const started = batchStartedAt(owner.batch);
    batches.push({
      user: owner.user,
      batch: owner.batch,
      queue: q.name,
      startedAt: started ? started.toISOString() : null,
      ageSeconds: started ? Math.max(0, Math.floor((raw.at.getTime() - started.getTime()) / 1000)) : null,
      ready: q.messages_ready ?? 0,
      unacked: q.messages_unacknowledged ?? 0,
      consumers,
      state: consumers > 0 ? 'collecting' : 'waiting',
    });
  }
  // Oldest first (they are the ones to collect or let expire); ids without a stamp last.
  batches.sort((a, b) => (a.startedAt ?? '\uffff').localeCompare(b.startedAt ?? '\uffff') || a.queue.localeCompare(b.queue));

  const queues: WorkQueueRow[] = WORK_QUEUES.map((name) => {
    const q = byName.get(name);
    const tierPattern = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.retry\\.(\\d+)$`);
    const tiers = items
      .filter((t) => tierPattern.test(t.name))
      .sort((a, b) => Number(tierPattern.exec(a.name)?.[1]) - Number(tierPattern.exec(b.name)?.[1]))
      .map((t) => countsOf(t.name, t));
    return {
      ...countsOf(name, q),
      type: q?.type ?? null,
      rateIn: rateIn(q),
      rateOut: rateOut(q),
      consumers: q?.consumers ?? 0,
      clients: (q?.consumers ?? 0) > 0 ? clientsOf(raw.details?.[name], clientNames) : [],
      retry: { ready: tiers.reduce((n, t) => n + t.ready, 0), unacked: tiers.reduce((n, t) => n + t.unacked, 0), tiers },
    };
  });

  const d = byName.get(Queues.dead.name);
  const deadCounts = countsOf(Queues.dead.name, d);
  let sample: DeadSummary['sample'] = null;
  let sampleError: string | null = null;
  if (raw.dead && 'error' in raw.dead) sampleError = raw.dead.error;
  else if (raw.dead) sample = { ...reasonsOf(raw.dead.messages), at: raw.dead.at.toISOString() };
  const dead: DeadSummary = {
    ...deadCounts,
    // The stats lag the queue by up to their interval: never fewer than were just read.
    messages: Math.max(d?.messages ?? deadCounts.ready + deadCounts.unacked, sample?.read ?? 0),
    rateIn: rateIn(d),
    sample,
    sampleError,
  };

  return { at: raw.at.toISOString(), management: raw.management, vhost: raw.vhost, batches, sessions, queues, dead };
}

// ---------------------------------------------------------------------------------------
// The table

/** 999, 1.2k, 12k, 123k, 1.2M ... */
export function shortNumber(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const abs = Math.abs(n);
  if (abs < 1000) return String(Math.round(n));
  for (const [unit, size] of [['k', 1e3], ['M', 1e6], ['G', 1e9], ['T', 1e12]] as const) {
    const x = abs / size;
    const label = x < 9.95 ? x.toFixed(1) : String(Math.round(x));
    if (Number(label) < 1000 || unit === 'T') return `${n < 0 ? '-' : ''}${label}${unit}`;
  }
  return String(n);
}

/** 12.3/s; `-` when the broker has no rate. */
export function shortRate(r: number | null): string {
  if (r === null) return '-';
  return `${r < 99.95 ? r.toFixed(1) : shortNumber(r)}/s`;
}

/** 45s, 12m, 3h05m, 2d04h; `-` when unknown. */
export function shortAge(seconds: number | null): string {
  if (seconds === null) return '-';
  const two = (n: number) => String(n).padStart(2, '0');
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h${two(Math.floor((seconds % 3600) / 60))}m`;
  return `${Math.floor(seconds / 86_400)}d${two(Math.floor((seconds % 86_400) / 3600))}h`;
}

/** Rows as aligned columns (`r`: right-aligned), two spaces apart, no trailing blanks. */
export function table(rows: readonly (readonly string[])[], align: readonly ('l' | 'r')[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) =>
    row
      .map((cell, i) => {
        const last = i === row.length - 1;
        if (align[i] === 'r') return cell.padStart(widths[i] ?? 0);
        return last ? cell : cell.padEnd(widths[i] ?? 0);
      })
      .join('  ')
      .trimEnd(),
  );
}

export interface RenderOptions {
  /** Cut lines to this many characters (a terminal's width); no cut when unset. */
  width?: number;
  /** Most batch rows (default MAX_BATCH_ROWS). */
  maxBatches?: number;
  /** A line about the watch itself (its interval, how to stop it). */
  watchNote?: string;
  /** The error of the last attempt, shown above the last good snapshot. */
  error?: string;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The snapshot for people. */
export function renderStatus(s: StatusSnapshot, opts: RenderOptions = {}): string {
  const lines: string[] = [];
  lines.push(`pipeline status · ${s.management} · vhost ${s.vhost} · ${s.at.replace(/\.\d+Z$/, 'Z')}${opts.watchNote ? ` · ${opts.watchNote}` : ''}`);
  if (opts.error) lines.push(`! ${opts.error}`, `! (showing the last snapshot that could be read; trying again)`);
  lines.push('');

  const q = [['WORK QUEUE', 'READY', 'UNACKED', 'IN', 'OUT', 'RETRY', 'CONSUMERS']];
  for (const w of s.queues) {
    if (!w.declared) {
      q.push([w.name, '-', '-', '-', '-', '-', 'not declared yet (no service has started)']);
      continue;
    }
    const clients = w.clients.map((c) => (c.consumers > 1 ? `${c.name} ×${c.consumers}` : c.name)).join(', ');
    q.push([w.name, shortNumber(w.ready), shortNumber(w.unacked), shortRate(w.rateIn), shortRate(w.rateOut), shortNumber(w.retry.ready + w.retry.unacked), w.consumers === 0 ? '0  (none: jobs wait)' : `${w.consumers}  ${clients}`.trimEnd()]);
  }
  lines.push(...table(q, ['l', 'r', 'r', 'r', 'r', 'r', 'l']), '');

  const sessions = s.sessions.open === 0 ? '' : `; ${plural(s.sessions.open, 'session')} open${s.sessions.consuming < s.sessions.open ? ` (${s.sessions.open - s.sessions.consuming} with nobody consuming)` : ''}`;
  if (s.batches.length === 0) {
    lines.push(`No batches waiting for collection${sessions}.`);
  } else {
    const ready = s.batches.reduce((n, b) => n + b.ready, 0);
    lines.push(`BATCHES WAITING FOR COLLECTION: ${s.batches.length}, ${shortNumber(ready)} result message(s) ready${sessions}`);
    const max = opts.maxBatches ?? MAX_BATCH_ROWS;
    const rows = [['USER', 'BATCH', 'AGE', 'READY', 'UNACKED', 'STATE']];
    for (const b of s.batches.slice(0, max)) rows.push([b.user ?? '-', b.batch, shortAge(b.ageSeconds), shortNumber(b.ready), shortNumber(b.unacked), b.state]);
    lines.push(...table(rows, ['l', 'l', 'r', 'r', 'r', 'l']).map((l) => `  ${l}`));
    if (s.batches.length > max) lines.push(`  … and ${s.batches.length - max} more (pipeline status --json lists them all)`);
    lines.push(`  collect one with: pipeline collect BATCH (as its user)`);
  }
  lines.push('');

  const d = s.dead;
  if (!d.declared) lines.push(`DEAD LETTERS: ${d.name} is not declared yet.`);
  else if (d.messages === 0) lines.push(`DEAD LETTERS: none in ${d.name}.`);
  else {
    // Exact counts here: an operator compares them with the broker's own.
    const head = `DEAD LETTERS: ${d.messages} in ${d.name} (${shortRate(d.rateIn)} in)`;
    if (d.sampleError) lines.push(`${head}; no breakdown by reason: ${d.sampleError}`);
    else if (!d.sample) lines.push(head);
    else {
      const age = Math.round((Date.parse(s.at) - Date.parse(d.sample.at)) / 1000);
      const when = age >= 2 ? `, read ${shortAge(age)} ago` : '';
      const of = d.sample.read < d.messages ? `, of the first ${d.sample.read} of ${d.messages}` : '';
      lines.push(`${head}; by reason${of}${when}:`);
      const rows = d.sample.byReason.map((r) => [r.code, String(r.count), r.services.join(',') || '-', r.example ?? '']);
      lines.push(...table(rows, ['l', 'r', 'l', 'l']).map((l) => `  ${l}`));
    }
  }
  const width = opts.width;
  const out = width && width > 10 ? lines.map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l)) : lines;
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------
// The HTTP calls

/** Whether --watch reads the dead letters again now (the sample last read, the count now). */
export function deadSampleDue(last: { at: number; total: number } | undefined, total: number, now: number): boolean {
  if (total === 0) return false;
  if (!last) return true;
  const age = now - last.at;
  return age >= DEAD_RESAMPLE_MS || (total !== last.total && age >= DEAD_RESAMPLE_CHANGED_MS);
}

function causeCode(err: unknown): string {
  const e = err as { name?: string; code?: unknown; cause?: { code?: unknown; name?: string; errors?: { code?: unknown }[] } };
  if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') return `timed out after ${REQUEST_TIMEOUT_MS / 1000} s`;
  const code = e?.cause?.code ?? e?.cause?.errors?.[0]?.code ?? e?.code;
  if (typeof code === 'string') return code;
  // fetch's own refusals carry no code: "bad port" (ports it never uses, such as 1 or 6000).
  const cause = (e?.cause as { message?: unknown } | undefined)?.message;
  return typeof cause === 'string' ? cause : ((err as Error)?.message ?? String(err));
}

function unreachable(t: ManagementTarget, err: unknown): PipelineError {
  const code = causeCode(err);
  const why = code === 'bad port' ? `port ${new URL(t.base).port}: one of the ports fetch never connects to` : code;
  const tlsHint = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(why) ? ' (a private CA: NODE_EXTRA_CA_CERTS=/path/to/ca.pem)' : '';
  const message =
    t.source === MANAGEMENT_VARIABLE
      ? `cannot reach the RabbitMQ management API at ${t.base} (${why})${tlsHint}, the address ${MANAGEMENT_VARIABLE} gives: check ${MANAGEMENT_VARIABLE}, and that the plugin is enabled (\`rabbitmq-plugins enable rabbitmq_management\`)`
      : `cannot reach the RabbitMQ management API at ${t.base} (${why})${tlsHint}: enable it with \`rabbitmq-plugins enable rabbitmq_management\`, or set ${MANAGEMENT_VARIABLE} (this address is AMQP_URL's host on the plugin's default port)`;
  return new PipelineError(ErrorCodes.BROKER_UNREACHABLE, message, { cause: err, details: { url: t.base } });
}

/** The `reason` of an error answer ({"error", "reason"}), or its first characters. */
function reasonOf(body: string): string {
  try {
    const j = JSON.parse(body) as { reason?: unknown; error?: unknown };
    return String(j.reason ?? j.error ?? '');
  } catch {
    return cut(body.trim(), 80);
  }
}

function notAllowed(t: ManagementTarget, status: number, reason: string): PipelineError {
  const login = /login failed/i.test(reason);
  const from = t.source === MANAGEMENT_VARIABLE ? MANAGEMENT_VARIABLE : 'AMQP_URL';
  const message = login
    ? `the RabbitMQ management API at ${t.base} refused the login of user "${t.user}" (${status} ${reason}): check the user and password in ${from}, or set ${MANAGEMENT_VARIABLE} to a user that has the \`management\` (or \`monitoring\`) tag`
    : `user "${t.user}" is not allowed to use the RabbitMQ management API at ${t.base} (${status}${reason ? ` ${reason}` : ''}): the broker user needs the \`management\` (or \`monitoring\`, to see every connection) tag and access to vhost "${t.vhost}" (rabbitmqctl set_user_tags ${t.user} monitoring), or set ${MANAGEMENT_VARIABLE} to a user that has it`;
  return new PipelineError(ErrorCodes.CONFIG, message, { details: { url: t.base, user: t.user, status } });
}

class NotFound extends Error {}

async function api(t: ManagementTarget, path: string, signal: AbortSignal, body?: unknown): Promise<unknown> {
  const url = `${t.base}/api${path}`;
  let status: number;
  let text: string;
  try {
    const res = await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: t.authorization, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
    });
    status = res.status;
    text = await res.text();
  } catch (err) {
    if (signal.aborted) throw err;
    throw unreachable(t, err);
  }
  if (status === 401 || status === 403) throw notAllowed(t, status, reasonOf(text));
  if (status === 404) throw new NotFound(path);
  if (status === 400) {
    // Cowboy's answer to a path it does not serve (a wrong prefix), or a request it cannot take.
    const reason = reasonOf(text);
    throw new PipelineError(
      ErrorCodes.CONFIG,
      `the RabbitMQ management API at ${t.base} answered 400${reason ? ` ${reason}` : ''} to /api${path.replace(/\?.*/, '')}: is ${t.base} the API's address? (a path prefix belongs in ${MANAGEMENT_VARIABLE} only when a proxy serves the API under one)`,
      { details: { url: t.base, status } },
    );
  }
  if (status < 200 || status > 299) {
    const reason = reasonOf(text);
    throw new PipelineError(ErrorCodes.BROKER_UNREACHABLE, `the RabbitMQ management API at ${t.base} answered ${status}${reason ? ` ${reason}` : ''} to /api${path.replace(/\?.*/, '')}`, { details: { url: t.base, status } });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new PipelineError(
      ErrorCodes.CONFIG,
      `${t.base}/api${path.replace(/\?.*/, '')} did not answer JSON: is ${t.base} the RabbitMQ management API (its path prefix, if behind a proxy, goes in ${MANAGEMENT_VARIABLE})?`,
      { details: { url: t.base } },
    );
  }
}

const QUEUE_COLUMNS = [
  'name',
  'type',
  'messages',
  'messages_ready',
  'messages_unacknowledged',
  'consumers',
  'message_stats.publish_details.rate',
  'message_stats.ack_details.rate',
  'message_stats.deliver_get_details.rate',
].join(',');

/** Every `pipeline.*` queue of the vhost, page by page. */
async function listQueues(t: ManagementTarget, signal: AbortSignal): Promise<unknown[]> {
  const vhost = encodeURIComponent(t.vhost);
  const name = encodeURIComponent('^pipeline\\.');
  const items: unknown[] = [];
  for (let page = 1; ; page++) {
    let raw: unknown;
    try {
      raw = await api(t, `/queues/${vhost}?page=${page}&page_size=${PAGE_SIZE}&name=${name}&use_regex=true&columns=${QUEUE_COLUMNS}`, signal);
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      throw new PipelineError(
        ErrorCodes.CONFIG,
        `the RabbitMQ management API at ${t.base} has no vhost "${t.vhost}" (404): the vhost is AMQP_URL's path (none: "/"); if the API is behind a proxy under a path prefix, put the prefix in ${MANAGEMENT_VARIABLE}`,
        { details: { url: t.base, vhost: t.vhost } },
      );
    }
    const p = Page.safeParse(raw);
    if (!p.success) return Array.isArray(raw) ? raw : items;
    items.push(...p.data.items);
    if (p.data.page_count === undefined || page >= p.data.page_count) return items;
  }
}

/** What the last snapshot read of the dead letters, reused by --watch until deadSampleDue. */
interface DeadCache {
  read: DeadRead;
  at: number;
  total: number;
}

/** Reads everything a snapshot needs. */
async function readStatus(t: ManagementTarget, signal: AbortSignal, cache: { dead?: DeadCache }, watch: boolean): Promise<StatusSnapshot> {
  const queues = await listQueues(t, signal);
  const items = itemsOf(queues, QueueItem);
  const vhost = encodeURIComponent(t.vhost);
  const consumed = WORK_QUEUES.filter((n) => (items.find((q) => q.name === n)?.consumers ?? 0) > 0);
  const deadQueue = items.find((q) => q.name === Queues.dead.name);
  const deadTotal = deadQueue ? (deadQueue.messages ?? (deadQueue.messages_ready ?? 0) + (deadQueue.messages_unacknowledged ?? 0)) : 0;

  const details = Promise.all(
    consumed.map(async (n) => [n, await api(t, `/queues/${vhost}/${encodeURIComponent(n)}?columns=consumer_details`, signal).catch((err: unknown) => (err instanceof NotFound ? undefined : Promise.reject(err)))] as const),
  );
  const connections = consumed.length > 0 ? api(t, '/connections?columns=name,client_properties.connection_name', signal).catch(() => undefined) : Promise.resolve(undefined);
  const dead = readDead(t, signal, cache, watch, deadTotal);
  const [d, c, deadRead] = await Promise.all([details, connections, dead]);
  return buildSnapshot({ at: new Date(), management: t.base, vhost: t.vhost, queues, details: Object.fromEntries(d), connections: c, ...(deadRead ? { dead: deadRead } : {}) });
}

/**
 * The first DEAD_SAMPLE dead letters, read with `ack_requeue_true`: the broker puts them back
 * where they were (a quorum queue requeues at the front, so their order is kept; they come
 * back marked redelivered). In --watch, the last read is reused until deadSampleDue.
 */
async function readDead(t: ManagementTarget, signal: AbortSignal, cache: { dead?: DeadCache }, watch: boolean, total: number): Promise<DeadRead | undefined> {
  if (total === 0) {
    delete cache.dead;
    return undefined;
  }
  const now = Date.now();
  if (watch && cache.dead && !deadSampleDue(cache.dead, total, now)) return cache.dead.read;
  let read: DeadRead;
  try {
    const messages = await api(t, `/queues/${encodeURIComponent(t.vhost)}/${encodeURIComponent(Queues.dead.name)}/get`, signal, {
      count: DEAD_SAMPLE,
      ackmode: 'ack_requeue_true',
      encoding: 'auto',
      // Only the headers are read: the bodies are cut short.
      truncate: 200,
    });
    read = { messages, at: new Date() };
  } catch (err) {
    if (err instanceof NotFound) read = { error: `${Queues.dead.name} is gone`, at: new Date() };
    else if (isPipelineError(err) && (err.details?.status === 401 || err.details?.status === 403)) {
      read = { error: `user "${t.user}" may not read ${Queues.dead.name} (a user with read permission on it can)`, at: new Date() };
    } else if (isPipelineError(err) && err.code === ErrorCodes.CONFIG) read = { error: err.message, at: new Date() };
    else throw err;
  }
  cache.dead = { read, at: now, total };
  return read;
}

// ---------------------------------------------------------------------------------------
// The command

export interface StatusOptions {
  json: boolean;
  watch: boolean;
  /** The environment (default process.env): PIPELINE_MANAGEMENT_URL, AMQP_URL, AMQP_URL_FILE. */
  env?: NodeJS.ProcessEnv;
  /** Where the status goes (default stdout). */
  out?: NodeJS.WritableStream;
  /** Where errors go (default stderr). */
  err?: NodeJS.WritableStream;
  /** Stops --watch (exit 0). Unset: SIGINT and SIGTERM do. */
  signal?: AbortSignal;
  /** Time between two frames of --watch, ms (default WATCH_INTERVAL_MS). */
  intervalMs?: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

function exitCodeOf(err: unknown): number | undefined {
  if (!isPipelineError(err)) return undefined;
  if (err.code === ErrorCodes.CONFIG) return Exit.CONFIG;
  if (err.code === ErrorCodes.BROKER_UNREACHABLE) return Exit.BROKER;
  return undefined;
}

/**
 * `pipeline status`: prints the snapshot once (a table, or one JSON object with --json), or
 * with --watch every second until stopped (a terminal is redrawn in place; --json: a line a
 * second). Exit codes: 0; 3 the management API cannot be reached; 78 not allowed or a bad
 * URL; 130 a one-off status interrupted. In --watch, once a snapshot has been read, a failure
 * is shown in the frame (a JSON line `{"at", "error": {"code", "message"}}`) and the next
 * second tries again; a watch ended by Ctrl-C or SIGTERM exits 0.
 */
export async function statusCommand(opts: StatusOptions): Promise<number> {
  const out = opts.out ?? process.stdout;
  const errOut = opts.err ?? process.stderr;
  const env = opts.env ?? process.env;
  const fail = (err: unknown): number => {
    const code = exitCodeOf(err);
    if (code === undefined) throw err;
    errOut.write(`pipeline: ${(err as Error).message}\n`);
    return code;
  };

  let target: ManagementTarget;
  try {
    // AMQP_URL (or AMQP_URL_FILE) as every command reads it; no connection is made.
    const config = loadConfig(env, { LOG_LEVEL: 'error' });
    target = managementTarget(config.AMQP_URL, env[MANAGEMENT_VARIABLE]);
  } catch (err) {
    return fail(err);
  }

  const stop = new AbortController();
  const onStop = () => stop.abort();
  opts.signal?.addEventListener('abort', onStop, { once: true });
  if (opts.signal?.aborted) stop.abort();
  if (!opts.signal) {
    process.on('SIGINT', onStop);
    process.on('SIGTERM', onStop);
  }
  // A reader gone (`| head -1`): stop rather than die of EPIPE.
  out.on('error', onStop);
  const tty = (out as { isTTY?: boolean }).isTTY === true;
  const width = () => (tty ? (out as { columns?: number }).columns : undefined);
  const cache: { dead?: DeadCache } = {};

  try {
    if (!opts.watch) {
      let snap: StatusSnapshot;
      try {
        snap = await readStatus(target, stop.signal, cache, false);
      } catch (err) {
        if (stop.signal.aborted) return Exit.INTERRUPTED;
        return fail(err);
      }
      const w = width();
      out.write(opts.json ? `${JSON.stringify(snap)}\n` : renderStatus(snap, w ? { width: w } : {}));
      return Exit.OK;
    }

    let last: StatusSnapshot | undefined;
    const interval = opts.intervalMs ?? WATCH_INTERVAL_MS;
    const note = `every ${interval / 1000} s, Ctrl-C to stop`;
    while (!stop.signal.aborted) {
      const started = Date.now();
      let frame: string;
      try {
        last = await readStatus(target, stop.signal, cache, true);
        const w = width();
        frame = opts.json ? `${JSON.stringify(last)}\n` : renderStatus(last, { watchNote: note, ...(w ? { width: w } : {}) });
      } catch (err) {
        if (stop.signal.aborted) break;
        // Nothing read yet, or not allowed / misconfigured (or a bug): say so and exit.
        if (last === undefined || exitCodeOf(err) !== Exit.BROKER) return fail(err);
        const { code, message } = err as PipelineError;
        const w = width();
        frame = opts.json
          ? `${JSON.stringify({ at: new Date().toISOString(), error: { code, message } })}\n`
          : renderStatus(last, { watchNote: note, error: `${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}: ${message}`, ...(w ? { width: w } : {}) });
      }
      out.write(tty && !opts.json ? `\x1b[H\x1b[2J${frame}` : opts.json ? frame : `${frame}\n`);
      await sleep(Math.max(0, interval - (Date.now() - started)), stop.signal);
    }
    return Exit.OK;
  } finally {
    opts.signal?.removeEventListener('abort', onStop);
    if (!opts.signal) {
      process.off('SIGINT', onStop);
      process.off('SIGTERM', onStop);
    }
    out.off('error', onStop);
  }
}
