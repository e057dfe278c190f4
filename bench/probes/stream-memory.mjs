// The producer's memory while it streams a long ordered list (10^7 primes by default) as JSON
// lines to /dev/null, as `pipeline primes 1 179424673 --chunk 1e7 --json` does: peak RSS,
// V8 heap, and memory outside it (Buffers), sampled every 100 ms. Needs a prime-filter running.
// node bench/probes/stream-memory.mjs [TO] [CHUNK]
import { createWriteStream } from 'node:fs';
import { PipelineClient, rangeJobs, jsonLine } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
const TO = Number(process.argv[2] ?? 179424673), CHUNK = Number(process.argv[3] ?? 1e7);
const out = createWriteStream('/dev/null');
const peak = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
const timer = setInterval(() => { const m = process.memoryUsage(); for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]); }, 100);
const client = await PipelineClient.connect(loadConfig(process.env), createLogger('probe', { level: 'error' }, 2));
const started = performance.now();
let lines = 0;
let blocked;
const outcome = await client.submit(rangeJobs('primes', { from: 1, to: TO }, CHUNK), {
  wait: true, output: 'ordered', request: { from: 1, to: TO }, timeoutMs: 600000,
  onResult: (r) => { lines++; if (!out.write(jsonLine(r))) blocked ??= new Promise((res) => out.once('drain', () => { blocked = undefined; res(); })); return blocked; },
});
clearInterval(timer);
const mb = (x) => (x / 1048576).toFixed(0);
console.log(`${lines} lines in ${((performance.now() - started) / 1000).toFixed(1)} s, complete ${outcome.complete}; peak MB: rss ${mb(peak.rss)}, heap ${mb(peak.heapUsed)}, external ${mb(peak.external)}, arrayBuffers ${mb(peak.arrayBuffers)}`);
await client.close();
