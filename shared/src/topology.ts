import type { Channel } from 'amqplib';

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

const workQueue = (name: string): QueueSpec => ({
  name,
  arguments: {
    'x-queue-type': 'quorum',
    'x-delivery-limit': DELIVERY_LIMIT,
    'x-dead-letter-exchange': Exchanges.deadLetter.name,
  },
});

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

const retryQueues = (work: QueueSpec): QueueSpec[] =>
  Array.from({ length: RETRY_TIERS }, (_, i) => ({
    name: retryQueueName(work.name, i + 1),
    arguments: { 'x-queue-type': 'classic', 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': work.name },
  }));

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

export const topology: Topology = {
  exchanges: Object.values(Exchanges),
  queues: [...Object.values(Queues), ...[Queues.primes, Queues.squares, Queues.titles].flatMap(retryQueues)],
  bindings: Bindings,
};

/** Prefix of the durable per-batch reply queues. */
export const REPLY_QUEUE_PREFIX = 'pipeline.replies.';

export function replyQueueName(batch: string): string {
  return `${REPLY_QUEUE_PREFIX}${batch}`;
}

/** Declares the whole topology; idempotent, so it runs on every (re)connect. */
export async function declareTopology(ch: Channel, t: Topology = topology): Promise<void> {
  for (const ex of t.exchanges) await ch.assertExchange(ex.name, ex.type, { durable: true });
  for (const q of t.queues) await ch.assertQueue(q.name, { durable: true, arguments: q.arguments });
  for (const b of t.bindings) await ch.bindQueue(b.queue, b.exchange, b.routingKey);
}

/** Declares a batch's reply queue: durable, so results outlive the producer; expires when unused. */
export async function declareReplyQueue(ch: Channel, batch: string, ttlMs: number): Promise<string> {
  const name = replyQueueName(batch);
  await ch.assertQueue(name, {
    durable: true,
    arguments: { 'x-queue-type': 'classic', 'x-expires': ttlMs },
  });
  return name;
}
