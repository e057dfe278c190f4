import type { Channel } from 'amqplib';
import { ErrorCodes, PipelineError } from './errors.js';

/**
 * The broker topology as data. Services declare it on every (re)connect;
 * docs and broker definitions are derived from the same objects.
 */

export interface ExchangeSpec {
  name: string;
  type: 'topic' | 'direct' | 'fanout';
}

export interface QueueSpec {
  name: string;
  /** Queue arguments exactly as declared (x-queue-type, x-delivery-limit, ...). */
  arguments: Record<string, string | number>;
}

export interface BindingSpec {
  exchange: string;
  queue: string;
  routingKey: string;
}

/** Deliveries of one job before the broker dead-letters it (crash loops end here). */
export const DELIVERY_LIMIT = 5;

export const Exchanges = {
  ranges: { name: 'pipeline.ranges', type: 'topic' },
  urls: { name: 'pipeline.urls', type: 'direct' },
  deadLetter: { name: 'pipeline.dead-letter', type: 'fanout' },
} as const satisfies Record<string, ExchangeSpec>;

/**
 * The kind of the three work queues (WORK_QUEUE_TYPE). Quorum, the default: replicated on a
 * cluster, and the broker counts deliveries (x-delivery-count) and dead-letters a job at
 * DELIVERY_LIMIT. Classic: one node's queue, cheaper for the broker at low rates (a job at a
 * time); it counts no deliveries, so the services count redeliveries themselves (a redelivered
 * job is put back with the count in REDELIVERIES_HEADER) and park it at the same limit.
 */
export const WORK_QUEUE_TYPES = ['quorum', 'classic'] as const;
export type WorkQueueType = (typeof WORK_QUEUE_TYPES)[number];

/** Set by a service on a classic work queue's job it put back after a redelivery: deliveries before this one. */
export const REDELIVERIES_HEADER = 'x-pipeline-redeliveries';

const workQueue = (name: string): QueueSpec => ({
  name,
  arguments: {
    'x-queue-type': 'quorum',
    'x-delivery-limit': DELIVERY_LIMIT,
    'x-dead-letter-exchange': Exchanges.deadLetter.name,
  },
});

/**
 * A work queue's spec declared as the given type (the same name, bindings and retry tiers).
 * Quorum: the spec as it is (work queues are quorum queues by default). Classic: its own
 * arguments with the type set to classic and the quorum-only delivery limit left out.
 */
export function withQueueType(work: QueueSpec, type: WorkQueueType): QueueSpec {
  if (type === 'quorum') return work;
  const { 'x-delivery-limit': _limit, ...rest } = work.arguments;
  return { name: work.name, arguments: { ...rest, 'x-queue-type': 'classic' } };
}

export const Queues = {
  primes: workQueue('pipeline.primes'),
  squares: workQueue('pipeline.squares'),
  titles: workQueue('pipeline.titles'),
  dead: { name: 'pipeline.dead', arguments: { 'x-queue-type': 'quorum' } },
} as const satisfies Record<string, QueueSpec>;

/**
 * Retry tiers per work queue. A job that failed for a passing reason waits in
 * `<work queue>.retry.<tier>` for its delay (the message's own expiration; every message in a
 * tier has the same delay, so none waits behind a longer one), then the broker dead-letters
 * it through the default exchange straight back into its work queue.
 */
export const RETRY_TIERS = 3;

export function retryQueueName(workQueue: string, tier: number): string {
  return `${workQueue}.retry.${tier}`;
}

/**
 * A work queue's retry tiers, of the given type. Classic (one node, the default): a tier lives on
 * the node that declared it. Quorum (a cluster): replicated like the work queues, so a retry
 * waiting out its delay survives the loss of a node, and a service can declare its tiers again
 * after reconnecting to another node (a classic tier whose node is down answers 404 to that
 * declaration). Quorum tiers dead-letter at-least-once (which needs overflow reject-publish), so a
 * retry is never dropped on its way back to the work queue; RabbitMQ 3.10 is the first with
 * message TTL on quorum queues.
 */
export function retryQueues(work: QueueSpec, type: WorkQueueType = 'classic'): QueueSpec[] {
  return Array.from({ length: RETRY_TIERS }, (_, i) => ({
    name: retryQueueName(work.name, i + 1),
    arguments: {
      'x-queue-type': type,
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': work.name,
      ...(type === 'quorum' ? { 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' } : {}),
    },
  }));
}

export const RoutingKeys = {
  primes: 'range.primes',
  squares: 'range.squares',
  rangeAll: 'range.all',
  title: 'url.title',
} as const;

export const Bindings: readonly BindingSpec[] = [
  { exchange: Exchanges.ranges.name, queue: Queues.primes.name, routingKey: RoutingKeys.primes },
  { exchange: Exchanges.ranges.name, queue: Queues.squares.name, routingKey: RoutingKeys.squares },
  { exchange: Exchanges.ranges.name, queue: Queues.primes.name, routingKey: RoutingKeys.rangeAll },
  { exchange: Exchanges.ranges.name, queue: Queues.squares.name, routingKey: RoutingKeys.rangeAll },
  { exchange: Exchanges.urls.name, queue: Queues.titles.name, routingKey: RoutingKeys.title },
  { exchange: Exchanges.deadLetter.name, queue: Queues.dead.name, routingKey: '' },
];

export interface Topology {
  exchanges: readonly ExchangeSpec[];
  queues: readonly QueueSpec[];
  bindings: readonly BindingSpec[];
}

const WORK_QUEUES: readonly QueueSpec[] = [Queues.primes, Queues.squares, Queues.titles];

/**
 * The whole topology with the work queues of the given type (quorum: the default) and retry
 * tiers of theirs (classic: the default; quorum on a cluster, see retryQueues).
 */
export function topologyOf(type: WorkQueueType = 'quorum', retryType: WorkQueueType = 'classic'): Topology {
  return {
    exchanges: Object.values(Exchanges),
    queues: [...WORK_QUEUES.map((q) => withQueueType(q, type)), Queues.dead, ...WORK_QUEUES.flatMap((q) => retryQueues(q, retryType))],
    bindings: Bindings,
  };
}

export const topology: Topology = topologyOf('quorum');

/** Prefix of the durable per-batch reply queues. */
export const REPLY_QUEUE_PREFIX = 'pipeline.replies.';

/**
 * Between a producer's user and a batch id in its queue names. Batch ids never hold it
 * (BATCH_ID_PATTERN) and producer user names may not, so no user's pattern reaches another's
 * queues (with a dot, alice's `pipeline.replies.alice.` would cover user `alice.x`'s).
 */
export const OWNER_SEPARATOR = ':';

export function replyQueueName(batch: string): string {
  return `${REPLY_QUEUE_PREFIX}${batch}`;
}

/**
 * The part of the topology one service uses: its source exchange(s) and work queue with its
 * retry tiers and bindings, and the dead-letter exchange and queue. A service declares only
 * this, so its broker user needs configure rights on nothing else.
 */
export function topologyFor(work: QueueSpec, retryType: WorkQueueType = 'classic'): Topology {
  const bindings = topology.bindings.filter((b) => b.queue === work.name || b.queue === Queues.dead.name);
  const exchangeNames = new Set(bindings.map((b) => b.exchange));
  return {
    exchanges: topology.exchanges.filter((e) => exchangeNames.has(e.name)),
    queues: [work, ...retryQueues(work, retryType), Queues.dead],
    bindings,
  };
}

/** configure / write / read permission patterns (regular expressions), as RabbitMQ takes them. */
export interface Permissions {
  configure: string;
  write: string;
  read: string;
}

const quote = (name: string) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const anyOf = (names: readonly string[]) => `^(${names.map(quote).join('|')})$`;

/**
 * The broker permissions of a service's user: exactly what the service does.
 * - configure: declare its exchange, work queue, retry tiers and the dead-letter pair;
 * - write: publish results and retries (the default exchange, `amq.default` to RabbitMQ),
 *   dead-letter refused messages, and bind its queues;
 * - read: consume its work queue, declare its retry tiers (a queue with a dead-letter exchange
 *   takes read on itself), and read the exchanges its queues are bound to.
 * It can neither consume another service's queue nor publish to exchanges it does not use.
 */
export function servicePermissions(work: QueueSpec): Permissions {
  const t = topologyFor(work);
  const queues = t.queues.map((q) => q.name);
  const exchanges = t.exchanges.map((e) => e.name);
  return {
    configure: anyOf([...exchanges, ...queues]),
    write: anyOf(['amq.default', Exchanges.deadLetter.name, ...queues]),
    // Its retry tiers too: declaring a queue with a dead-letter exchange takes read on the queue.
    read: anyOf([work.name, ...retryQueues(work).map((q) => q.name), ...exchanges]),
  };
}

/**
 * The permissions of a producer user: publish jobs to the two job exchanges; declare, consume,
 * bind and delete its own queues (`pipeline.replies.<user>:…`, see ownedQueueId) and its own
 * exchange (`pipeline.producer.<user>`, through which it writes its manifests, checkpoints and
 * spilled copies). It has no right on the default exchange, so it cannot publish into any
 * queue by name: not into another producer's queues, not into work queues. It cannot consume
 * the work queues, nor read, delete or bind another producer's queues.
 */
export function producerPermissionsFor(user: string): Permissions {
  const own = `^${quote(`${REPLY_QUEUE_PREFIX}${checkedProducerUser(user)}${OWNER_SEPARATOR}`)}.+$`;
  const exchange = quote(producerExchangeName(user));
  return {
    configure: `${own}|^${exchange}$`,
    write: `^(${quote(Exchanges.ranges.name)}|${quote(Exchanges.urls.name)}|${exchange})$|${own}`,
    read: `${own}|^${exchange}$`,
  };
}

/** The definitions' `producer` user's permissions. */
export const producerPermissions: Permissions = producerPermissionsFor('producer');

/**
 * A producer's own direct exchange: each of its batch's queues is bound to it under the
 * queue's name, so the producer writes into its own queues without the default exchange.
 */
export function producerExchangeName(user: string): string {
  return `pipeline.producer.${user}`;
}


/** A producer user's name, refused if it holds OWNER_SEPARATOR. */
function checkedProducerUser(user: string): string {
  if (user.includes(OWNER_SEPARATOR)) {
    throw new PipelineError(
      ErrorCodes.CONFIG,
      `a producer's broker user may not contain "${OWNER_SEPARATOR}" ("${user}"): it separates the user from the batch in the names of the producer's queues; use another user name`,
    );
  }
  return user;
}

/**
 * The id a producer user's batch or session queues are named by: `<user>:<batch>`, so the
 * batch's reply queue is `pipeline.replies.<user>:<batch>`, which only that user's permission
 * patterns reach (producerPermissionsFor).
 */
export function ownedQueueId(user: string, batch: string): string {
  return `${checkedProducerUser(user)}${OWNER_SEPARATOR}${batch}`;
}

/** The broker user each role runs as, and its permissions. */
export const Roles = {
  producer: producerPermissions,
  'prime-filter': servicePermissions(Queues.primes),
  'square-mapper': servicePermissions(Queues.squares),
  'title-fetcher': servicePermissions(Queues.titles),
} as const satisfies Record<string, Permissions>;

export type RoleName = keyof typeof Roles;

/**
 * Declares the whole topology; idempotent, so it runs on every (re)connect. A queue that
 * exists with another type (WORK_QUEUE_TYPE changed while it held jobs) is a configuration
 * error (PIPELINE_ERR_CONFIG) saying both types and the way out; the channel is closed by then.
 */
export async function declareTopology(ch: Channel, t: Topology = topology): Promise<void> {
  for (const ex of t.exchanges) await ch.assertExchange(ex.name, ex.type, { durable: true });
  for (const q of t.queues) {
    try {
      await ch.assertQueue(q.name, { durable: true, arguments: q.arguments });
    } catch (err) {
      throw queueTypeMismatch(err, q) ?? err;
    }
  }
  for (const b of t.bindings) await ch.bindQueue(b.queue, b.exchange, b.routingKey);
}

/** The broker's 406 for a queue declared with another x-queue-type, as a clear error; else undefined. */
function queueTypeMismatch(err: unknown, q: QueueSpec): PipelineError | undefined {
  const e = err as { code?: number; message?: string };
  const m = /inequivalent arg 'x-queue-type'.*received '?(\w+)'? but current is '?(\w+)'?/.exec(e.message ?? '');
  if (e.code !== 406 || !m) return undefined;
  const wanted = String(q.arguments['x-queue-type']);
  // Retry tiers follow REPLY_QUEUE_TYPE (quorum when AMQP_URL names several nodes); work queues WORK_QUEUE_TYPE.
  const setting = q.name.includes('.retry.') ? 'REPLY_QUEUE_TYPE' : 'WORK_QUEUE_TYPE';
  return new PipelineError(
    ErrorCodes.CONFIG,
    `queue "${q.name}" already exists as a ${m[2] ?? 'different'} queue, but this process declares it as ${wanted} (${setting}=${wanted}). ` +
      `Give every producer and service the same ${setting} (and the same AMQP_URL node list), or, to change the type, stop the services, let the queue drain ` +
      `and delete it (rabbitmqctl delete_queue ${q.name}); the next start declares it anew.`,
    { cause: err, details: { queue: q.name, declared: wanted, existing: m[2] } },
  );
}

/**
 * Where a batch's manifest lives: a queue that keeps only its newest message
 * (x-max-length 1), so writing a new manifest replaces the old one in one step.
 */
export function manifestQueueName(batch: string): string {
  return `${REPLY_QUEUE_PREFIX}${batch}.manifest`;
}

/**
 * Where a batch's output checkpoints live (also keep-newest). Declared with the batch's other
 * queues (declareReplyQueues); `collect` declares it too, for a batch from before that.
 */
export function progressQueueName(batch: string): string {
  return `${REPLY_QUEUE_PREFIX}${batch}.progress`;
}

/**
 * Why a job's `reply_to` may not be answered into, or undefined when it may. The `pipeline.`
 * names are the pipeline's own: among them only a batch's or session's reply queue
 * (`pipeline.replies.<id>`) takes results; work, retry and dead-letter queues, and a batch's
 * manifest and progress queues, never do. Other names are a foreign client's own reply
 * queues (server-named `amq.gen-...`, direct reply-to, or its own durable queue).
 */
export function replyToProblem(replyTo: string): string | undefined {
  if (!replyTo.startsWith('pipeline.')) return undefined;
  const id = replyTo.startsWith(REPLY_QUEUE_PREFIX) ? replyTo.slice(REPLY_QUEUE_PREFIX.length) : '';
  if (id !== '' && !id.endsWith('.manifest') && !id.endsWith('.progress')) return undefined;
  return `reply_to "${replyTo}" is not a reply queue (only ${REPLY_QUEUE_PREFIX}<batch> among the pipeline's queues, or a queue of the client's own); the job is not answered there`;
}

/**
 * Declares a batch's progress queue (and, given the producer's exchange, binds it there
 * under its name: the producer's checkpoints go through that exchange).
 */
export async function declareProgressQueue(ch: Channel, batch: string, ttlMs: number, type: WorkQueueType = 'classic', exchange?: string): Promise<string> {
  const name = progressQueueName(batch);
  const declared = ch.assertQueue(name, {
    durable: true,
    arguments: { 'x-queue-type': type, 'x-expires': ttlMs, 'x-max-length': 1 },
  });
  const bound = exchange ? ch.bindQueue(name, exchange, name) : undefined;
  // Both awaited together: if the declaration fails, the binding's failure is handled too.
  await Promise.all([declared, bound]);
  return name;
}

/** Declares a producer's own exchange (idempotent; durable, so it outlives the producer). */
export function declareProducerExchange(ch: Channel, exchange: string): Promise<unknown> {
  return ch.assertExchange(exchange, 'direct', { durable: true });
}

/**
 * Declares a batch's reply, manifest and progress queues: durable, so results outlive the
 * producer (and a broker restart); all expire when unused for `ttlMs`. `quorum` (on a
 * cluster) replicates them, so they also outlive the loss of a node.
 */
export async function declareReplyQueue(ch: Channel, batch: string, ttlMs: number, type: WorkQueueType = 'classic', exchange?: string): Promise<string> {
  const { reply, manifest, progress } = declareReplyQueues(ch, batch, ttlMs, type, exchange);
  await Promise.all([reply, manifest, progress]);
  return replyQueueName(batch);
}

/**
 * The same, the three declarations sent at once: the promises settle with the broker's
 * answers, and meanwhile more commands (the jobs' publishes) can follow on the same channel,
 * which the broker handles in order. All of a batch's queues are made here, before its first
 * job: none is declared mid-batch, when a broker node may be cut off (RabbitMQ 3.10 answered a
 * quorum queue declared during a partition with declare-ok, and the queue never got a leader).
 */
export function declareReplyQueues(
  ch: Channel,
  batch: string,
  ttlMs: number,
  type: WorkQueueType = 'classic',
  /** The producer's exchange (producerExchangeName): declared, and each queue bound to it under its name. */
  exchange?: string,
): { reply: Promise<unknown>; manifest: Promise<unknown>; progress: Promise<unknown> } {
  const bind = (queue: string) => (exchange ? ch.bindQueue(queue, exchange, queue) : undefined);
  const replyName = replyQueueName(batch);
  const manifestName = manifestQueueName(batch);
  // The reply queue first: the jobs wait for it alone. The exchange and the bindings after the
  // three queues: a channel's RPCs go one at a time, and a quorum queue whose declaration is cut
  // off by its node's death may never get a leader on RabbitMQ 3.10, so the queues are
  // declared as early as they can be (with the exchange declared before the progress queue,
  // fault row c1 once killed the node 0.6 s into a batch and every checkpoint was refused).
  const reply = ch.assertQueue(replyName, {
    durable: true,
    arguments: { 'x-queue-type': type, 'x-expires': ttlMs },
  });
  const manifest = ch.assertQueue(manifestName, {
    durable: true,
    arguments: { 'x-queue-type': type, 'x-expires': ttlMs, 'x-max-length': 1 },
  });
  const progressName = progressQueueName(batch);
  const progressDeclared = ch.assertQueue(progressName, {
    durable: true,
    arguments: { 'x-queue-type': type, 'x-expires': ttlMs, 'x-max-length': 1 },
  });
  const ready = exchange ? declareProducerExchange(ch, exchange) : undefined;
  // Sent in this order on one channel, so the broker has the exchange and each queue before its binding.
  const bound = [bind(replyName), bind(manifestName), bind(progressName)];
  const all = async <T>(...ps: (Promise<unknown> | undefined)[]) => {
    const settled = await Promise.allSettled(ps);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return undefined as T;
  };
  // The jobs wait only for the reply queue itself: the producer's own writes (the manifest, a
  // checkpoint, a spill) come later on this channel, after the bindings, which the manifest's
  // promise stands for.
  return { reply: all(reply), manifest: all(ready, manifest, bound[0], bound[1]), progress: all(ready, progressDeclared, bound[2]) };
}
