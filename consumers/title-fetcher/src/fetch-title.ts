/**
 * Fetching a web page and reading its title.
 *
 * The page is requested with undici's `request` and read as a stream: decompressed
 * (gzip, deflate, brotli), decoded to text (see ./charset.ts) and fed to a streaming title
 * extractor, stopping as soon as the `<title>` is complete or `maxBytes` decompressed
 * bytes have been read. One deadline covers the whole job, redirects included.
 *
 * Every failure is a PipelineError whose `retryable` flag says whether the same job may
 * succeed later (timeouts, connection failures, 429 and 5xx) or never will (bad URL,
 * 404, not HTML, no title, blocked address).
 *
 * This function has no opinion about which addresses may be fetched or how many requests
 * a host may receive: that is the business of the dispatcher and the `admit` hook it is
 * given. ./title-fetcher.ts puts them together (SSRF protection, per-host limits); the
 * service uses that, not this function directly.
 */
import { pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import { constants as zlib, createBrotliDecompress, createUnzip } from 'node:zlib';
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import { ErrorCodes, PipelineError } from '@amqp-pipeline/shared';
import { BLOCKED_ADDRESS, BlockedAddressError } from './address-policy.js';
import { BodyDecoder, charsetFromContentType } from './charset.js';
import { TitleExtractor } from './extract-title.js';

export interface FetchTitleOptions {
  /** Deadline for the whole job (connect, headers and body of every hop), in ms. */
  timeoutMs: number;
  /** Most decompressed body bytes read before giving up on finding a title. */
  maxBytes: number;
  /** Most redirects followed; each target is validated like the original URL. */
  maxRedirects: number;
  /** Aborts the fetch from outside (service shutdown). */
  signal?: AbortSignal;
  /** The undici dispatcher to use (connection pooling, tests); the global one by default. */
  dispatcher?: Dispatcher;
  /** The User-Agent header; {@link DEFAULT_USER_AGENT} by default. */
  userAgent?: string;
  /**
   * Called before every request (the first URL, then each redirect target) with that URL
   * and the job's abort signal (deadline or caller). It may throw to refuse the URL, or
   * wait (for a per-host slot); it resolves with a function that is called once that
   * request's response has been dealt with. The time spent in it counts against the deadline.
   */
  admit?: (url: URL, signal: AbortSignal) => Promise<() => void>;
}

export interface FetchedTitle {
  title: string;
  source: 'title' | 'og:title';
  /** The URL the title was read from, after redirects. */
  url: string;
}

export const DEFAULT_USER_AGENT = 'amqp-pipeline-title-fetcher/0.1 (+https://github.com/amqp-pipeline)';

const ACCEPT = 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.1';
const ACCEPT_ENCODING = 'gzip, deflate, br';
/** Bytes decoded and parsed at a time (network chunks can be 64 KB and more). */
const FEED_BYTES = 4096;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const HTML_MEDIA_TYPES = new Set(['text/html', 'application/xhtml+xml']);
/** undici error codes that mean a time limit was hit. */
const UNDICI_TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/**
 * Fetches `url` and returns its title and final URL.
 *
 * @throws PipelineError with code INVALID_URL, FETCH_TIMEOUT, FETCH_FAILED, HTTP_STATUS,
 *   NOT_HTML, NO_TITLE or PIPELINE_ERR_BLOCKED_ADDRESS (from the dispatcher or `admit`).
 */
export async function fetchTitle(url: string, opts: FetchTitleOptions): Promise<FetchedTitle> {
  checkFetchOptions(opts);
  let current = parseHttpUrl(url);
  const deadline = new Deadline(opts.timeoutMs, opts.signal);
  const chain: string[] = [current.href];
  const visited = new Set([withoutHash(current)]);

  try {
    for (;;) {
      // One admission per hop: a redirect to another host waits for that host's turn.
      const release = opts.admit ? await opts.admit(current, deadline.signal) : undefined;
      try {
        const response = await send(current, opts, deadline);
        const { statusCode, headers, body } = response;

        if (statusCode < 200 || statusCode > 299) {
          discard(body);
          const location = header(headers, 'location');
          if (!REDIRECT_STATUSES.has(statusCode) || location === undefined) {
            throw statusError(statusCode, current, headers);
          }
          current = nextHop(current, location, chain, visited, opts.maxRedirects);
          continue;
        }

        const contentType = header(headers, 'content-type');
        if (!isHtml(contentType)) {
          discard(body);
          throw new PipelineError(
            ErrorCodes.NOT_HTML,
            `${current.href} is not an HTML page (content-type ${contentType})`,
            { details: { url: current.href, contentType } },
          );
        }

        const found = await readTitle(body, headers, current, opts.maxBytes);
        return { ...found, url: current.href };
      } finally {
        release?.();
      }
    }
  } catch (err) {
    throw asPipelineError(err, deadline, current, opts);
  } finally {
    deadline.dispose();
  }
}

/** Throws a RangeError if the limits in `opts` are out of range. */
export function checkFetchOptions(opts: Pick<FetchTitleOptions, 'timeoutMs' | 'maxBytes' | 'maxRedirects'>): void {
  const positive = (n: number): boolean => Number.isFinite(n) && n > 0;
  // setTimeout cannot wait longer than 2^31 - 1 ms (about 24.8 days).
  if (!positive(opts.timeoutMs) || opts.timeoutMs > 2 ** 31 - 1) {
    throw new RangeError(`timeoutMs must be > 0 and < 2^31, got ${opts.timeoutMs}`);
  }
  if (!positive(opts.maxBytes)) throw new RangeError(`maxBytes must be > 0, got ${opts.maxBytes}`);
  if (!Number.isInteger(opts.maxRedirects) || opts.maxRedirects < 0) {
    throw new RangeError(`maxRedirects must be an integer >= 0, got ${opts.maxRedirects}`);
  }
}

// ---------------------------------------------------------------------------------------
// URLs and redirects
// ---------------------------------------------------------------------------------------

/** Parses an absolute http(s) URL, or throws INVALID_URL. */
function parseHttpUrl(input: string, base?: URL): URL {
  let parsed: URL;
  try {
    parsed = new URL(input, base);
  } catch (err) {
    const what = base ? `redirect from ${base.href} to an invalid URL` : 'not a valid URL';
    throw new PipelineError(ErrorCodes.INVALID_URL, `${what}: ${input}`, {
      cause: err,
      details: { url: input, ...(base && { redirectedFrom: base.href }) },
    });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    const what = base ? `redirect from ${base.href} to` : 'only http and https URLs are fetched, not';
    throw new PipelineError(ErrorCodes.INVALID_URL, `${what} ${parsed.href}`, {
      details: { url: parsed.href, ...(base && { redirectedFrom: base.href }) },
    });
  }
  return parsed;
}

function withoutHash(url: URL): string {
  const copy = new URL(url);
  copy.hash = '';
  return copy.href;
}

/** Validates a redirect and returns its target, recording it in `chain` and `visited`. */
function nextHop(
  current: URL,
  location: string,
  chain: string[],
  visited: Set<string>,
  maxRedirects: number,
): URL {
  const target = parseHttpUrl(location, current);
  const key = withoutHash(target);
  const details = { url: chain[0], redirects: [...chain, target.href], maxRedirects };
  if (visited.has(key)) {
    throw new PipelineError(
      ErrorCodes.FETCH_FAILED,
      `redirect loop: ${current.href} redirects back to ${target.href}`,
      { details },
    );
  }
  if (chain.length > maxRedirects) {
    throw new PipelineError(
      ErrorCodes.FETCH_FAILED,
      `too many redirects: more than ${maxRedirects} starting at ${chain[0]}`,
      { details },
    );
  }
  chain.push(target.href);
  visited.add(key);
  return target;
}

// ---------------------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------------------

async function send(url: URL, opts: FetchTitleOptions, deadline: Deadline): Promise<Dispatcher.ResponseData> {
  // undici's own limits are set to the time left so that they agree with the deadline;
  // the deadline's abort signal is what actually bounds connecting and reading.
  const remaining = deadline.remainingMs();
  return request(url, {
    method: 'GET',
    headers: {
      accept: ACCEPT,
      'accept-encoding': ACCEPT_ENCODING,
      'user-agent': opts.userAgent ?? DEFAULT_USER_AGENT,
    },
    signal: deadline.signal,
    headersTimeout: remaining,
    bodyTimeout: remaining,
    dispatcher: opts.dispatcher,
  });
}

/** The first value of a response header. */
function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function statusError(status: number, url: URL, headers: Dispatcher.ResponseData['headers']): PipelineError {
  // 429 and 5xx are the server's way of saying "not now"; other statuses (4xx, a 3xx
  // that cannot be followed) will not change on a retry.
  const retryable = status === 429 || status >= 500;
  const retryAfter = header(headers, 'retry-after');
  return new PipelineError(ErrorCodes.HTTP_STATUS, `HTTP ${status} from ${url.href}`, {
    retryable,
    details: { url: url.href, status, ...(retryAfter !== undefined && { retryAfter }) },
  });
}

/** HTML by its media type; a response without a Content-Type is given the benefit of the doubt. */
function isHtml(contentType: string | undefined): boolean {
  const essence = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return essence === '' || HTML_MEDIA_TYPES.has(essence);
}

/** Releases a body that will not be read (destroying it frees the socket at once). */
function discard(body: Readable): void {
  // Destroying an unfinished undici body emits an abort error nobody needs to see.
  body.on('error', () => {});
  body.destroy();
}

/**
 * Reads the body until the title is complete, the body ends or `maxBytes` decompressed
 * bytes have been read; always destroys the streams before returning.
 */
async function readTitle(
  body: Readable,
  headers: Dispatcher.ResponseData['headers'],
  url: URL,
  maxBytes: number,
): Promise<Omit<FetchedTitle, 'url'>> {
  body.on('error', () => {}); // errors surface through the iteration below
  const content = decompressed(body, header(headers, 'content-encoding'), url);
  const decoder = new BodyDecoder(charsetFromContentType(header(headers, 'content-type')));
  const extractor = new TitleExtractor();
  let bytesRead = 0;
  let truncated = false;

  try {
    // destroyOnReturn: false: leaving the loop early must not make the iterator destroy the
    // stream with an AbortError (building its stack trace is a real cost per page); the
    // finally block below destroys the streams without one.
    for await (const chunk of content.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      const room = maxBytes - bytesRead;
      // More bytes than allowed: the document is cut off at the limit.
      const bytes = chunk.length > room ? chunk.subarray(0, room) : chunk;
      truncated = bytes !== chunk;
      bytesRead += bytes.length;
      // Fed in slices, so that the rest of a large chunk is neither decoded nor parsed
      // once the title is complete.
      let done = false;
      for (let at = 0; at < bytes.length && !done; at += FEED_BYTES) {
        done = extractor.write(decoder.write(bytes.subarray(at, at + FEED_BYTES)));
      }
      if (done || truncated) break;
    }
    if (!extractor.done) extractor.write(decoder.end());
    const result = extractor.end({ truncated });
    if (result) return result;

    const message = truncated
      ? `no title in the first ${bytesRead} bytes of ${url.href} (the read limit is ${maxBytes} bytes)`
      : `${url.href} has no title`;
    throw new PipelineError(ErrorCodes.NO_TITLE, message, {
      details: { url: url.href, bytesRead, maxBytes, truncated, encoding: decoder.encoding },
    });
  } finally {
    destroyQuietly(content);
    destroyQuietly(body);
  }
}

/**
 * Destroys a stream that may not have ended. undici answers that with a RequestAbortedError
 * that nobody will see, and capturing its stack trace costs about a tenth of the CPU time
 * of a whole fetch; it is skipped. (Synchronous, so no other code runs meanwhile.)
 */
function destroyQuietly(stream: Readable): void {
  if (stream.destroyed) return;
  const { stackTraceLimit } = Error;
  Error.stackTraceLimit = 0;
  try {
    stream.destroy();
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

/**
 * Undoes the Content-Encoding of `body`. The decompressors are read on demand (stream
 * backpressure), so a decompression bomb is only ever inflated as far as it is read.
 */
function decompressed(body: Readable, contentEncoding: string | undefined, url: URL): Readable {
  const codings = (contentEncoding ?? '')
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
  if (codings.length === 0) return body;

  // Codings are listed in the order they were applied, so they are undone in reverse.
  const stages = codings.reverse().map((coding): Readable & NodeJS.WritableStream => {
    switch (coding) {
      case 'gzip':
      case 'x-gzip':
      case 'deflate':
        // createUnzip accepts both gzip and zlib-wrapped deflate (servers mix them up).
        // A sync flush at the end tolerates truncated streams, as browsers do.
        return createUnzip({ flush: zlib.Z_SYNC_FLUSH, finishFlush: zlib.Z_SYNC_FLUSH });
      case 'br':
        return createBrotliDecompress({
          flush: zlib.BROTLI_OPERATION_FLUSH,
          finishFlush: zlib.BROTLI_OPERATION_FLUSH,
        });
      default:
        throw new PipelineError(
          ErrorCodes.FETCH_FAILED,
          `${url.href} was sent with an unsupported content-encoding: ${contentEncoding}`,
          { details: { url: url.href, contentEncoding } },
        );
    }
  });
  const last = stages[stages.length - 1]!;
  // Errors reach the reader through `last`; the callback only keeps them from being unhandled.
  pipeline([body, ...stages], () => {});
  return last;
}

// ---------------------------------------------------------------------------------------
// Deadline and error mapping
// ---------------------------------------------------------------------------------------

/**
 * One abort signal for the whole job that fires at the deadline or when the caller's
 * signal aborts, remembering which. (A private controller with one timer and one listener,
 * both released by dispose(), rather than AbortSignal.timeout/any: nothing outlives the
 * job, and no signal accumulates dependents on a long-lived shutdown signal.)
 */
class Deadline {
  readonly #controller = new AbortController();
  readonly #expiresAt: number;
  readonly #timer: NodeJS.Timeout;
  readonly #external: AbortSignal | undefined;
  #cause: 'timeout' | 'external' | undefined;

  constructor(timeoutMs: number, external: AbortSignal | undefined) {
    this.#expiresAt = performance.now() + timeoutMs;
    this.#timer = setTimeout(() => this.#abort('timeout'), timeoutMs);
    this.#external = external;
    if (external?.aborted) this.#abort('external');
    else external?.addEventListener('abort', this.#onExternalAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Why the signal fired, if it did. */
  get cause(): 'timeout' | 'external' | undefined {
    return this.#cause;
  }

  /** Milliseconds left, at least 1 (undici reads 0 as "no limit"). */
  remainingMs(): number {
    return Math.max(1, Math.ceil(this.#expiresAt - performance.now()));
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#external?.removeEventListener('abort', this.#onExternalAbort);
  }

  readonly #onExternalAbort = (): void => this.#abort('external');

  #abort(cause: 'timeout' | 'external'): void {
    if (this.#cause !== undefined) return;
    this.#cause = cause;
    this.#controller.abort(new Error(cause === 'timeout' ? 'deadline exceeded' : 'aborted'));
  }
}

/** Maps whatever went wrong to a PipelineError for `url` (the hop being fetched). */
function asPipelineError(err: unknown, deadline: Deadline, url: URL, opts: FetchTitleOptions): PipelineError {
  // Aborting is checked first: destroyed streams report the abort in many shapes.
  if (deadline.cause === 'external') {
    return new PipelineError(ErrorCodes.FETCH_FAILED, 'aborted', {
      cause: err,
      retryable: true,
      details: { url: url.href },
    });
  }
  if (err instanceof PipelineError) return err;

  const blocked = findCause(err, BlockedAddressError);
  if (blocked !== undefined) {
    // A policy decision, not a network failure: trying again will not help.
    return new PipelineError(BLOCKED_ADDRESS, `refusing to fetch ${url.href}: ${blocked.message}`, {
      cause: err,
      details: { url: url.href, host: blocked.host, address: blocked.address, range: blocked.range },
    });
  }

  const code = errorCode(err);
  if (deadline.cause === 'timeout' || (code !== undefined && UNDICI_TIMEOUT_CODES.has(code))) {
    return new PipelineError(
      ErrorCodes.FETCH_TIMEOUT,
      `fetching ${url.href} took longer than ${opts.timeoutMs} ms`,
      { cause: err, retryable: true, details: { url: url.href, timeoutMs: opts.timeoutMs } },
    );
  }

  const reason = err instanceof Error ? err.message : String(err);
  // zlib reports corrupt data as Z_*; brotli as ERR__ERROR_*. A broken body stays broken.
  if (code !== undefined && (code.startsWith('Z_') || code.startsWith('ERR__ERROR'))) {
    return new PipelineError(ErrorCodes.FETCH_FAILED, `cannot decompress ${url.href}: ${reason}`, {
      cause: err,
      details: { url: url.href, code },
    });
  }
  // Refused or reset connections, DNS failures, TLS errors, malformed responses, ...
  return new PipelineError(ErrorCodes.FETCH_FAILED, `fetching ${url.href} failed: ${reason}`, {
    cause: err,
    retryable: true,
    details: { url: url.href, ...(code !== undefined && { code }) },
  });
}

/** `err` or the first of its causes that is an instance of `type`. */
function findCause<T extends Error>(err: unknown, type: abstract new (...args: never[]) => T): T | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof type) return e;
  }
  return undefined;
}

/** The `code` of an error (undici's UND_ERR_*, Node's ECONNREFUSED, ...), also when wrapped. */
function errorCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
