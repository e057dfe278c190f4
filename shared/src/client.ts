/**
 * `@amqp-pipeline/shared/client`: what a client of the pipeline needs (config, logging,
 * errors, topology, the broker connection and publisher, the message schemas), without what
 * only services use (the consumer loop, metrics, the health server), so that the `pipeline`
 * CLI does not load prom-client and the rest at each start. The same objects as the main
 * entry (`@amqp-pipeline/shared`), which still exports everything.
 */
export {
  loadConfig,
  redactUrl,
  configKeys,
  brokerUrls,
  replyQueueType,
  brokerUser,
  userOfUrl,
  serviceUsers,
  parseServiceUsers,
  ROLE_SERVICE_USERS,
  SERVICE_KINDS,
  type ServiceKind,
  type ServiceUsers,
  type Config,
} from './config.js';
export { createLogger, type Logger, type LoggerConfig } from './log.js';
export { ErrorCodes, PipelineError, isPipelineError, toWireError, type ErrorCode, type PipelineErrorOptions } from './errors.js';
export {
  topology,
  Exchanges,
  Queues,
  Bindings,
  RoutingKeys,
  DELIVERY_LIMIT,
  RETRY_TIERS,
  retryQueueName,
  REPLY_QUEUE_PREFIX,
  replyQueueName,
  manifestQueueName,
  progressQueueName,
  replyToProblem,
  declareProgressQueue,
  declareTopology,
  declareReplyQueue,
  declareReplyQueues,
  topologyFor,
  retryQueues,
  topologyOf,
  withQueueType,
  WORK_QUEUE_TYPES,
  REDELIVERIES_HEADER,
  type WorkQueueType,
  servicePermissions,
  producerPermissions,
  producerPermissionsFor,
  producerExchangeName,
  ownedQueueId,
  declareProducerExchange,
  Roles,
  type RoleName,
  type Permissions,
  type Topology,
  type ExchangeSpec,
  type QueueSpec,
  type BindingSpec,
} from './topology.js';
export { connectBroker, connectionNameFor, brokerHelp, tlsFiles, type BrokerOptions } from './broker.js';
export { Publisher, type PublisherOptions } from './publisher.js';
export { AckBatcher } from './acks.js';
export { within } from './within.js';
export { RangeJobSchema, RangeRoutes, rangeEcho, rangeWidth, assertRangeWidth, type RangeLimits, RANGE_JOB_TYPE, RANGE_JOB_VERSION, type RangeJob } from './messages/range-job.js';
export { BundleSchema, ResultsBundleSchema, RANGE_BUNDLE_TYPE, URL_BUNDLE_TYPE, RESULTS_BUNDLE_TYPE, MAX_BUNDLE_JOBS, MAX_BUNDLE_NUMBERS, MAX_URL_BUNDLE_JOBS, BUNDLED_JOB_TYPES, isBundleType, type Bundle } from './messages/bundle.js';
export { UrlJobSchema, URL_JOB_TYPE, URL_JOB_VERSION, URL_JOB_ROUTING_KEY, MAX_URL_LENGTH, type UrlJob } from './messages/url-job.js';
export {
  ResultSchema,
  JobEcho,
  ResultKinds,
  SquareValue,
  RangeSummary,
  PartInfo,
  RESULT_TYPE,
  RESULT_VERSION,
  type Result,
  type ResultKind,
  type SuccessResult,
  type FailureResult,
} from './messages/result.js';
export { ManifestSchema, OutputMode, MANIFEST_TYPE, ProgressSchema, PROGRESS_TYPE, TotalsSchema, type Manifest, type Progress, type Totals } from './messages/manifest.js';
export { EXIT_CONFIG } from './service.js';
export { brokerDefinitions, defaultUsers, rabbitPasswordHash, type UserSpec } from './definitions.js';
export {
  tracing,
  tracingRequested,
  startTracing,
  stopTracing,
  flushTracing,
  publishSpan,
  processSpan,
  settleSpan,
  endSpan,
  inSpan,
  Attr as TraceAttributes,
  type Tracing,
  type TracingRequest,
  type TraceSpan,
} from './tracing.js';
