/**
 * A collector stand-in for the tracing rows, in a process of its own as a collector would be:
 * an OTLP/HTTP server on 127.0.0.1, port 0, that takes trace exports (protobuf, the default,
 * or JSON; gzip or not), counts the spans in them and answers 200 with an empty response, as
 * a collector does. It keeps nothing. Says its port to the parent (fork); answers 'count'
 * with what it took so far.
 */
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';

if (!process.send) throw new Error('usage: fork(otlp-sink.js)');

const took = { requests: 0, bytes: 0, spans: 0, byService: {} as Record<string, number> };

/** Reads a protobuf varint at `at`: [value, next offset]. */
function varint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let shift = 1;
  for (;;) {
    const b = buf[at++]!;
    value += (b & 0x7f) * shift;
    if (b < 0x80) return [value, at];
    shift *= 128;
  }
}

/** The length-delimited fields numbered `field` of a protobuf message, as sub-buffers. */
function fields(buf: Buffer, field: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const [key, next] = varint(buf, at);
    at = next;
    const wire = key & 7;
    if (wire === 0) at = varint(buf, at)[1];
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const [len, start] = varint(buf, at);
      if (key >>> 3 === field) out.push(buf.subarray(start, start + len));
      at = start + len;
    } else throw new Error(`protobuf wire type ${wire} not expected in a trace export`);
  }
  return out;
}

/** A resource's service.name: Resource.attributes (1) > KeyValue {key (1), value (2) > string_value (1)}. */
function serviceName(resource: Buffer | undefined): string {
  for (const kv of resource ? fields(resource, 1) : []) {
    if (fields(kv, 1)[0]?.toString('utf8') !== 'service.name') continue;
    const value = fields(kv, 2)[0];
    return value ? (fields(value, 1)[0]?.toString('utf8') ?? '?') : '?';
  }
  return '?';
}

/** Counts the spans of an ExportTraceServiceRequest by service: resource_spans (1) > resource (1), scope_spans (2) > spans (2). */
function countSpans(body: Buffer, json: boolean): void {
  const add = (service: string, n: number) => {
    took.spans += n;
    took.byService[service] = (took.byService[service] ?? 0) + n;
  };
  if (json) {
    type Json = { resourceSpans?: { resource?: { attributes?: { key: string; value: { stringValue?: string } }[] }; scopeSpans?: { spans?: unknown[] }[] }[] };
    for (const r of (JSON.parse(body.toString('utf8')) as Json).resourceSpans ?? []) {
      const service = r.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
      add(service, (r.scopeSpans ?? []).reduce((m, s) => m + (s.spans?.length ?? 0), 0));
    }
    return;
  }
  for (const r of fields(body, 1)) {
    let n = 0;
    for (const scope of fields(r, 2)) n += fields(scope, 2).length;
    add(serviceName(fields(r, 1)[0]), n);
  }
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body = Buffer.concat(chunks);
    took.requests++;
    took.bytes += body.length;
    const json = (req.headers['content-type'] ?? '').includes('json');
    try {
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      if (req.method === 'POST' && req.url === '/v1/traces') countSpans(body, json);
    } catch {
      res.writeHead(400).end();
      return;
    }
    res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : undefined);
  });
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.send!({ port: typeof address === 'object' && address ? address.port : 0 });
});
process.on('message', (m) => {
  if (m === 'count') process.send!({ ...took });
});
process.once('disconnect', () => server.close(() => process.exit(0)));
