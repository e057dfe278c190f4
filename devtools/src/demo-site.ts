import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import iconv from 'iconv-lite';

/** A page of the demo site: its path, the title a reader sees, and how it is served. */
interface Page {
  path: string;
  expectedTitle: string;
  contentType: string;
  body: Buffer;
}

const html = (title: string, extra = '') =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${extra}<p>Served by the amqp-pipeline demo.</p></body></html>`;

/** Five pages, like the original example's five sites, each testing a part of title extraction. */
export const DEMO_PAGES: readonly Page[] = [
  { path: '/', expectedTitle: 'amqp-pipeline demo: home', contentType: 'text/html; charset=utf-8', body: Buffer.from(html('amqp-pipeline demo: home')) },
  {
    path: '/menu',
    expectedTitle: 'Fish & Chips — today’s menu',
    contentType: 'text/html; charset=utf-8',
    body: Buffer.from(html('Fish &amp; Chips &mdash; today&rsquo;s menu')),
  },
  {
    path: '/news',
    expectedTitle: 'Whitespace is collapsed',
    contentType: 'text/html; charset=utf-8',
    body: Buffer.from(html('\n    Whitespace\n\t  is   collapsed\n  ')),
  },
  {
    path: '/zh',
    expectedTitle: '消息队列演示',
    contentType: 'text/html; charset=gbk',
    body: iconv.encode('<html><head><title>消息队列演示</title></head><body>你好</body></html>', 'gbk'),
  },
  {
    path: '/big',
    expectedTitle: 'A title after a lot of script',
    contentType: 'text/html; charset=utf-8',
    body: Buffer.from(
      `<html><head><script>${'var x = 1;\n'.repeat(5000)}</script><title>A title after a lot of script</title></head><body></body></html>`,
    ),
  },
];

export interface DemoSite {
  server: Server;
  /** Absolute URLs of the pages, in DEMO_PAGES order. */
  urls: string[];
  close(): Promise<void>;
}

/** Serves DEMO_PAGES on 127.0.0.1 on a free port. */
export async function startDemoSite(): Promise<DemoSite> {
  const byPath = new Map(DEMO_PAGES.map((p) => [p.path, p]));
  const server = createServer((req, res) => {
    const page = byPath.get(req.url ?? '');
    if (!page) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': page.contentType, 'content-length': page.body.length }).end(page.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    urls: DEMO_PAGES.map((p) => `http://127.0.0.1:${port}${p.path}`),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
