/**
 * The title fetcher with its guards and limits, against local servers only.
 *
 * Network rule for this file: traffic may only go to 127.0.0.1. Host names are resolved by
 * a fake resolver (only `localhost` reaches the system resolver, which answers it from
 * /etc/hosts), and tests about non-local blocked addresses (10.0.0.1, 169.254.169.254, ...)
 * run the real policy wrapped in a safety net that refuses anything but the test server,
 * so even a broken policy could not make them connect elsewhere; such a test then fails
 * on the reason (`TEST_SAFETY_NET` instead of the real range).
 */
import type { LookupAddress } from 'node:dns';
import diagnostics from 'node:diagnostics_channel';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DiagnosticsChannel } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes, PipelineError, loadConfig } from '@amqp-pipeline/shared';
import { BLOCKED_ADDRESS, publicAddressesOnly } from './address-policy.js';
import type { AddressPolicy } from './address-policy.js';
import { systemResolver } from './guarded-agent.js';
import type { Resolver } from './guarded-agent.js';
import { createTitleFetcher, titleFetcherOptions } from './title-fetcher.js';
import type { TitleFetcher, TitleFetcherOptions } from './title-fetcher.js';

const MiB = 1024 * 1024;
/** How long the /slow route holds each request, ms. */
const SLOW_MS = 100;

/** A local HTTP server that counts connections, arrivals and requests in flight. */
class TestServer {
  readonly #server: Server;
  base = '';
  port = 0;
  connections = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly arrivals: { path: string; at: number }[] = [];
  #arrivalWaiters: { path: string; count: number; resolve: () => void }[] = [];
  #gates: (() => void)[] = [];

  constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
    this.#server.on('connection', () => this.connections++);
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as AddressInfo).port;
    this.base = `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  reset(): void {
    this.connections = 0;
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.arrivals.length = 0;
  }

  /** Requests to `path` received so far. */
  count(path: string): number {
    return this.arrivals.filter((a) => a.path === path).length;
  }

  /** Resolves once `count` requests to `path` have arrived. */
  arrived(path: string, count: number): Promise<void> {
    if (this.count(path) >= count) return Promise.resolve();
    return new Promise((resolve) => this.#arrivalWaiters.push({ path, count, resolve }));
  }

  /** Answers every request waiting at /gate. */
  openGates(): void {
    for (const open of this.#gates.splice(0)) open();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    this.arrivals.push({ path: url.pathname, at: performance.now() });
    this.#arrivalWaiters = this.#arrivalWaiters.filter((w) => {
      if (this.count(w.path) < w.count) return true;
      w.resolve();
      return false;
    });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    res.on('close', () => this.inFlight--);

    const page = (title: string, headers: Record<string, string> = {}): void => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...headers });
      res.end(`<html><head><title>${title}</title></head></html>`);
    };
    switch (url.pathname) {
      case '/plain':
        return page('Plain page');
      case '/close':
        return page('Closing page', { connection: 'close' });
      case '/to':
        res.writeHead(302, { location: url.searchParams.get('target') ?? '/' });
        return void res.end();
      case '/slow':
        return void setTimeout(() => page('Slow page'), SLOW_MS);
      case '/gate':
        return void this.#gates.push(() => page('Gated page'));
      case '/hang':
        return; // never answers
      default:
        res.writeHead(404);
        return void res.end();
    }
  }
}

const server = new TestServer();
const other = new TestServer();

/** Made-up names for tests; only `localhost` goes to the system resolver. */
const names: Record<string, string[]> = {
  'loopback.test': ['127.0.0.1'],
  'private.test': ['10.0.0.1'],
  'metadata.test': ['169.254.169.254'],
  // One allowed address (under the test policy) and one refused: the host is refused.
  'mixed.test': ['127.0.0.1', '10.1.2.3'],
  'allowed.test': ['127.0.0.1'],
  'www.allowed.test': ['127.0.0.1'],
  'other.test': ['127.0.0.1'],
};
const resolverCalls: string[] = [];
const fakeResolver: Resolver = async (hostname, options) => {
  resolverCalls.push(hostname);
  if (hostname === 'localhost') return systemResolver(hostname, options);
  const addresses = names[hostname];
  if (addresses === undefined) {
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
  }
  return addresses.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 }));
};

/** Refuses everything the real policy refuses and, as a safety net, anything but loopback. */
function withSafetyNet(policy: AddressPolicy): AddressPolicy {
  return (address) => policy(address) ?? (address === '127.0.0.1' ? undefined : 'TEST_SAFETY_NET');
}
/** The real policy, except that the test server's address (127.0.0.1) is allowed. */
const testServerAllowed: AddressPolicy = (address) =>
  address === '127.0.0.1' ? undefined : withSafetyNet(publicAddressesOnly)(address);

const fetchers: TitleFetcher[] = [];
/** A fetcher with the production defaults (no allowPrivate, real policy) and the fake resolver. */
function makeFetcher(overrides: Partial<TitleFetcherOptions> = {}): TitleFetcher {
  const fetcher = createTitleFetcher({
    timeoutMs: 3000,
    maxBytes: MiB,
    maxRedirects: 5,
    resolver: fakeResolver,
    ...overrides,
  });
  fetchers.push(fetcher);
  return fetcher;
}

/** The PipelineError that fetching `url` fails with. */
async function rejection(fetcher: TitleFetcher, url: string, signal?: AbortSignal): Promise<PipelineError> {
  const err: unknown = await fetcher.fetch(url, signal).then(
    (result) => {
      throw new Error(`expected ${url} to fail, got ${JSON.stringify(result)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PipelineError);
  return err as PipelineError;
}

beforeAll(async () => {
  await Promise.all([server.listen(), other.listen()]);

  // Several tests name non-local addresses (10.0.0.1, 169.254.169.254, ...). They rely on
  // the guarded connector calling the policy for IP literals and for resolved names; if
  // that wiring were broken they would try to connect there. So check it first, against
  // loopback only, and refuse to run the file if it does not hold.
  const probe = createTitleFetcher({ timeoutMs: 3000, maxBytes: MiB, maxRedirects: 0, resolver: fakeResolver });
  try {
    for (const url of [`http://127.0.0.2:${server.port}/`, `http://loopback.test:${server.port}/`, `https://loopback.test:${server.port}/`]) {
      const outcome = await probe.fetch(url).then(
        () => 'fetched',
        (err: unknown) => (err instanceof PipelineError ? err.code : String(err)),
      );
      if (outcome !== BLOCKED_ADDRESS) throw new Error(`the address guard is not wired (${url}: ${outcome}); not running tests that name non-local addresses`);
    }
  } finally {
    await probe.close();
  }
  server.reset();
});

beforeEach(() => {
  server.reset();
  other.reset();
  resolverCalls.length = 0;
});

afterEach(async () => {
  await Promise.all(fetchers.splice(0).map((f) => f.close()));
});

afterAll(async () => {
  await Promise.all([server.close(), other.close()]);
});

describe('createTitleFetcher: SSRF protection with FETCH_ALLOW_PRIVATE unset', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.0.0.2', 'loopback'],
    ['localhost', 'loopback'],
    ['[::1]', 'loopback'],
    ['[::ffff:127.0.0.1]', 'ipv4Mapped:loopback'],
    ['0.0.0.0', 'unspecified'],
  ])('when the host is %s, then BLOCKED_ADDRESS (%s) is thrown, not retryable, without connecting', async (host, range) => {
    // The production policy, unwrapped: these addresses all stay on this machine.
    const fetcher = makeFetcher();
    const url = `http://${host}:${server.port}/plain`;
    const err = await rejection(fetcher, url);
    expect(err.code).toBe(BLOCKED_ADDRESS);
    expect(err.code).toBe('PIPELINE_ERR_BLOCKED_ADDRESS');
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ url: new URL(url).href, range });
    expect(err.message).toMatch(/^refusing to fetch http:\/\/.+ is not a public address/);
    expect(server.connections).toBe(0);
  });

  it.each([
    ['http://10.0.0.1/', 'private'],
    ['http://192.168.0.1:8080/', 'private'],
    ['http://169.254.169.254/latest/meta-data/', 'cloudMetadata'],
    ['http://100.64.0.1/', 'carrierGradeNat'],
    ['http://224.0.0.1/', 'multicast'],
    ['http://[fc00::1]/', 'uniqueLocal'],
    ['http://[fd00:ec2::254]/', 'cloudMetadata'],
    ['http://[fe80::1]/', 'linkLocal'],
    ['http://[::ffff:10.0.0.1]/', 'ipv4Mapped:private'],
    ['https://10.0.0.1/', 'private'],
  ])('when the URL is %s, then it is refused as %s before any connection', async (url, range) => {
    const fetcher = makeFetcher({ addressPolicy: withSafetyNet(publicAddressesOnly) });
    const err = await rejection(fetcher, url);
    expect(err.code).toBe(BLOCKED_ADDRESS);
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ range });
  });

  it.each(['http', 'https'])(
    'when a host name resolves to loopback (%s), then it is refused, naming the name and the address',
    async (scheme) => {
      const fetcher = makeFetcher();
      const err = await rejection(fetcher, `${scheme}://loopback.test:${server.port}/plain`);
      expect(err.code).toBe(BLOCKED_ADDRESS);
      expect(err.retryable).toBe(false);
      expect(err.message).toContain('loopback.test resolves to 127.0.0.1');
      expect(err.details).toMatchObject({ host: 'loopback.test', address: '127.0.0.1', range: 'loopback' });
      expect(resolverCalls).toContain('loopback.test');
      expect(server.connections).toBe(0);
    },
  );

  it('when a host name resolves to a metadata address, then it is refused', async () => {
    const fetcher = makeFetcher({ addressPolicy: withSafetyNet(publicAddressesOnly) });
    const err = await rejection(fetcher, 'http://metadata.test/latest/meta-data/');
    expect(err.code).toBe(BLOCKED_ADDRESS);
    expect(err.details).toMatchObject({ address: '169.254.169.254', range: 'cloudMetadata' });
  });

  it('when one of a host name\'s addresses is refused, then the whole host is refused', async () => {
    const fetcher = makeFetcher({ addressPolicy: testServerAllowed });
    const err = await rejection(fetcher, `http://mixed.test:${server.port}/plain`);
    expect(err.code).toBe(BLOCKED_ADDRESS);
    expect(err.details).toMatchObject({ address: '10.1.2.3', range: 'private' });
    expect(server.connections).toBe(0);
  });

  it('when the test server is allowed by the policy, then its pages are fetched through the guard', async () => {
    const fetcher = makeFetcher({ addressPolicy: testServerAllowed });
    await expect(fetcher.fetch(`${server.base}/plain`)).resolves.toEqual({
      title: 'Plain page',
      source: 'title',
      url: `${server.base}/plain`,
    });
    expect((await fetcher.fetch(`http://loopback.test:${server.port}/plain`)).title).toBe('Plain page');
  });

  it.each([
    ['a loopback literal', (port: number) => `http://127.0.0.2:${port}/plain`, 'loopback'],
    ['a private literal', () => 'http://10.0.0.1/', 'private'],
    ['the metadata address', () => 'http://169.254.169.254/latest/meta-data/', 'cloudMetadata'],
    ['an IPv4-mapped literal', () => 'http://[::ffff:192.168.1.1]/', 'ipv4Mapped:private'],
    ['a name resolving to a private address', () => 'http://private.test/', 'private'],
  ])('when an allowed server redirects to %s, then the hop is refused before connecting', async (_what, target, range) => {
    const fetcher = makeFetcher({ addressPolicy: testServerAllowed });
    const to = target(server.port);
    const err = await rejection(fetcher, `${server.base}/to?target=${encodeURIComponent(to)}`);
    expect(err.code).toBe(BLOCKED_ADDRESS);
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ url: new URL(to).href, range });
    // The only request the server saw is the redirect itself.
    expect(server.arrivals.map((a) => a.path)).toEqual(['/to']);
  });

  it('when a name is re-resolved to a refused address for a new connection (DNS rebinding), then it is refused', async () => {
    let lookups = 0;
    const rebinding: Resolver = async (hostname) => {
      expect(hostname).toBe('rebind.test');
      // A public-looking answer first (the test server stands in for it), then an internal one.
      return [{ address: lookups++ === 0 ? '127.0.0.1' : '127.0.0.2', family: 4 }];
    };
    const fetcher = makeFetcher({ addressPolicy: testServerAllowed, resolver: rebinding });
    // The page closes its connection, so the next request needs a new one.
    expect((await fetcher.fetch(`http://rebind.test:${server.port}/close`)).title).toBe('Closing page');
    const err = await rejection(fetcher, `http://rebind.test:${server.port}/close`);
    expect(err.code).toBe(BLOCKED_ADDRESS);
    expect(err.details).toMatchObject({ address: '127.0.0.2', range: 'loopback' });
    expect(server.count('/close')).toBe(1);
  });

  it('when the configuration is the default, then loopback is refused; with FETCH_ALLOW_PRIVATE=true, then it is fetched', async () => {
    const strict = makeFetcher({ ...titleFetcherOptions(loadConfig({})), resolver: fakeResolver });
    expect((await rejection(strict, `${server.base}/plain`)).code).toBe(BLOCKED_ADDRESS);

    const relaxed = makeFetcher({ ...titleFetcherOptions(loadConfig({ FETCH_ALLOW_PRIVATE: 'true' })), resolver: fakeResolver });
    expect((await relaxed.fetch(`${server.base}/plain`)).title).toBe('Plain page');
    expect((await relaxed.fetch(`http://localhost:${server.port}/plain`)).title).toBe('Plain page');
  });
});

/** The error Node's dns.lookup gives when getaddrinfo fails with `code` for `hostname`. */
function getaddrinfoError(code: 'ENOTFOUND' | 'EAI_AGAIN', hostname: string): NodeJS.ErrnoException {
  const errno = code === 'ENOTFOUND' ? -3008 : -3001; // UV_EAI_NONAME, UV_EAI_AGAIN
  return Object.assign(new Error(`getaddrinfo ${code} ${hostname}`), { code, errno, syscall: 'getaddrinfo', hostname });
}

/** A resolver that fails every name with `err`, recording the names asked for. */
function failingResolver(err: NodeJS.ErrnoException): Resolver {
  return async (hostname) => {
    resolverCalls.push(hostname);
    throw err;
  };
}

describe('createTitleFetcher: DNS failures', () => {
  it.each(['http', 'https'])(
    'when DNS answers that the name does not exist (ENOTFOUND, %s), then DNS_NOT_FOUND is thrown, not retryable',
    async (scheme) => {
      const cause = getaddrinfoError('ENOTFOUND', 'nx.invalid');
      const fetcher = makeFetcher({ resolver: failingResolver(cause) });
      const url = `${scheme}://nx.invalid/page`;
      const err = await rejection(fetcher, url);
      expect(err.code).toBe(ErrorCodes.DNS_NOT_FOUND);
      expect(err.code).toBe('PIPELINE_ERR_DNS_NOT_FOUND');
      expect(err.retryable).toBe(false);
      expect(err.message).toBe(`cannot fetch ${url}: nx.invalid not found in DNS`);
      expect(err.details).toEqual({ url, host: 'nx.invalid', code: 'ENOTFOUND' });
      // The lookup really ran inside the connection attempt, and its error is kept as the cause.
      expect(resolverCalls).toEqual(['nx.invalid']);
      expect(err.cause).toBe(cause);
    },
  );

  it('when the resolver cannot answer for now (EAI_AGAIN), then FETCH_FAILED is thrown, retryable', async () => {
    const cause = getaddrinfoError('EAI_AGAIN', 'nx.invalid');
    const fetcher = makeFetcher({ resolver: failingResolver(cause) });
    const err = await rejection(fetcher, 'http://nx.invalid/page');
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ url: 'http://nx.invalid/page', code: 'EAI_AGAIN' });
    expect(resolverCalls).toEqual(['nx.invalid']);
    expect(err.cause).toBe(cause);
  });

  it('when the name resolves to no addresses at all, then DNS_NOT_FOUND is thrown, not retryable', async () => {
    const fetcher = makeFetcher({ resolver: async () => [] });
    const err = await rejection(fetcher, 'http://empty.test/');
    expect(err.code).toBe(ErrorCodes.DNS_NOT_FOUND);
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ host: 'empty.test' });
  });

  it('when an allowed server redirects to a name that does not exist, then DNS_NOT_FOUND names that hop', async () => {
    const fetcher = makeFetcher({ addressPolicy: testServerAllowed });
    const target = 'http://nowhere.test/page';
    const err = await rejection(fetcher, `${server.base}/to?target=${encodeURIComponent(target)}`);
    expect(err.code).toBe(ErrorCodes.DNS_NOT_FOUND);
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ url: target, host: 'nowhere.test' });
    expect(resolverCalls).toEqual(['nowhere.test']);
    expect(server.arrivals.map((a) => a.path)).toEqual(['/to']);
  });
});

describe('createTitleFetcher: FETCH_ALLOWED_HOSTS', () => {
  const allowlisted = (): TitleFetcher => makeFetcher({ allowPrivate: true, allowedHosts: ['allowed.test'] });

  it('when the host or a subdomain of it is listed, then it is fetched', async () => {
    const fetcher = allowlisted();
    expect((await fetcher.fetch(`http://allowed.test:${server.port}/plain`)).title).toBe('Plain page');
    expect((await fetcher.fetch(`http://www.allowed.test:${server.port}/plain`)).title).toBe('Plain page');
  });

  it.each(['other.test', '127.0.0.1', 'notallowed.test'])(
    'when the host %s is not listed, then BLOCKED_ADDRESS is thrown before resolving or connecting',
    async (host) => {
      const fetcher = allowlisted();
      const err = await rejection(fetcher, `http://${host}:${server.port}/plain`);
      expect(err.code).toBe(BLOCKED_ADDRESS);
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(`${host} is not an allowed host`);
      expect(resolverCalls).toEqual([]);
      expect(server.connections).toBe(0);
    },
  );

  it('when a listed host redirects to a host that is not listed, then the hop is refused', async () => {
    const fetcher = allowlisted();
    const target = `http://other.test:${server.port}/plain`;
    const err = await rejection(fetcher, `http://allowed.test:${server.port}/to?target=${encodeURIComponent(target)}`);
    expect(err.code).toBe(BLOCKED_ADDRESS);
    expect(err.details).toMatchObject({ url: target, host: 'other.test' });
    expect(server.arrivals.map((a) => a.path)).toEqual(['/to']);
  });

  it('when a listed host resolves to a non-public address and private addresses are not allowed, then it is still refused', async () => {
    const fetcher = makeFetcher({ allowedHosts: ['allowed.test'] });
    const err = await rejection(fetcher, `http://allowed.test:${server.port}/plain`);
    expect(err.code).toBe(BLOCKED_ADDRESS);
    expect(err.details).toMatchObject({ range: 'loopback' });
  });
});

describe('createTitleFetcher: per-host limits', () => {
  it('when more fetches than the per-host limit run against one host, then the server never sees more at once', async () => {
    const fetcher = makeFetcher({ allowPrivate: true, perHostConcurrency: 3 });
    const results = await Promise.all(Array.from({ length: 12 }, () => fetcher.fetch(`${server.base}/slow`)));
    expect(results.every((r) => r.title === 'Slow page')).toBe(true);
    expect(server.count('/slow')).toBe(12);
    expect(server.maxInFlight).toBe(3);
  });

  it('when one host is saturated by requests that hang, then another host is still served, and the queued ones can be aborted', async () => {
    const fetcher = makeFetcher({ allowPrivate: true, perHostConcurrency: 2 });
    const controller = new AbortController();
    const stuck = Array.from({ length: 4 }, () => rejection(fetcher, `${server.base}/hang`, controller.signal));
    await server.arrived('/hang', 2);

    expect((await fetcher.fetch(`${other.base}/plain`)).title).toBe('Plain page');

    controller.abort();
    for (const err of await Promise.all(stuck)) {
      expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
      expect(err.message).toBe('aborted');
    }
    // The two queued fetches never reached the server.
    expect(server.count('/hang')).toBe(2);
  });

  it('when the deadline passes while a fetch is queued for its host, then FETCH_TIMEOUT is thrown and it is never sent', async () => {
    // The rate limit holds the second fetch back for 2 s, far beyond its 300 ms deadline.
    const fetcher = makeFetcher({ allowPrivate: true, perHostRate: 0.5, timeoutMs: 300 });
    expect((await fetcher.fetch(`${server.base}/plain`)).title).toBe('Plain page');
    const started = performance.now();
    const queued = await rejection(fetcher, `${server.base}/plain`);
    expect(queued.code).toBe(ErrorCodes.FETCH_TIMEOUT);
    expect(queued.retryable).toBe(true);
    expect(performance.now() - started).toBeLessThan(1500);
    expect(server.count('/plain')).toBe(1);
  });

  it('when a per-host rate is set, then requests to one host start at least 1/rate apart', async () => {
    // Request creation times, from undici's diagnostics channel: the moment each request is
    // handed to the pool, which is what the limiter spaces. (Server arrival times would add
    // connection set-up jitter.)
    const created: number[] = [];
    const onCreate = (message: unknown): void => {
      const { request } = message as DiagnosticsChannel.RequestCreateMessage;
      if (String(request.origin) === server.base && request.path === '/plain') created.push(performance.now());
    };
    diagnostics.subscribe('undici:request:create', onCreate);
    try {
      const fetcher = makeFetcher({ allowPrivate: true, perHostConcurrency: 8, perHostRate: 10 }); // one per 100 ms
      await fetcher.fetch(`${other.base}/plain`); // warms the code paths up; another host, another budget
      const results = await Promise.all(Array.from({ length: 4 }, () => fetcher.fetch(`${server.base}/plain`)));
      expect(results.map((r) => r.title)).toEqual(Array(4).fill('Plain page'));
    } finally {
      diagnostics.unsubscribe('undici:request:create', onCreate);
    }
    expect(created).toHaveLength(4);
    // Starts are granted exactly 100 ms apart; the slack covers the few ms a busy event loop
    // may put between a grant and the request it lets through. Unlimited, they would all be
    // created within a millisecond or two.
    for (let i = 1; i < created.length; i++) {
      expect(created[i]! - created[i - 1]!).toBeGreaterThanOrEqual(80);
    }
    expect(created[3]! - created[0]!).toBeGreaterThanOrEqual(280);
    expect(server.count('/plain')).toBe(4);
  });

  it('when small pages are fetched one after another from one host, then connections are kept alive and reused', async () => {
    const fetcher = makeFetcher({ allowPrivate: true });
    for (let i = 0; i < 10; i++) await fetcher.fetch(`${server.base}/plain`);
    // Usually two: the next request may be dispatched a moment before undici has marked
    // the previous connection idle, and then opens a second one.
    expect(server.connections).toBeLessThanOrEqual(2);
  });
});

describe('createTitleFetcher: lifecycle and options', () => {
  it('when it is closed, then queued fetches are rejected, in-flight ones finish, and later ones are refused', async () => {
    const fetcher = createTitleFetcher({ timeoutMs: 3000, maxBytes: MiB, maxRedirects: 5, allowPrivate: true, perHostConcurrency: 1 });
    const inFlight = fetcher.fetch(`${server.base}/gate`);
    await server.arrived('/gate', 1);
    const queued = rejection(fetcher, `${server.base}/plain`);

    const closed = fetcher.close();
    const queuedErr = await queued;
    expect(queuedErr.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(queuedErr.retryable).toBe(true);

    server.openGates();
    expect((await inFlight).title).toBe('Gated page');
    await closed;

    const late = await rejection(fetcher, `${server.base}/plain`);
    expect(late.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(late.message).toMatch(/closed/);
    expect(server.count('/plain')).toBe(0);
  });

  it('when the options are out of range, then a RangeError is thrown at creation', () => {
    const base = { timeoutMs: 1000, maxBytes: MiB, maxRedirects: 5 };
    expect(() => createTitleFetcher({ ...base, timeoutMs: 0 })).toThrow(RangeError);
    expect(() => createTitleFetcher({ ...base, perHostConcurrency: 0 })).toThrow(RangeError);
    expect(() => createTitleFetcher({ ...base, perHostRate: -1 })).toThrow(RangeError);
  });

  it('when options come from the configuration, then every fetch setting is carried over', () => {
    const config = loadConfig({
      FETCH_TIMEOUT_MS: '1234',
      FETCH_MAX_BYTES: '4096',
      FETCH_MAX_REDIRECTS: '2',
      FETCH_ALLOW_PRIVATE: 'yes',
      FETCH_ALLOWED_HOSTS: 'Example.com, news.example.org',
      FETCH_PER_HOST_CONCURRENCY: '3',
      FETCH_PER_HOST_RATE: '2.5',
    });
    expect(titleFetcherOptions(config)).toEqual({
      timeoutMs: 1234,
      maxBytes: 4096,
      maxRedirects: 2,
      allowPrivate: true,
      allowedHosts: ['example.com', 'news.example.org'],
      perHostConcurrency: 3,
      perHostRate: 2.5,
    });
  });
});
