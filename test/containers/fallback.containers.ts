/**
 * The integration tests' last resort, for real: with PIPELINE_TEST_BROKER=testcontainers,
 * test/broker.ts starts rabbitmq:3-management through testcontainers (never touching AMQP_URL
 * or the local broker), a client can use it, and stopping it removes the container.
 * (On a machine without Docker's ryuk image: TESTCONTAINERS_RYUK_DISABLED=true, as
 * containers.sh prints.)
 */
import amqp from 'amqplib';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_AMQP_URL, resolveBroker, type ResolvedBroker } from '../broker.js';
import { engineConfigured, log, runOk } from './engine.js';

async function testcontainersIds(): Promise<string[]> {
  const r = await runOk('docker', ['ps', '-a', '-q', '--no-trunc', '--filter', 'label=org.testcontainers=true'], { timeoutMs: 30_000 });
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}

describe('test/broker.ts: the testcontainers fallback', () => {
  let broker: ResolvedBroker | undefined;
  const saved = { forced: process.env.PIPELINE_TEST_BROKER, url: process.env.AMQP_URL };

  afterAll(async () => {
    await broker?.stop?.().catch((err: unknown) => log(`stopping the broker container failed: ${String(err)}`));
    for (const [k, v] of [['PIPELINE_TEST_BROKER', saved.forced], ['AMQP_URL', saved.url]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }, 120_000);

  it('when the fallback is forced, then resolveBroker starts a RabbitMQ container that a client can use, and stop removes it', async () => {
    if (!engineConfigured()) throw new Error('no Docker-compatible engine (DOCKER_HOST unset, no /var/run/docker.sock)');
    const before = new Set(await testcontainersIds());
    process.env.PIPELINE_TEST_BROKER = 'testcontainers';
    // Would be used first without the override: it must not even be contacted.
    process.env.AMQP_URL = DEFAULT_AMQP_URL;

    const started = Date.now();
    broker = await resolveBroker();
    log(`testcontainers: RabbitMQ container up in ${((Date.now() - started) / 1000).toFixed(1)} s at ${broker.url}`);
    expect(broker.source).toBe('testcontainers');
    expect(new URL(broker.url).port).not.toBe('5672');
    const mine = (await testcontainersIds()).filter((id) => !before.has(id));
    expect(mine).toHaveLength(1);

    const conn = await amqp.connect(broker.url, { timeout: 10_000 });
    try {
      const ch = await conn.createChannel();
      const { queue } = await ch.assertQueue('', { exclusive: true });
      ch.sendToQueue(queue, Buffer.from('ping'));
      const msg = await (async () => {
        for (let i = 0; i < 50; i++) {
          const m = await ch.get(queue, { noAck: true });
          if (m) return m;
          await new Promise((r) => setTimeout(r, 100));
        }
        return false as const;
      })();
      expect(msg && msg.content.toString()).toBe('ping');
    } finally {
      await conn.close().catch(() => {});
    }

    const stopping = broker;
    broker = undefined;
    await stopping.stop?.();
    const left = new Set(await testcontainersIds());
    expect(mine.filter((id) => left.has(id))).toEqual([]);
  }, 180_000);
});
