import { randomUUID } from 'node:crypto';
import { bareRequester } from './requester.mjs';
const rq = await bareRequester('amqp://guest:guest@127.0.0.1:5672', `probe.replies.${randomUUID().slice(0,8)}`);
const targets = JSON.parse(process.env.TARGETS);
const t = Object.fromEntries(Object.keys(targets).map(k => [k, []]));
for (let r = 0; r < 12; r++) for (const [k, [ex, key]] of Object.entries(targets)) for (let i = 0; i < 200; i++) { const s = performance.now(); await rq.call(ex, key); if (r) t[k].push(performance.now() - s); }
for (const [k, xs] of Object.entries(t)) { xs.sort((a, b) => a - b); console.log(k.padEnd(12), 'p50', xs[xs.length >> 1].toFixed(3), 'p90', xs[Math.floor(xs.length * 0.9)].toFixed(3)); }
await rq.close();
