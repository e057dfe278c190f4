import { randomUUID } from 'node:crypto';
import { bareRequester } from './requester.mjs';
const rq = await bareRequester('amqp://guest:guest@127.0.0.1:5672', `probe.replies.${randomUUID().slice(0,8)}`);
const t = [];
for (let i = 0; i < Number(process.env.N ?? 3000); i++) { const s = performance.now(); await rq.call(process.env.EX ?? 'pipeline.ranges', process.env.KEY ?? 'range.primes'); t.push(performance.now() - s); }
t.sort((a, b) => a - b); console.log('p50', t[t.length >> 1].toFixed(3), 'p90', t[Math.floor(t.length * 0.9)].toFixed(3));
await rq.close();
