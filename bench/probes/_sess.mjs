import { randomUUID } from 'node:crypto';
import { PipelineClient, rangeJob } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import { bareRequester } from './requester.mjs';
const config = loadConfig(process.env);
const rq = await bareRequester(config.AMQP_URL, `probe.replies.${randomUUID().slice(0,8)}`);
const client = await PipelineClient.connect(config, createLogger('probe', { level: 'error' }, 2));
const session = await client.session();
const v = { bare: () => rq.call('pipeline.ranges', 'range.primes'), session: () => session.call(rangeJob('primes', { from: 1, to: 100 })) };
const only = process.env.ONLY;
const t = Object.fromEntries(Object.keys(v).map(k => [k, []]));
for (let r = 0; r < 12; r++) for (const [k, fn] of Object.entries(v)) { if (only && k !== only) continue; for (let i = 0; i < 200; i++) { const s = performance.now(); await fn(); if (r) t[k].push(performance.now() - s); } }
for (const [k, xs] of Object.entries(t)) { if (!xs.length) continue; xs.sort((a, b) => a - b); console.log(k.padEnd(12), 'p50', xs[xs.length >> 1].toFixed(3), 'p90', xs[Math.floor(xs.length * 0.9)].toFixed(3)); }
await session.close(); await client.close(); await rq.close();
