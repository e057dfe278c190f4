import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { DELIVERY_LIMIT, Queues, topology, topologyFor, topologyOf, withQueueType } from './topology.js';

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

  it('when WORK_QUEUE_TYPE is neither, then the configuration error names the choices', () => {
    expect(() => loadConfig({ WORK_QUEUE_TYPE: 'stream' })).toThrow(/WORK_QUEUE_TYPE: must be quorum or classic/);
    expect(loadConfig({ WORK_QUEUE_TYPE: 'classic' }).WORK_QUEUE_TYPE).toBe('classic');
  });
});
