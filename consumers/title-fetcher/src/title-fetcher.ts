/**
 * The title fetcher the service uses: {@link fetchTitle} with everything a long-running
 * process fetching untrusted URLs needs around it.
 *
 * - One undici Agent for the whole process: keep-alive connections pooled per origin, at
 *   most `perHostConcurrency` of them per origin.
 * - SSRF protection: every connection of that Agent, redirects included, goes through the
 *   guarded connector (./guarded-agent.ts), which refuses non-public addresses unless
 *   `allowPrivate` is set. With `allowedHosts`, only those hosts and their subdomains are
 *   fetched at all.
 * - Per-host limits (./host-limiter.ts): at most `perHostConcurrency` requests in flight to
 *   one origin, optionally at most `perHostRate` started per second; the rest queue in
 *   order, and give up when their job's deadline passes or it is aborted.
 */
import { Agent } from 'undici';
import { ErrorCodes, PipelineError, inSpan, tracing } from '@amqp-pipeline/shared';
import type { Config } from '@amqp-pipeline/shared';
import { BLOCKED_ADDRESS, allowAnyAddress, hostAllowlist, publicAddressesOnly } from './address-policy.js';
import type { AddressPolicy } from './address-policy.js';
import { checkFetchOptions, fetchTitle } from './fetch-title.js';
import type { FetchedTitle } from './fetch-title.js';
import { guardedConnector } from './guarded-agent.js';
import type { Resolver } from './guarded-agent.js';
import { HostLimiter } from './host-limiter.js';

export interface TitleFetcherOptions {
  /** Deadline for one whole fetch (queueing, connecting, redirects, body), ms. */
  timeoutMs: number;
  /** Most decompressed body bytes read per page. */
  maxBytes: number;
  /** Most redirects followed per page. */
  maxRedirects: number;
  /** Allow non-public addresses (loopback, private, ...): local use and tests. Default false. */
  allowPrivate?: boolean;
  /** If not empty, only these hosts and their subdomains are fetched. Default: any host. */
  allowedHosts?: readonly string[];
  /** Requests in flight at once to one origin (also its connection pool size). Default 8. */
  perHostConcurrency?: number;
  /** Requests started per second against one origin; 0 (the default) means no limit. */
  perHostRate?: number;
  /** The User-Agent header. */
  userAgent?: string;
  /**
   * Replaces the address policy chosen by `allowPrivate` (tests: allow the test server's
   * address while keeping the real policy for the rest). Not for production use.
   */
  addressPolicy?: AddressPolicy;
  /** Resolves host names; the system resolver by default (tests: map names to loopback). */
  resolver?: Resolver;
}

export interface TitleFetcher {
  /**
   * Fetches `url` and returns its title; `signal` aborts it (service shutdown).
   * @throws PipelineError, see {@link fetchTitle}; refused hosts and addresses with code
   *   PIPELINE_ERR_BLOCKED_ADDRESS, not retryable.
   */
  fetch(url: string, signal?: AbortSignal): Promise<FetchedTitle>;
  /** Rejects fetches still queued for a host and closes the connection pool. */
  close(): Promise<void>;
}

export const DEFAULT_PER_HOST_CONCURRENCY = 8;

/** The fetcher's options from the service configuration. */
export function titleFetcherOptions(config: Config): TitleFetcherOptions {
  return {
    timeoutMs: config.FETCH_TIMEOUT_MS,
    maxBytes: config.FETCH_MAX_BYTES,
    maxRedirects: config.FETCH_MAX_REDIRECTS,
    allowPrivate: config.FETCH_ALLOW_PRIVATE,
    allowedHosts: config.FETCH_ALLOWED_HOSTS,
    perHostConcurrency: config.FETCH_PER_HOST_CONCURRENCY,
    perHostRate: config.FETCH_PER_HOST_RATE,
  };
}

/**
 * Creates the fetcher: one connection pool, one set of per-host limits, one address policy
 * for every fetch made through it. Close it when done.
 * @throws RangeError if a limit is out of range
 */
export function createTitleFetcher(options: TitleFetcherOptions): TitleFetcher {
  checkFetchOptions(options);
  const perHostConcurrency = options.perHostConcurrency ?? DEFAULT_PER_HOST_CONCURRENCY;
  // Validates both per-host settings (throws RangeError).
  const limiter = new HostLimiter({ concurrency: perHostConcurrency, ratePerSecond: options.perHostRate ?? 0 });
  const policy = options.addressPolicy ?? (options.allowPrivate ? allowAnyAddress : publicAddressesOnly);
  const isAllowedHost = hostAllowlist(options.allowedHosts ?? []);

  const agent = new Agent({
    // As many connections per origin as the limiter lets requests through, so a request
    // that has its slot normally finds a connection rather than queueing inside undici.
    connections: perHostConcurrency,
    connect: guardedConnector({
      policy,
      ...(options.resolver && { resolver: options.resolver }),
      timeoutMs: options.timeoutMs,
    }),
  });

  /** Runs before every hop: the host allowlist, then a slot for the URL's origin. */
  const admit = async (url: URL, signal: AbortSignal): Promise<() => void> => {
    if (!isAllowedHost(url.hostname)) {
      throw new PipelineError(BLOCKED_ADDRESS, `refusing to fetch ${url.href}: ${url.hostname} is not an allowed host`, {
        details: { url: url.href, host: url.hostname, allowedHosts: options.allowedHosts },
      });
    }
    return limiter.acquire(url.origin, signal);
  };

  let closing: Promise<void> | undefined;
  return {
    async fetch(url, signal) {
      if (closing) {
        throw new PipelineError(ErrorCodes.FETCH_FAILED, 'the title fetcher is closed', {
          retryable: true,
          details: { url },
        });
      }
      const fetching = () =>
        fetchTitle(url, {
          timeoutMs: options.timeoutMs,
          maxBytes: options.maxBytes,
          maxRedirects: options.maxRedirects,
          dispatcher: agent,
          admit,
          ...(signal && { signal }),
          ...(options.userAgent !== undefined && { userAgent: options.userAgent }),
        });
      const t = tracing();
      if (!t) return fetching();
      // A CLIENT span for the page's fetch (redirects and the wait for a slot included).
      return inSpan('GET', { 'http.request.method': 'GET', 'url.full': url }, fetching, t.api.SpanKind.CLIENT);
    },
    close() {
      // Fetches in flight finish (at their deadline at the latest) before the pool closes.
      closing ??= (async () => {
        limiter.close();
        await agent.close();
      })();
      return closing;
    },
  };
}
