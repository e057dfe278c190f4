import { existsSync } from 'node:fs';
import amqp from 'amqplib';
import { brokerHelp, redactUrl } from '@amqp-pipeline/shared';

export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

/** True if a broker answers at `url` within `timeoutMs`. */
export async function brokerReachable(url: string, timeoutMs = 3000): Promise<boolean> {
  try {
    const conn = await amqp.connect(url, { timeout: timeoutMs });
    await conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Whether a Docker-compatible engine is available for testcontainers. */
export function dockerAvailable(): boolean {
  return Boolean(process.env.DOCKER_HOST) || existsSync('/var/run/docker.sock');
}

export interface ResolvedBroker {
  url: string;
  source: 'AMQP_URL' | 'local' | 'testcontainers';
  stop?: () => Promise<void>;
}

/**
 * The broker the integration tests use: AMQP_URL if set and reachable, else the local
 * broker, else a RabbitMQ container started with testcontainers (if a Docker engine exists).
 * Otherwise fails with one message naming what was tried and how to get a broker.
 * PIPELINE_TEST_BROKER=testcontainers skips the first two (AMQP_URL and the local broker are
 * never contacted) and always starts the container: the way to exercise that path on a machine
 * that has a broker.
 */
export async function resolveBroker(): Promise<ResolvedBroker> {
  const tried: string[] = [];
  const fromEnv = process.env.AMQP_URL;
  const forced = process.env.PIPELINE_TEST_BROKER;
  if (forced && forced !== 'testcontainers') {
    throw new Error(`PIPELINE_TEST_BROKER=${forced} is not understood: set it to "testcontainers" or leave it unset`);
  }
  if (forced === 'testcontainers') {
    tried.push('PIPELINE_TEST_BROKER=testcontainers (AMQP_URL and the local broker skipped)');
  } else if (fromEnv) {
    if (await brokerReachable(fromEnv)) return { url: fromEnv, source: 'AMQP_URL' };
    tried.push(`AMQP_URL=${redactUrl(fromEnv)}`);
  }
  if (!forced && fromEnv !== DEFAULT_AMQP_URL) {
    if (await brokerReachable(DEFAULT_AMQP_URL)) return { url: DEFAULT_AMQP_URL, source: 'local' };
    tried.push(redactUrl(DEFAULT_AMQP_URL));
  }
  if (dockerAvailable()) {
    const { RabbitMQContainer } = await import('@testcontainers/rabbitmq');
    const container = await new RabbitMQContainer(process.env.RABBITMQ_IMAGE ?? 'rabbitmq:3-management').start();
    return { url: container.getAmqpUrl(), source: 'testcontainers', stop: async () => void (await container.stop()) };
  }
  throw new Error(
    `integration tests need RabbitMQ; tried ${tried.join(', ')} and found no Docker engine for testcontainers.\n${brokerHelp(fromEnv ?? DEFAULT_AMQP_URL)}`,
  );
}
