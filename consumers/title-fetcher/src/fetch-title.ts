/**
 * Fetching a web page and reading its title.
 *
 * The page is requested through undici's dispatcher with a handler of our own (`PageExchange`
 * below): the body's bytes go straight from the HTTP parser to the decompressor (gzip,
 * deflate, brotli), the decoder (see ./charset.ts) and the streaming title extractor, with no
 * response stream in between, and reading stops as soon as the `<title>` is complete or
 * `maxBytes` decompressed bytes have been read. One deadline covers the whole job, redirects
 * included.
 *
 * Every failure is a PipelineError whose `retryable` flag says whether the same job may
 * succeed later (timeouts, connection failures, a resolver that cannot answer now, 429 and
 * 5xx) or never will (bad URL, a host name that does not exist, 404, not HTML, no title,
 * blocked address).
 *
 * This function has no opinion about which addresses may be fetched or how many requests
 * a host may receive: that is the business of the dispatcher and the `admit` hook it is
 * given. ./title-fetcher.ts puts them together (SSRF protection, per-host limits); the
 * service uses that, not this function directly.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Transform } from 'node:stream';
import { constants as zlib, createBrotliDecompress, createUnzip } from 'node:zlib';
import { getGlobalDispatcher } from 'undici';
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
 * @throws PipelineError with code INVALID_URL, FETCH_TIMEOUT, FETCH_FAILED, DNS_NOT_FOUND,
 *   HTTP_STATUS, NOT_HTML, NO_TITLE or PIPELINE_ERR_BLOCKED_ADDRESS (from the dispatcher or
 *   `admit`).
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
        const outcome = await exchange(current, opts, deadline);
        if ('redirectTo' in outcome) {
          current = nextHop(current, outcome.redirectTo, chain, visited, opts.maxRedirects);
          continue;
        }
        return { ...outcome.found, url: current.href };
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
  // A serialized URL has a '#' only where its fragment starts.
  const hash = url.href.indexOf('#');
  return hash === -1 ? url.href : url.href.slice(0, hash);
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

/** What one request came to: the title, or a redirect to follow. */
type HopOutcome = { found: Omit<FetchedTitle, 'url'> } | { redirectTo: string };

/** Requests `url` once (no redirects followed) and reads its title. */
function exchange(url: URL, opts: FetchTitleOptions, deadline: Deadline): Promise<HopOutcome> {
  return new Promise<HopOutcome>((resolve, reject) => {
    const page = new PageExchange(url, opts.maxBytes, deadline, resolve, reject);
    // undici's own limits are set to the time left so that they agree with the deadline;
    // the deadline is what actually bounds connecting and reading.
    const remaining = deadline.remainingMs();
    const dispatcher = opts.dispatcher ?? getGlobalDispatcher();
    dispatcher.dispatch(
      {
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: {
          accept: ACCEPT,
          'accept-encoding': ACCEPT_ENCODING,
          'user-agent': opts.userAgent ?? DEFAULT_USER_AGENT,
        },
        headersTimeout: remaining,
        bodyTimeout: remaining,
      },
      page,
    );
  });
}

/**
 * A response left unread is drained rather than cut off when at most this many bytes of it are
 * still to come (by its Content-Length): a connection that finishes its response can be reused,
 * one cut off mid-body is closed. Anything longer, or of unknown length, is cut off.
 */
const DRAIN_BYTES = 64 * 1024;
/**
 * How long a drain may take before the response is cut off after all: a server that declares
 * a short rest and then stalls must not hold one of its host's connections until the deadline.
 */
const DRAIN_MS = 1000;

/**
 * Why an unfinished response was cut off: only undici sees it (and hands it back to
 * `onResponseError`, which ignores it by then), so one instance, without a stack, serves all.
 */
const STOPPED_READING = Object.assign(new Error('stopped reading: the title is known'), { stack: '' });

/**
 * One HTTP request and its response, as an undici dispatch handler: decides from the status
 * and headers whether the body is wanted, feeds it (decompressed) to a {@link BodyReader},
 * and settles once the outcome is known, which is often before the body has ended. Whatever
 * of the response is then still unread is drained if short (and quick), else the request is
 * aborted.
 * Settles exactly once: with the outcome, or with the first error (undici's, the
 * decompressor's, or the deadline's).
 */
class PageExchange implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | undefined;
  #settled = false;
  /** The response has ended (or failed): nothing is left to drain or abort. */
  #finished = false;
  /** Body bytes still to come by the Content-Length, or undefined when unknown. */
  #remaining: number | undefined;
  /** Present once the body is being read. */
  #reader: BodyReader | undefined;
  /** The decompressors, first to last, when the body has a Content-Encoding. */
  #stages: Transform[] = [];
  /** Cuts off a drain that takes too long (see DRAIN_MS). */
  #drainTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: URL,
    private readonly maxBytes: number,
    private readonly deadline: Deadline,
    private readonly resolve: (outcome: HopOutcome) => void,
    private readonly reject: (err: unknown) => void,
  ) {
    if (deadline.signal.aborted) queueMicrotask(this.#onDeadline);
    else deadline.signal.addEventListener('abort', this.#onDeadline, { once: true });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // Settled before undici got this far (the deadline passed while connecting): stop now.
    if (this.#settled) controller.abort(STOPPED_READING);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (this.#settled || statusCode < 200) return; // 1xx: informational, the real answer follows
    const length = Number(header(headers, 'content-length'));
    this.#remaining = Number.isSafeInteger(length) && length >= 0 ? length : undefined;

    if (statusCode > 299) {
      const location = header(headers, 'location');
      if (REDIRECT_STATUSES.has(statusCode) && location !== undefined) this.#settle({ redirectTo: location });
      else this.#fail(statusError(statusCode, this.url, headers));
      return;
    }
    const contentType = header(headers, 'content-type');
    if (!isHtml(contentType)) {
      this.#fail(
        new PipelineError(ErrorCodes.NOT_HTML, `${this.url.href} is not an HTML page (content-type ${contentType})`, {
          details: { url: this.url.href, contentType },
        }),
      );
      return;
    }
    try {
      this.#stages = decompressors(header(headers, 'content-encoding'), this.url);
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#reader = new BodyReader(charsetFromContentType(contentType), this.maxBytes);
    const last = this.#stages.at(-1);
    if (last) {
      for (const [i, stage] of this.#stages.entries()) {
        stage.on('error', (err) => this.#fail(err));
        const next = this.#stages[i + 1];
        if (next) stage.pipe(next);
      }
      last.on('data', (chunk: Buffer) => this.#read(chunk));
      last.on('end', () => this.#bodyEnded());
      // Decompressed output that cannot keep up pauses the network side.
      this.#stages[0]!.on('drain', () => this.#controller?.resume());
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#remaining !== undefined) this.#remaining -= chunk.length;
    if (this.#settled || !this.#reader) return; // draining, or a response that never settles here
    const first = this.#stages[0];
    if (first) {
      if (!first.write(chunk)) controller.pause();
    } else {
      this.#read(chunk);
    }
  }

  onResponseEnd(): void {
    this.#finished = true;
    clearTimeout(this.#drainTimer);
    if (this.#settled || !this.#reader) return;
    const first = this.#stages[0];
    if (first) first.end();
    else this.#bodyEnded();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    this.#finished = true;
    clearTimeout(this.#drainTimer);
    this.#fail(err);
  }

  /** Decompressed body bytes. */
  #read(chunk: Buffer): void {
    if (this.#settled) return;
    if (this.#reader!.feed(chunk)) this.#outcome();
  }

  #bodyEnded(): void {
    if (!this.#settled) this.#outcome();
  }

  /** The title, or NO_TITLE: known once the reader is done or the body has ended. */
  #outcome(): void {
    try {
      this.#settle({ found: this.#reader!.finish(this.url) });
    } catch (err) {
      this.#fail(err);
    }
  }

  readonly #onDeadline = (): void => this.#fail(this.deadline.signal.reason);

  #settle(outcome: HopOutcome): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#release();
    this.resolve(outcome);
  }

  #fail(err: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#release();
    this.reject(err);
  }

  /** Lets go of everything once settled: the deadline, the decompressors, the response. */
  #release(): void {
    this.deadline.signal.removeEventListener('abort', this.#onDeadline);
    for (const stage of this.#stages) stage.destroy();
    // The rest of the response: nothing (it has ended), drained (it is short), or cut off.
    // Cutting off waits a microtask, for the case of the end being in the very bytes undici
    // is parsing now (it would end the response right after this returns).
    queueMicrotask(() => {
      if (this.#finished) return;
      if (this.#remaining !== undefined && this.#remaining <= DRAIN_BYTES && !this.deadline.signal.aborted) {
        this.#drainTimer = setTimeout(() => this.#controller?.abort(STOPPED_READING), DRAIN_MS).unref();
        this.#controller?.resume(); // paused by a decompressor that is gone now
        return;
      }
      this.#controller?.abort(STOPPED_READING);
    });
  }
}

/**
 * Counts, decodes and parses body bytes until the title is complete or `maxBytes` have been
 * read, then says what was found.
 */
class BodyReader {
  readonly #decoder: BodyDecoder;
  readonly #extractor = new TitleExtractor();
  #bytesRead = 0;
  #truncated = false;

  constructor(
    headerEncoding: string | undefined,
    private readonly maxBytes: number,
  ) {
    this.#decoder = new BodyDecoder(headerEncoding);
  }

  /** Feeds the next (decompressed) bytes; true when no more are wanted. */
  feed(chunk: Buffer): boolean {
    const room = this.maxBytes - this.#bytesRead;
    // More bytes than allowed: the document is cut off at the limit.
    const bytes = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.#truncated = bytes !== chunk;
    this.#bytesRead += bytes.length;
    // Fed in slices, so that the rest of a large chunk is neither decoded nor parsed once the
    // title is complete.
    let done = false;
    for (let at = 0; at < bytes.length && !done; at += FEED_BYTES) {
      done = this.#extractor.write(this.#decoder.write(bytes.subarray(at, at + FEED_BYTES)));
    }
    return done || this.#truncated;
  }

  /** The title found, or NO_TITLE (the body ended, or the limit was reached, without one). */
  finish(url: URL): Omit<FetchedTitle, 'url'> {
    if (!this.#extractor.done) this.#extractor.write(this.#decoder.end());
    const result = this.#extractor.end({ truncated: this.#truncated });
    if (result) return result;
    const message = this.#truncated
      ? `no title in the first ${this.#bytesRead} bytes of ${url.href} (the read limit is ${this.maxBytes} bytes)`
      : `${url.href} has no title`;
    throw new PipelineError(ErrorCodes.NO_TITLE, message, {
      details: {
        url: url.href,
        bytesRead: this.#bytesRead,
        maxBytes: this.maxBytes,
        truncated: this.#truncated,
        encoding: this.#decoder.encoding,
      },
    });
  }
}

/** The first value of a response header. */
function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function statusError(status: number, url: URL, headers: IncomingHttpHeaders): PipelineError {
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
  if (contentType === undefined) return true;
  const semicolon = contentType.indexOf(';');
  const essence = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  return essence === '' || HTML_MEDIA_TYPES.has(essence);
}

/**
 * The decompressors that undo a Content-Encoding, first to last (none for identity). Each is
 * fed only as fast as its output is read and stopped as soon as nothing more is wanted, so a
 * decompression bomb is only ever inflated as far as it is read.
 */
function decompressors(contentEncoding: string | undefined, url: URL): Transform[] {
  if (contentEncoding === undefined) return [];
  const codings = contentEncoding
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
  // Codings are listed in the order they were applied, so they are undone in reverse.
  return codings.reverse().map((coding): Transform => {
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
  // DNS says the name does not exist (or has no address): an answer, not an outage, so the
  // same job would fail the same way. Node reports EAI_NONAME and EAI_NODATA as ENOTFOUND;
  // a resolver that cannot answer right now (EAI_AGAIN) falls through and is retried.
  if (code === 'ENOTFOUND') {
    return new PipelineError(ErrorCodes.DNS_NOT_FOUND, `cannot fetch ${url.href}: ${url.hostname} not found in DNS`, {
      cause: err,
      details: { url: url.href, host: url.hostname, code },
    });
  }
  // Refused or reset connections, temporary DNS failures, TLS errors, malformed responses, ...
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
