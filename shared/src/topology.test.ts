import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { DELIVERY_LIMIT, Queues, ownedQueueId, producerExchangeName, producerPermissionsFor, replyQueueName, replyToProblem, retryQueueName, topology, topologyFor, topologyOf, withQueueType } from './topology.js';
import { replyQueueType } from './config.js';

const workNames = [Queues.primes.name, Queues.squares.name, Queues.titles.name];

describe('work queue type', () => {
  it('when nothing is set, then the work queues are quorum queues with the delivery limit', () => {
    expect(loadConfig({}).WORK_QUEUE_TYPE).toBe('quorum');
    expect(topologyOf()).toEqual(topology);
    for (const q of topology.queues.filter((q) => workNames.includes(q.name))) {
      expect(q.arguments).toMatchObject({ 'x-queue-type': 'quorum', 'x-delivery-limit': DELIVERY_LIMIT, 'x-dead-letter-exchange': 'pipeline.dead-letter' });
    }
  });

  it('when classic is asked for, then only the three work queues change: classic, dead-lettering, no delivery limit', () => {
    const classic = topologyOf('classic');
    expect(classic.exchanges).toEqual(topology.exchanges);
    expect(classic.bindings).toEqual(topology.bindings);
    expect(classic.queues.map((q) => q.name)).toEqual(topology.queues.map((q) => q.name));
    for (const q of classic.queues) {
      const before = topology.queues.find((t) => t.name === q.name)!;
      if (workNames.includes(q.name)) {
        expect(q.arguments).toEqual({ 'x-queue-type': 'classic', 'x-dead-letter-exchange': 'pipeline.dead-letter' });
        expect(q.arguments['x-queue-type']).toBe('classic');
      } else {
        expect(q.arguments, q.name).toEqual(before.arguments);
      }
    }
  });

  it('when a service narrows the topology to its queue, then its queue keeps the type and its retry tiers stay the same', () => {
    const t = topologyFor(withQueueType(Queues.primes, 'classic'));
    expect(t.queues[0]).toEqual({ name: 'pipeline.primes', arguments: { 'x-queue-type': 'classic', 'x-dead-letter-exchange': 'pipeline.dead-letter' } });
    expect(t.queues.map((q) => q.name)).toEqual(topologyFor(Queues.primes).queues.map((q) => q.name));
  });

  it('when the broker is a cluster, then the retry tiers are quorum queues that dead-letter at-least-once; on one node they stay classic', () => {
    const retryNames = [1, 2, 3].map((t) => retryQueueName(Queues.primes.name, t));
    const tiers = (t: ReturnType<typeof topologyFor>) => t.queues.filter((q) => retryNames.includes(q.name));
    const one = replyQueueType(loadConfig({ AMQP_URL: 'amqp://n1' }));
    const three = replyQueueType(loadConfig({ AMQP_URL: 'amqp://n1,amqp://n2,amqp://n3' }));
    expect(tiers(topologyFor(Queues.primes, one)).map((q) => q.arguments)).toEqual(
      retryNames.map(() => ({ 'x-queue-type': 'classic', 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': 'pipeline.primes' })),
    );
    const quorum = tiers(topologyFor(Queues.primes, three));
    expect(quorum.map((q) => q.name)).toEqual(retryNames);
    for (const q of quorum) {
      expect(q.arguments).toEqual({
        'x-queue-type': 'quorum',
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': 'pipeline.primes',
        'x-dead-letter-strategy': 'at-least-once',
        'x-overflow': 'reject-publish',
      });
    }
    // The whole topology (what the producer and `pipeline topology` declare) agrees with the service's part.
    expect(topologyOf('quorum', three).queues.filter((q) => retryNames.includes(q.name))).toEqual(quorum);
  });

  it('when WORK_QUEUE_TYPE is neither, then the configuration error names the choices', () => {
    expect(() => loadConfig({ WORK_QUEUE_TYPE: 'stream' })).toThrow(/WORK_QUEUE_TYPE: must be quorum or classic/);
    expect(loadConfig({ WORK_QUEUE_TYPE: 'classic' }).WORK_QUEUE_TYPE).toBe('classic');
  });
});

describe('replyToProblem: which reply_to a service answers into', () => {
  it('when reply_to is a batch reply queue or a queue of the client\'s own, then it may be answered; a pipeline queue that is not a reply queue may not', () => {
    for (const ok of ['pipeline.replies.20261207T080000Z-1a2b3c4d', 'amq.gen-Jx3', 'amq.rabbitmq.reply-to.g1h2', 'my-client-replies']) expect(replyToProblem(ok)).toBeUndefined();
    for (const bad of ['pipeline.primes', 'pipeline.dead', 'pipeline.squares.retry.1', 'pipeline.replies.B.manifest', 'pipeline.replies.B.progress', 'pipeline.replies.']) {
      expect(replyToProblem(bad)).toMatch(/is not a reply queue/);
    }
  });
});

describe('producer users reach only their own queues', () => {
  const alice = producerPermissionsFor('alice');
  const can = (pattern: string, name: string) => new RegExp(pattern).test(name);
  const aliceQ = replyQueueName(ownedQueueId('alice', '20261207T1000Z-ab'));
  const bobQ = replyQueueName(ownedQueueId('bob', '20261207T1000Z-ab'));

  it('when alice names her batch, session and their siblings, then her patterns cover them and bob\'s do not', () => {
    expect(aliceQ).toBe('pipeline.replies.alice:20261207T1000Z-ab');
    for (const q of [aliceQ, `${aliceQ}.manifest`, `${aliceQ}.progress`, replyQueueName(ownedQueueId('alice', 'session-x'))]) {
      for (const right of ['configure', 'write', 'read'] as const) expect(can(alice[right], q), `${right} ${q}`).toBe(true);
      for (const right of ['configure', 'write', 'read'] as const) expect(can(producerPermissionsFor('bob')[right], q), `bob ${right} ${q}`).toBe(false);
    }
    expect(replyToProblem(aliceQ)).toBeUndefined();
    expect(replyToProblem(`${aliceQ}.manifest`)).toMatch(/not a reply queue/);
  });

  it('when alice would write, then only the job exchanges and her own exchange are open to her: not the default exchange, not bob\'s', () => {
    for (const ex of ['pipeline.ranges', 'pipeline.urls', producerExchangeName('alice')]) expect(can(alice.write, ex), ex).toBe(true);
    for (const ex of ['amq.default', 'pipeline.dead-letter', producerExchangeName('bob'), 'pipeline.primes']) expect(can(alice.write, ex), ex).toBe(false);
    for (const q of [bobQ, `${bobQ}.manifest`, 'pipeline.replies.alicex:1', 'pipeline.replies.alice.x:1', 'pipeline.primes']) expect(can(alice.read, q) || can(alice.configure, q), q).toBe(false);
  });

  it('when user names hold dots, then no user reaches another\'s queues, and a colon in a producer user is refused', () => {
    // With a dot as the separator alice's pattern covered user alice.x's queues; the colon cannot be in either.
    expect(can(alice.read, replyQueueName(ownedQueueId('alice.x', 'B')))).toBe(false);
    expect(can(producerPermissionsFor('alice.x').read, replyQueueName(ownedQueueId('alice', 'x.B')))).toBe(false);
    expect(() => ownedQueueId('a:b', 'B')).toThrow(/may not contain ":"/);
    expect(() => producerPermissionsFor('a:b')).toThrow(/may not contain ":"/);
  });

  it('when a user name holds regex characters, then they are quoted (a dot is only a dot)', () => {
    const p = producerPermissionsFor('a.b');
    expect(can(p.read, 'pipeline.replies.a.b:1')).toBe(true);
    expect(can(p.read, 'pipeline.replies.aXb:1')).toBe(false);
  });
});
