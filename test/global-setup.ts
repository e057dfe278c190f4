import type { TestProject } from 'vitest/node';
import { resolveBroker } from './broker.js';

declare module 'vitest' {
  export interface ProvidedContext {
    amqpUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const broker = await resolveBroker();
  process.stderr.write(`integration tests: RabbitMQ from ${broker.source}\n`);
  project.provide('amqpUrl', broker.url);
  return async () => {
    await broker.stop?.();
  };
}
