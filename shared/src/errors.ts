/**
 * Every error the pipeline raises or puts on the wire carries a stable code.
 * Callers branch on `err.code`, never on message text.
 */
export const ErrorCodes = {
  /** The configuration (environment) is invalid. */
  CONFIG: 'PIPELINE_ERR_CONFIG',
  /** The broker cannot be reached or refused the connection. */
  BROKER_UNREACHABLE: 'PIPELINE_ERR_BROKER_UNREACHABLE',
  /** A message is not JSON, fails its schema, or lacks required properties. */
  INVALID_MESSAGE: 'PIPELINE_ERR_INVALID_MESSAGE',
  /** A job's reply_to names a queue that is not a reply queue (a work, dead-letter or manifest queue...). */
  INVALID_REPLY_TO: 'PIPELINE_ERR_INVALID_REPLY_TO',
  /** A message body is larger than the configured limit. */
  MESSAGE_TOO_LARGE: 'PIPELINE_ERR_MESSAGE_TOO_LARGE',
  /** A job is well formed but asks for more than the service allows (e.g. too wide a range). */
  LIMIT_EXCEEDED: 'PIPELINE_ERR_LIMIT_EXCEEDED',
  /** A publish was returned by the broker: no queue is bound for its routing key. */
  UNROUTABLE: 'PIPELINE_ERR_UNROUTABLE',
  /** The broker negatively acknowledged a publish. */
  NACKED: 'PIPELINE_ERR_NACKED',
  /** The channel closed before a publish was confirmed. */
  CHANNEL_CLOSED: 'PIPELINE_ERR_CHANNEL_CLOSED',
  /** No reply queue exists for the batch asked for. */
  BATCH_NOT_FOUND: 'PIPELINE_ERR_BATCH_NOT_FOUND',
  /** Waiting for results took longer than the caller allowed. */
  TIMEOUT: 'PIPELINE_ERR_TIMEOUT',
  /** A URL job's URL is not an absolute http(s) URL. */
  INVALID_URL: 'PIPELINE_ERR_INVALID_URL',
  /** The URL (or a redirect) points at an address or host the fetcher refuses (SSRF protection). */
  BLOCKED_ADDRESS: 'PIPELINE_ERR_BLOCKED_ADDRESS',
  /** The page could not be fetched within its time limit. */
  FETCH_TIMEOUT: 'PIPELINE_ERR_FETCH_TIMEOUT',
  /** The connection to the page's server failed or was reset. */
  FETCH_FAILED: 'PIPELINE_ERR_FETCH_FAILED',
  /**
   * The page's host name does not exist: DNS answered that there is no such name, or no
   * address for it (getaddrinfo's ENOTFOUND). Not retried; a temporary resolver failure
   * (EAI_AGAIN) is FETCH_FAILED and retried.
   */
  DNS_NOT_FOUND: 'PIPELINE_ERR_DNS_NOT_FOUND',
  /** The server answered with an HTTP error status. */
  HTTP_STATUS: 'PIPELINE_ERR_HTTP_STATUS',
  /** The response is not an HTML document. */
  NOT_HTML: 'PIPELINE_ERR_NOT_HTML',
  /** The document has no title within the bytes read. */
  NO_TITLE: 'PIPELINE_ERR_NO_TITLE',
  /** A job kept killing the service that handled it; it is not run again. */
  POISON_MESSAGE: 'PIPELINE_ERR_POISON_MESSAGE',
  /** A handler failed in a way nobody planned for. */
  INTERNAL: 'PIPELINE_ERR_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface PipelineErrorOptions {
  cause?: unknown;
  /**
   * Whether trying the same job again may succeed (a timeout, a reset connection).
   * @defaultValue false
   */
  retryable?: boolean;
  /** Structured facts for logs and error results (limits, URLs, sizes). */
  details?: Record<string, unknown>;
}

export class PipelineError extends Error {
  override readonly name = 'PipelineError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: PipelineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }
}

export function isPipelineError(err: unknown): err is PipelineError {
  return err instanceof PipelineError;
}

/** The `{code, message}` pair that goes into an `ok: false` result. */
export function toWireError(err: unknown): { code: string; message: string } {
  if (isPipelineError(err)) return { code: err.code, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: ErrorCodes.INTERNAL, message };
}
