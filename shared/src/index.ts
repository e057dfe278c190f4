// Everything a client needs (shared/src/client.ts, also `@amqp-pipeline/shared/client`), and
// what only services use: the consumer loop, metrics, the health server.
export * from './client.js';
export { ServiceMetrics, type JobOutcome } from './metrics.js';
export { startHealthServer, type HealthServer, type HealthServerOptions } from './health.js';
export {
  runConsumer,
  shutdownSignal,
  listOutput,
  type ListOutput,
  DeadLetterHeaders,
  RetryHeaders,
  type ServiceDefinition,
  type JobContext,
  type ConsumerOptions,
  type RunningConsumer,
} from './consumer.js';
export { serviceMain } from './service.js';
