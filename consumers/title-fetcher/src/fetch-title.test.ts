import { getEventListeners } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, LookupFunction, Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { brotliCompressSync, constants as zlibConstants, createGzip, deflateSync, gzipSync } from 'node:zlib';
import iconv from 'iconv-lite';
import { Agent } from 'undici';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { ErrorCodes, PipelineError } from '@amqp-pipeline/shared';
import { BodyDecoder, charsetFromContentType, encodingForLabel, isUtf8Prefix, prescanMetaCharset } from './charset.js';
import { DEFAULT_USER_AGENT, fetchTitle } from './fetch-title.js';
import type { FetchTitleOptions } from './fetch-title.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

const MiB = 1024 * 1024;

/** A response with `body` (string: UTF-8; Buffer: as is) and the given headers. */
function page(body: string | Buffer, headers: Record<string, string> = { 'content-type': 'text/html; charset=utf-8' }): Handler {
  return (_req, res) => {
    res.writeHead(200, headers);
    res.end(body);
  };
}

function redirect(status: number, location: string): Handler {
  return (_req, res) => {
    res.writeHead(status, { location });
    res.end(`moved to ${location}`);
  };
}

function status(code: number, headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    res.writeHead(code, { 'content-type': 'text/html', ...headers });
    res.end(`<title>Error ${code}</title>`);
  };
}

/** Writes `head`, then `filler` every few ms until the client goes away. */
function endless(head: string | Buffer, filler: string, headers: Record<string, string>): Handler {
  return (_req, res) => {
    res.writeHead(200, headers);
    res.write(head);
    const timer = setInterval(() => res.write(filler), 2);
    res.on('close', () => clearInterval(timer));
  };
}

/** Resolves when the response of the next request to `path` is closed (by either side). */
const closeWaiters = new Map<string, () => void>();
function nextClose(path: string): Promise<void> {
  return new Promise((resolve) => closeWaiters.set(path, resolve));
}
/** Resolves when the next request to `path` arrives. */
const arrivalWaiters = new Map<string, () => void>();
function nextArrival(path: string): Promise<void> {
  return new Promise((resolve) => arrivalWaiters.set(path, resolve));
}

const gbkHtml = iconv.encode('<html><head><title>中文标题：测试页面</title></head><body>正文</body></html>', 'gbk');
const routes: Record<string, Handler> = {
  '/plain': page('<!doctype html><html><head><title>A plain page</title></head><body>hi</body></html>'),
  '/og-only': page('<html><head><meta property="og:title" content="Only &amp; Graph"></head><body></body></html>'),
  '/no-title': page('<html><head><meta charset="utf-8"></head><body><p>nothing to see</p></body></html>'),
  '/no-content-type': page('<html><head><title>Sniffed as HTML</title></head></html>', {}),
  '/echo-headers': (req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    const ua = req.headers['user-agent'] ?? '';
    const ae = req.headers['accept-encoding'] ?? '';
    const accept = req.headers.accept ?? '';
    res.end(`<title>${ua} | ${ae} | ${accept}</title>`);
  },

  // --- encodings ---
  '/gbk-header': page(gbkHtml, { 'content-type': 'text/html; charset=GB2312' }),
  '/gbk-meta': page(
    Buffer.concat([
      Buffer.from('<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk">'),
      iconv.encode('<title>元标签声明的编码</title></head></html>', 'gbk'),
    ]),
    { 'content-type': 'text/html' },
  ),
  '/big5-meta': page(iconv.encode('<html><head><meta charset=big5><title>繁體中文標題</title></head></html>', 'big5'), {
    'content-type': 'text/html',
  }),
  '/sjis': page(iconv.encode('<html><head><title>日本語のタイトル</title></head></html>', 'shift_jis'), {
    'content-type': 'text/html; charset=Shift_JIS',
  }),
  '/euc-jp': page(iconv.encode('<html><head><meta charset="euc-jp"><title>日本語のページ</title></head></html>', 'euc-jp'), {
    'content-type': 'text/html',
  }),
  '/euc-kr': page(iconv.encode('<html><head><title>한국어 제목</title></head></html>', 'euc-kr'), {
    'content-type': 'text/html; charset="euc-kr"',
  }),
  '/cp1251': page(
    iconv.encode('<html><head><meta charset="windows-1251"><title>Заголовок страницы</title></head></html>', 'windows-1251'),
    { 'content-type': 'text/html' },
  ),
  '/latin2': page(iconv.encode('<title>Żółć - Łódź</title>', 'iso-8859-2'), { 'content-type': 'text/html; charset=iso-8859-2' }),
  '/undeclared-cp1252': page(iconv.encode('<html><head><title>Café – crème brûlée</title></head></html>', 'windows-1252'), {
    'content-type': 'text/html',
  }),
  '/undeclared-utf8': page('<html><head><title>Grüße aus Köln</title></head></html>', { 'content-type': 'text/html' }),
  '/utf16-bom': page(iconv.encode('<html><head><title>UTF-16 ♥ BOM</title></head></html>', 'utf-16le', { addBOM: true }), {
    // The BOM wins over the header.
    'content-type': 'text/html; charset=iso-8859-1',
  }),

  // --- reading ---
  '/big-script': page(
    '<html><head><script>var s = "<title>fake</title>";' +
      '/* ' +
      'x'.repeat(200 * 1024) +
      ' */</script><title>After the script</title></head></html>',
  ),
  '/chunked': async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    const han = Buffer.from('中'); // 3 bytes, split across two writes below
    const pieces = [
      Buffer.from('<html><head><ti'),
      Buffer.from('tle>Arrives slow'),
      Buffer.from('ly &am'),
      Buffer.concat([Buffer.from('p; '), han.subarray(0, 1)]),
      han.subarray(1),
      Buffer.from('文</tit'),
      Buffer.from('le></head><body>'),
    ];
    for (const piece of pieces) {
      if (res.destroyed) return;
      res.write(piece);
      await delay(15);
    }
    // Then never end: the client must not wait for the end of the body.
    const timer = setInterval(() => res.write('<p>more</p>'), 5);
    res.on('close', () => clearInterval(timer));
  },
  '/early-head': (_req, res) => {
    // A small <head> flushed early, no declared charset, then silence.
    res.writeHead(200, { 'content-type': 'text/html' });
    res.write('<html><head><title>Early flush</title></head>');
  },
  '/title-then-endless': endless('<html><head><title>Found early</title></head><body>', '<p>filler</p>'.repeat(50), {
    'content-type': 'text/html; charset=utf-8',
  }),
  '/title-then-short-rest': (req, res) => {
    // The title at once; the short rest of the page (its length declared) 150 ms later.
    const head = Buffer.from('<html><head><title>Short rest</title></head><body>');
    const rest = Buffer.from(`${'<p>rest of the page</p>'.repeat(200)}</body></html>`);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': String(head.length + rest.length) });
    res.write(head);
    sockets.push(req.socket);
    const timer = setTimeout(() => {
      restSent++;
      res.end(rest);
    }, 150);
    res.on('close', () => clearTimeout(timer));
  },
  '/title-then-stalled-rest': (_req, res) => {
    // Declares a short rest after the title, then never sends it.
    const head = '<html><head><title>Stalled rest</title></head><body>';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': String(head.length + 100) });
    res.write(head);
  },
  '/endless-no-title': endless('<html><head>', '<p>filler</p>'.repeat(50), { 'content-type': 'text/html; charset=utf-8' }),
  '/reset': (req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.write('<html><head><title>cut', () => req.socket.destroy());
  },

  // --- compression ---
  '/gzip': page(gzipSync('<html><head><title>Gzipped page</title></head></html>'), {
    'content-type': 'text/html; charset=utf-8',
    'content-encoding': 'gzip',
  }),
  '/deflate': page(deflateSync('<html><head><title>Deflated page</title></head></html>'), {
    'content-type': 'text/html; charset=utf-8',
    'content-encoding': 'deflate',
  }),
  '/br': page(brotliCompressSync('<html><head><title>Brotli page</title></head></html>'), {
    'content-type': 'text/html; charset=utf-8',
    'content-encoding': 'br',
  }),
  '/corrupt-gzip': page(Buffer.from('this is not gzip at all'), { 'content-type': 'text/html', 'content-encoding': 'gzip' }),
  '/zstd': page(Buffer.from('whatever'), { 'content-type': 'text/html', 'content-encoding': 'zstd' }),
  // '/gzip-bomb' is added in beforeAll (it takes a moment to compress).
  '/gzip-endless': (_req, res) => {
    // An infinite gzip stream of spaces, produced as fast as the client reads it.
    res.writeHead(200, { 'content-type': 'text/html', 'content-encoding': 'gzip' });
    const gzip = createGzip({ level: zlibConstants.Z_BEST_SPEED });
    gzip.pipe(res);
    gzip.write('<html><head>');
    const spaces = Buffer.alloc(64 * 1024, 0x20);
    const pump = (): void => {
      while (!res.destroyed && gzip.write(spaces)) {
        // keep writing until backpressure
      }
      if (!res.destroyed) gzip.once('drain', pump);
    };
    res.on('close', () => gzip.destroy());
    pump();
  },

  // --- redirects ---
  '/redirect/1': redirect(302, '/redirect/2'),
  '/redirect/2': redirect(301, '../plain'),
  '/see-other': redirect(303, '/og-only'),
  '/loop/a': redirect(307, '/loop/b'),
  '/loop/b': redirect(308, '/loop/a#again'),
  '/chain/3': redirect(302, '/chain/2'),
  '/chain/2': redirect(302, '/chain/1'),
  '/chain/1': redirect(302, '/plain'),
  '/to-ftp': redirect(302, 'ftp://example.com/file.html'),
  '/to-nx': redirect(302, 'http://nx.invalid/page'),
  '/redirect-no-location': status(302),

  // --- statuses and types ---
  '/json': page('{"title":"not html"}', { 'content-type': 'application/json' }),
  '/xhtml': page('<html xmlns="http://www.w3.org/1999/xhtml"><head><title>XHTML</title></head></html>', {
    'content-type': 'application/xhtml+xml',
  }),
  '/status/404': status(404),
  '/status/410': status(410),
  '/status/429': status(429, { 'retry-after': '120' }),
  '/status/503': status(503),
  '/slow-headers': () => {
    // Never answers; the connection is closed in afterAll.
  },
};

/** The server side of each request to /title-then-short-rest, and how many rests were sent. */
const sockets: Socket[] = [];
let restSent = 0;

let server: Server;
let base: string;
let agent: Agent;
let refusedUrl: string;

function opts(overrides: Partial<FetchTitleOptions> = {}): FetchTitleOptions {
  return { timeoutMs: 3000, maxBytes: MiB, maxRedirects: 5, dispatcher: agent, ...overrides };
}

/** The PipelineError that fetching the absolute `url` fails with. */
async function rejection(url: string, overrides: Partial<FetchTitleOptions> = {}): Promise<PipelineError> {
  const err: unknown = await fetchTitle(url, opts(overrides)).then(
    (result) => {
      throw new Error(`expected ${url} to fail, got ${JSON.stringify(result)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PipelineError);
  return err as PipelineError;
}

/** The PipelineError that fetching `path` on the test server fails with. */
function failure(path: string, overrides: Partial<FetchTitleOptions> = {}): Promise<PipelineError> {
  return rejection(base + path, overrides);
}

async function title(path: string, overrides: Partial<FetchTitleOptions> = {}): Promise<string> {
  return (await fetchTitle(base + path, opts(overrides))).title;
}

beforeAll(async () => {
  const bomb = gzipSync(Buffer.concat([Buffer.from('<html><head>'), Buffer.alloc(50 * MiB, 0x20)]));
  routes['/gzip-bomb'] = page(bomb, { 'content-type': 'text/html', 'content-encoding': 'gzip' });

  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    res.on('close', () => {
      closeWaiters.get(path)?.();
      closeWaiters.delete(path);
    });
    arrivalWaiters.get(path)?.();
    arrivalWaiters.delete(path);
    const handler = routes[path] ?? status(404);
    void handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent = new Agent();

  // A port nobody listens on: bind one, then free it.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  refusedUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/`;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  await agent?.close();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

describe('fetchTitle: pages', () => {
  it('when a plain UTF-8 page is fetched, then its title, source and URL are returned', async () => {
    await expect(fetchTitle(`${base}/plain`, opts())).resolves.toEqual({
      title: 'A plain page',
      source: 'title',
      url: `${base}/plain`,
    });
  });

  it('when no dispatcher is given, then the global one is used', async () => {
    const { dispatcher: _unused, ...noDispatcher } = opts();
    const result = await fetchTitle(`${base}/plain`, noDispatcher);
    expect(result.title).toBe('A plain page');
  });

  it('when the page only has og:title, then it is returned with source og:title', async () => {
    const result = await fetchTitle(`${base}/og-only`, opts());
    expect(result).toMatchObject({ title: 'Only & Graph', source: 'og:title' });
  });

  it('when the request is sent, then it carries the user agent, accept and accept-encoding headers', async () => {
    expect(await title('/echo-headers')).toBe(
      `${DEFAULT_USER_AGENT} | gzip, deflate, br | text/html,application/xhtml+xml;q=0.9,*/*;q=0.1`,
    );
    expect(await title('/echo-headers', { userAgent: 'custom-agent/1.0' })).toMatch(/^custom-agent\/1\.0 \|/);
  });

  it('when the response has no content-type, then it is read as HTML', async () => {
    expect(await title('/no-content-type')).toBe('Sniffed as HTML');
  });

  it('when the content type is application/xhtml+xml, then it is read as HTML', async () => {
    expect(await title('/xhtml')).toBe('XHTML');
  });

  it('when the page has no title, then NO_TITLE is thrown, not retryable', async () => {
    const err = await failure('/no-title');
    expect(err.code).toBe(ErrorCodes.NO_TITLE);
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ truncated: false });
  });
});

describe('fetchTitle: character encodings', () => {
  it('when a GBK page declares GB2312 in Content-Type, then the Chinese title is decoded', async () => {
    expect(await title('/gbk-header')).toBe('中文标题：测试页面');
  });

  it('when a GBK page declares its charset only in a http-equiv meta, then the title is decoded', async () => {
    expect(await title('/gbk-meta')).toBe('元标签声明的编码');
  });

  it('when a Big5 page declares <meta charset=big5>, then the title is decoded', async () => {
    expect(await title('/big5-meta')).toBe('繁體中文標題');
  });

  it('when a page is Shift_JIS, then the Japanese title is decoded', async () => {
    expect(await title('/sjis')).toBe('日本語のタイトル');
  });

  it('when a page is EUC-JP declared in meta, then the title is decoded', async () => {
    expect(await title('/euc-jp')).toBe('日本語のページ');
  });

  it('when a page is EUC-KR with a quoted charset, then the Korean title is decoded', async () => {
    expect(await title('/euc-kr')).toBe('한국어 제목');
  });

  it('when a page is windows-1251 declared in meta, then the Cyrillic title is decoded', async () => {
    expect(await title('/cp1251')).toBe('Заголовок страницы');
  });

  it('when a page is ISO-8859-2, then the Polish title is decoded', async () => {
    expect(await title('/latin2')).toBe('Żółć - Łódź');
  });

  it('when nothing declares the charset and the bytes are not UTF-8, then windows-1252 is used', async () => {
    expect(await title('/undeclared-cp1252')).toBe('Café – crème brûlée');
  });

  it('when nothing declares the charset and the bytes are UTF-8, then UTF-8 is used', async () => {
    expect(await title('/undeclared-utf8')).toBe('Grüße aus Köln');
  });

  it('when the body starts with a UTF-16LE BOM, then the BOM wins over the header charset', async () => {
    expect(await title('/utf16-bom')).toBe('UTF-16 ♥ BOM');
  });
});

describe('fetchTitle: reading the body', () => {
  it('when the title comes after 200 KB of script, then it is found', async () => {
    expect(await title('/big-script')).toBe('After the script');
  });

  it('when the title arrives in delayed pieces splitting tags, entities and characters, then it is assembled', async () => {
    const closed = nextClose('/chunked');
    expect(await title('/chunked')).toBe('Arrives slowly & 中文');
    await closed; // the never-ending body was abandoned
  });

  it('when the title is complete but the body never ends, then the title is returned and the connection released', async () => {
    const closed = nextClose('/title-then-endless');
    expect(await title('/title-then-endless')).toBe('Found early');
    await closed;
  });

  it('when the title comes first and a short rest of declared length follows, then the title is returned at once and the connection is used again', async () => {
    const oneConnection = new Agent({ connections: 1 });
    try {
      const sentBefore = restSent;
      for (let i = 0; i < 2; i++) {
        // The second request has to wait for the first response's rest (one connection).
        expect(await title('/title-then-short-rest', { dispatcher: oneConnection })).toBe('Short rest');
        expect(restSent - sentBefore, 'the title waited for the rest of its page').toBe(i);
      }
      expect(sockets).toHaveLength(2);
      expect(sockets[0], 'the second request came on a new connection').toBe(sockets[1]);
    } finally {
      await oneConnection.close();
    }
  });

  it('when a short rest is declared but never comes, then the title is returned and the connection is closed soon after', async () => {
    const closed = nextClose('/title-then-stalled-rest');
    expect(await title('/title-then-stalled-rest', { timeoutMs: 60_000 })).toBe('Stalled rest');
    await closed; // within the drain limit (1 s), long before the deadline
  });

  it('when an undeclared-charset page flushes its head and stalls, then the title is returned without waiting', async () => {
    const closed = nextClose('/early-head');
    expect(await title('/early-head')).toBe('Early flush');
    await closed;
  });

  it('when an endless body has no title, then reading stops at maxBytes with NO_TITLE', async () => {
    const err = await failure('/endless-no-title', { maxBytes: 64 * 1024 });
    expect(err.code).toBe(ErrorCodes.NO_TITLE);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('65536');
    expect(err.details).toMatchObject({ bytesRead: 64 * 1024, maxBytes: 64 * 1024, truncated: true });
  });

  it('when an endless body has no title and the cap is high, then the deadline ends it with FETCH_TIMEOUT', async () => {
    const started = performance.now();
    const err = await failure('/endless-no-title', { maxBytes: 1024 * MiB, timeoutMs: 300 });
    expect(err.code).toBe(ErrorCodes.FETCH_TIMEOUT);
    expect(err.retryable).toBe(true);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('when the connection is reset mid-body, then FETCH_FAILED is thrown, retryable', async () => {
    const err = await failure('/reset');
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.retryable).toBe(true);
  });
});

describe('fetchTitle: compression', () => {
  it('when the page is gzip-compressed, then it is decompressed', async () => {
    expect(await title('/gzip')).toBe('Gzipped page');
  });

  it('when the page is deflate-compressed, then it is decompressed', async () => {
    expect(await title('/deflate')).toBe('Deflated page');
  });

  it('when the page is brotli-compressed, then it is decompressed', async () => {
    expect(await title('/br')).toBe('Brotli page');
  });

  it('when a gzip bomb (50 MB of spaces) is served with maxBytes 1 MB, then reading stops at the cap quickly', async () => {
    const started = performance.now();
    const err = await failure('/gzip-bomb', { maxBytes: MiB });
    expect(err.code).toBe(ErrorCodes.NO_TITLE);
    expect(err.details).toMatchObject({ bytesRead: MiB, truncated: true });
    expect(performance.now() - started).toBeLessThan(1500);
  });

  it('when an endless gzip stream is served, then reading stops at the cap and the connection is released', async () => {
    const closed = nextClose('/gzip-endless');
    const err = await failure('/gzip-endless', { maxBytes: MiB });
    expect(err.code).toBe(ErrorCodes.NO_TITLE);
    expect(err.details).toMatchObject({ bytesRead: MiB });
    await closed;
  });

  it('when the gzip data is corrupt, then FETCH_FAILED is thrown, not retryable', async () => {
    const err = await failure('/corrupt-gzip');
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.retryable).toBe(false);
  });

  it('when the content-encoding is unsupported, then FETCH_FAILED is thrown, not retryable', async () => {
    const err = await failure('/zstd');
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('zstd');
  });
});

describe('fetchTitle: redirects', () => {
  it('when there is a chain of two redirects, then it is followed and the final URL reported', async () => {
    await expect(fetchTitle(`${base}/redirect/1`, opts())).resolves.toEqual({
      title: 'A plain page',
      source: 'title',
      url: `${base}/plain`,
    });
  });

  it('when a 303 redirect is answered, then the target is fetched with GET', async () => {
    const result = await fetchTitle(`${base}/see-other`, opts());
    expect(result).toEqual({ title: 'Only & Graph', source: 'og:title', url: `${base}/og-only` });
  });

  it('when redirects loop, then FETCH_FAILED is thrown naming the loop, not retryable', async () => {
    const err = await failure('/loop/a');
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/redirect loop/);
  });

  it('when there are more redirects than maxRedirects, then FETCH_FAILED is thrown, not retryable', async () => {
    const err = await failure('/chain/3', { maxRedirects: 2 });
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/too many redirects/);
    // Exactly as many as allowed is fine.
    expect(await title('/chain/3', { maxRedirects: 3 })).toBe('A plain page');
  });

  it('when maxRedirects is 0 and the page redirects, then FETCH_FAILED is thrown', async () => {
    const err = await failure('/redirect/1', { maxRedirects: 0 });
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
  });

  it('when a redirect points to a non-http URL, then INVALID_URL is thrown', async () => {
    const err = await failure('/to-ftp');
    expect(err.code).toBe(ErrorCodes.INVALID_URL);
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ redirectedFrom: `${base}/to-ftp` });
  });

  it('when a redirect status has no Location, then HTTP_STATUS is thrown, not retryable', async () => {
    const err = await failure('/redirect-no-location');
    expect(err.code).toBe(ErrorCodes.HTTP_STATUS);
    expect(err.retryable).toBe(false);
  });
});

describe('fetchTitle: statuses and content types', () => {
  it('when the content type is application/json, then NOT_HTML is thrown, not retryable', async () => {
    const err = await failure('/json');
    expect(err.code).toBe(ErrorCodes.NOT_HTML);
    expect(err.retryable).toBe(false);
  });

  it('when the server answers 404 or 410, then HTTP_STATUS is thrown, not retryable', async () => {
    for (const code of [404, 410]) {
      const err = await failure(`/status/${code}`);
      expect(err.code).toBe(ErrorCodes.HTTP_STATUS);
      expect(err.retryable).toBe(false);
      expect(err.message).toBe(`HTTP ${code} from ${base}/status/${code}`);
    }
  });

  it('when the server answers 503, then HTTP_STATUS is thrown, retryable', async () => {
    const err = await failure('/status/503');
    expect(err.code).toBe(ErrorCodes.HTTP_STATUS);
    expect(err.retryable).toBe(true);
  });

  it('when the server answers 429, then HTTP_STATUS is thrown, retryable, with Retry-After', async () => {
    const err = await failure('/status/429');
    expect(err.code).toBe(ErrorCodes.HTTP_STATUS);
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ status: 429, retryAfter: '120' });
  });
});

describe('fetchTitle: failures', () => {
  it('when the headers take longer than timeoutMs, then FETCH_TIMEOUT is thrown, retryable, on time', async () => {
    const started = performance.now();
    const err = await failure('/slow-headers', { timeoutMs: 300 });
    expect(err.code).toBe(ErrorCodes.FETCH_TIMEOUT);
    expect(err.retryable).toBe(true);
    expect(performance.now() - started).toBeLessThan(1500);
  });

  it('when the caller aborts the signal, then FETCH_FAILED "aborted" is thrown, retryable', async () => {
    const controller = new AbortController();
    const arrived = nextArrival('/slow-headers');
    const pending = failure('/slow-headers', { signal: controller.signal });
    await arrived;
    controller.abort();
    const err = await pending;
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.retryable).toBe(true);
    expect(err.message).toBe('aborted');
  });

  it('when many fetches share the caller signal and it aborts, then every one still running fails "aborted" and the finished ones left nothing on it', async () => {
    const controller = new AbortController();
    const done = await Promise.all(Array.from({ length: 20 }, () => title('/plain', { signal: controller.signal })));
    expect(done).toEqual(Array(20).fill('A plain page'));
    const arrived = nextArrival('/slow-headers');
    const pending = Array.from({ length: 3 }, () => failure('/slow-headers', { signal: controller.signal }));
    await arrived;
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(3);
    controller.abort();
    for (const err of await Promise.all(pending)) {
      expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
      expect(err.message).toBe('aborted');
    }
  });

  it('when the signal is already aborted, then FETCH_FAILED "aborted" is thrown', async () => {
    const err = await failure('/plain', { signal: AbortSignal.abort() });
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.message).toBe('aborted');
  });

  it('when the connection is refused, then FETCH_FAILED is thrown, retryable, with the error code', async () => {
    const err = await rejection(refusedUrl);
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('when the URL does not parse, then INVALID_URL is thrown, not retryable', async () => {
    for (const url of ['not a url', '', '/relative/path', 'http://']) {
      const err = await rejection(url);
      expect(err.code, url).toBe(ErrorCodes.INVALID_URL);
      expect(err.retryable).toBe(false);
    }
  });

  it('when the URL is not http or https, then INVALID_URL is thrown', async () => {
    for (const url of ['ftp://example.com/file', 'file:///etc/passwd', 'javascript:alert(1)', 'data:text/html,<title>x</title>']) {
      const err = await rejection(url);
      expect(err.code, url).toBe(ErrorCodes.INVALID_URL);
      expect(err.retryable).toBe(false);
    }
  });
});

/** The error Node's dns.lookup gives when getaddrinfo fails with `code` for `hostname`. */
function getaddrinfoError(code: 'ENOTFOUND' | 'EAI_AGAIN', hostname: string): NodeJS.ErrnoException {
  const errno = code === 'ENOTFOUND' ? -3008 : -3001; // UV_EAI_NONAME, UV_EAI_AGAIN
  return Object.assign(new Error(`getaddrinfo ${code} ${hostname}`), { code, errno, syscall: 'getaddrinfo', hostname });
}

describe('fetchTitle: DNS failures', () => {
  /**
   * The error that fetching `url` fails with through an Agent whose connections look names
   * up with a lookup failing with `cause` (IP literals, such as the test server's, are not
   * looked up), and the names it was asked for. Nothing is sent to a DNS server.
   */
  async function withFailingLookup(url: string, cause: NodeJS.ErrnoException): Promise<{ err: PipelineError; lookups: string[] }> {
    const lookups: string[] = [];
    const lookup: LookupFunction = (hostname, options, callback) => {
      lookups.push(hostname);
      process.nextTick(() => callback(cause, options.all ? [] : ''));
    };
    const failing = new Agent({ connect: { lookup } });
    try {
      return { err: await rejection(url, { dispatcher: failing }), lookups };
    } finally {
      await failing.close();
    }
  }

  it('when DNS answers that the name does not exist (ENOTFOUND), then DNS_NOT_FOUND is thrown, not retryable', async () => {
    const cause = getaddrinfoError('ENOTFOUND', 'nx.invalid');
    const { err, lookups } = await withFailingLookup('http://nx.invalid/page', cause);
    expect(err.code).toBe(ErrorCodes.DNS_NOT_FOUND);
    expect(err.retryable).toBe(false);
    expect(err.details).toEqual({ url: 'http://nx.invalid/page', host: 'nx.invalid', code: 'ENOTFOUND' });
    expect(err.cause).toBe(cause);
    expect(lookups).toEqual(['nx.invalid']);
  });

  it('when the resolver cannot answer for now (EAI_AGAIN), then FETCH_FAILED is thrown, retryable', async () => {
    const cause = getaddrinfoError('EAI_AGAIN', 'nx.invalid');
    const { err, lookups } = await withFailingLookup('http://nx.invalid/page', cause);
    expect(err.code).toBe(ErrorCodes.FETCH_FAILED);
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ url: 'http://nx.invalid/page', code: 'EAI_AGAIN' });
    expect(err.cause).toBe(cause);
    expect(lookups).toEqual(['nx.invalid']);
  });

  it('when a redirect leads to a name that does not exist, then DNS_NOT_FOUND names that hop', async () => {
    const { err, lookups } = await withFailingLookup(`${base}/to-nx`, getaddrinfoError('ENOTFOUND', 'nx.invalid'));
    expect(err.code).toBe(ErrorCodes.DNS_NOT_FOUND);
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ url: 'http://nx.invalid/page', host: 'nx.invalid' });
    expect(lookups).toEqual(['nx.invalid']);
  });
});

describe('fetchTitle: admit hook', () => {
  it('when admit is given, then it is called before every hop and each hop is released once done with', async () => {
    const events: string[] = [];
    const admit = async (url: URL, signal: AbortSignal): Promise<() => void> => {
      expect(signal.aborted).toBe(false);
      events.push(`admit ${url.pathname}`);
      return () => events.push(`release ${url.pathname}`);
    };
    expect(await title('/redirect/1', { admit })).toBe('A plain page');
    expect(events).toEqual([
      'admit /redirect/1',
      'release /redirect/1',
      'admit /redirect/2',
      'release /redirect/2',
      'admit /plain',
      'release /plain',
    ]);
  });

  it('when a hop fails, then its admission is still released', async () => {
    const released: string[] = [];
    const admit = async (url: URL): Promise<() => void> => () => released.push(url.pathname);
    const err = await failure('/status/404', { admit });
    expect(err.code).toBe(ErrorCodes.HTTP_STATUS);
    expect(released).toEqual(['/status/404']);
  });

  it('when admit throws a PipelineError, then the fetch fails with it and nothing is requested', async () => {
    const refusal = new PipelineError(ErrorCodes.LIMIT_EXCEEDED, 'not now');
    const arrivals: string[] = [];
    const admit = async (url: URL): Promise<() => void> => {
      if (url.pathname === '/plain') throw refusal;
      arrivals.push(url.pathname);
      return () => {};
    };
    await expect(fetchTitle(`${base}/redirect/2`, opts({ admit }))).rejects.toBe(refusal);
    expect(arrivals).toEqual(['/redirect/2']);
  });

  it('when the deadline passes while admit waits, then FETCH_TIMEOUT is thrown', async () => {
    const admit = (_url: URL, signal: AbortSignal): Promise<() => void> =>
      new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    const err = await failure('/plain', { admit, timeoutMs: 100 });
    expect(err.code).toBe(ErrorCodes.FETCH_TIMEOUT);
    expect(err.retryable).toBe(true);
  });
});

describe('fetchTitle: options', () => {
  it('when the limits are not positive numbers, then a RangeError is thrown before any request', async () => {
    await expect(fetchTitle(`${base}/plain`, opts({ timeoutMs: 0 }))).rejects.toThrow(RangeError);
    await expect(fetchTitle(`${base}/plain`, opts({ maxBytes: -1 }))).rejects.toThrow(RangeError);
    await expect(fetchTitle(`${base}/plain`, opts({ maxRedirects: 1.5 }))).rejects.toThrow(RangeError);
  });
});

// The charset helpers are internal to the fetcher; their edge cases are pinned down here.
describe('charset', () => {
  const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

  it('when labels are browser aliases, then they resolve to WHATWG encoding names', () => {
    expect(encodingForLabel('gb2312')).toBe('GBK');
    expect(encodingForLabel(' LATIN1 ')).toBe('windows-1252');
    expect(encodingForLabel('x-sjis')).toBe('Shift_JIS');
    expect(encodingForLabel('utf8')).toBe('UTF-8');
    expect(encodingForLabel('iso-2022-kr')).toBeUndefined(); // the "replacement" encoding
    expect(encodingForLabel('no-such-charset')).toBeUndefined();
  });

  it('when a Content-Type has a charset parameter, then it is found in any usual spelling', () => {
    expect(charsetFromContentType('text/html; charset=UTF-8')).toBe('UTF-8');
    expect(charsetFromContentType('text/html;charset="big5"')).toBe('Big5');
    expect(charsetFromContentType('text/html; foo=bar; Charset = euc-kr ; x=y')).toBe('EUC-KR');
    expect(charsetFromContentType('text/html')).toBeUndefined();
    expect(charsetFromContentType('text/html; charset=bogus')).toBeUndefined();
    expect(charsetFromContentType(undefined)).toBeUndefined();
  });

  it('when prescanning, then meta charset and http-equiv declarations are found', () => {
    expect(prescanMetaCharset(bytes('<html><head><meta charset="gbk">'))).toBe('GBK');
    expect(prescanMetaCharset(bytes("<META CHARSET='Shift_JIS'/>"))).toBe('Shift_JIS');
    expect(prescanMetaCharset(bytes('<meta charset=euc-jp>'))).toBe('EUC-JP');
    expect(
      prescanMetaCharset(bytes('<meta content="text/html; charset=windows-1251" http-equiv="Content-Type">')),
    ).toBe('windows-1251');
  });

  it('when prescanning, then declarations that do not count are skipped', () => {
    // Inside a comment.
    expect(prescanMetaCharset(bytes('<!-- <meta charset="gbk"> --><meta charset="big5">'))).toBe('Big5');
    // content=...charset without http-equiv=content-type.
    expect(prescanMetaCharset(bytes('<meta content="text/html; charset=gbk"><meta charset=utf-8>'))).toBe('UTF-8');
    // A '>' inside another tag's quoted attribute does not end that tag.
    expect(prescanMetaCharset(bytes('<a title="<meta charset=gbk>"><meta charset=koi8-r>'))).toBe('KOI8-R');
    // Unknown label: keep looking.
    expect(prescanMetaCharset(bytes('<meta charset="bogus"><meta charset="iso-8859-7">'))).toBe('ISO-8859-7');
    // UTF-16 cannot be declared in ASCII: read as UTF-8.
    expect(prescanMetaCharset(bytes('<meta charset="utf-16le">'))).toBe('UTF-8');
    // Beyond the first 1024 bytes.
    expect(prescanMetaCharset(bytes(' '.repeat(1024) + '<meta charset="gbk">'))).toBeUndefined();
  });

  it('when the bytes end inside a meta tag, then nothing is found yet', () => {
    expect(prescanMetaCharset(bytes('<meta charset="gb'))).toBeUndefined();
    expect(prescanMetaCharset(bytes('<meta charset=gbk'))).toBeUndefined();
    expect(prescanMetaCharset(bytes('<meta charset=gbk>'))).toBe('GBK');
  });

  it('when checking for UTF-8, then a character cut off at the end is allowed but bad bytes are not', () => {
    const han = Buffer.from('ab中');
    expect(isUtf8Prefix(han)).toBe(true);
    expect(isUtf8Prefix(han.subarray(0, 3))).toBe(true);
    expect(isUtf8Prefix(han.subarray(0, 4))).toBe(true);
    expect(isUtf8Prefix(Buffer.from([0x61, 0xe9, 0x62]))).toBe(false);
    expect(isUtf8Prefix(Buffer.from([0x61, 0xbf]))).toBe(false);
  });

  it('when GBK bytes are split at every position, then the decoded text is the same', () => {
    const text = '<meta charset="gbk"><title>中文标题</title>';
    const encoded = iconv.encode(text, 'gbk');
    for (let i = 0; i <= encoded.length; i++) {
      const decoder = new BodyDecoder();
      const out = decoder.write(encoded.subarray(0, i)) + decoder.write(encoded.subarray(i)) + decoder.end();
      expect(out, `split at ${i}`).toBe(text);
      expect(decoder.source).toBe('meta');
    }
  });

  it('when a BOM, a header charset and a meta disagree, then the BOM wins, then the header', () => {
    const withBom = new BodyDecoder('windows-1251');
    expect(withBom.write(Buffer.from('\ufeff<title>é</title>')) + withBom.end()).toBe('<title>é</title>');
    expect(withBom.source).toBe('bom');

    const header = new BodyDecoder('windows-1251');
    expect(header.write(bytes('<meta charset="gbk"><title>\xc0</title>')) + header.end()).toBe(
      '<meta charset="gbk"><title>А</title>',
    );
    expect(header.source).toBe('header');
  });
});
