// What carrying several small jobs in one message could give (issue 22's "close the gap"):
// the bare request/reply loop of the pipeline suite (persistent confirmed requests into a quorum
// queue, an echo that computes each range's primes with the prime-filter's small-range sieve,
// publishes a persistent confirmed reply into a durable queue and then acks), with K jobs a
// message and K results a reply. Same 20,000 jobs, 1,000 in flight, prefetch 128 messages.
// Rounds take turns over K. Usage: node bench/probes/bundle-ceiling.mjs [K,K,...] (run from the repo).
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { smallPrimesBetween } from '../../consumers/prime-filter/dist/small-range.js';

const URL_ = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const JOBS = 20_000;
const KS = (process.argv[2] ?? '1,5,20,50').split(',').map(Number);
const ROUNDS = 3;

async function loop(k) {
  const tag = randomUUID().slice(0, 8);
  const requests = `bench.bundle.requests.${tag}`;
  const replies = `bench.bundle.replies.${tag}`;
  const a = await amqp.connect(URL_, { noDelay: true });
  const b = await amqp.connect(URL_, { noDelay: true });
  try {
    const rq = await a.createConfirmChannel();
    await rq.assertQueue(requests, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await rq.assertQueue(replies, { durable: true, arguments: { 'x-expires': 600_000 } });
    const ec = await b.createConfirmChannel();
    await ec.prefetch(128);
    await ec.consume(requests, (m) => {
      if (!m) return;
      const jobs = JSON.parse(m.content.toString());
      const results = jobs.map((j) => ({ id: j.id, ok: true, kind: 'primes', job: { from: j.from, to: j.to }, primes: Array.from(smallPrimesBetween(j.from, j.to)) }));
      ec.publish('', m.properties.replyTo, Buffer.from(JSON.stringify(results)), { correlationId: m.properties.correlationId, persistent: true }, (err) => err || ec.ack(m));
    });
    const messages = Math.ceil(JOBS / k);
    const window = Math.max(1, Math.round(1000 / k));
    let sent = 0;
    let got = 0;
    let primes = 0;
    const send = () => {
      const first = sent++ * k;
      const jobs = [];
      for (let i = first; i < Math.min(first + k, JOBS); i++) jobs.push({ id: String(i), from: i * 100, to: i * 100 + 99 });
      rq.publish('', requests, Buffer.from(JSON.stringify(jobs)), { correlationId: String(sent), replyTo: replies, persistent: true }, () => {});
    };
    const started = performance.now();
    await new Promise((resolve) => {
      rq.consume(replies, (m) => {
        if (!m) return;
        for (const r of JSON.parse(m.content.toString())) primes += r.primes.length;
        rq.ack(m);
        if (sent < messages) send();
        if (++got === messages) resolve();
      });
      for (let i = 0; i < Math.min(window, messages); i++) send();
    });
    const rate = JOBS / ((performance.now() - started) / 1000);
    await rq.deleteQueue(requests);
    await rq.deleteQueue(replies);
    return { rate, primes };
  } finally {
    await a.close().catch(() => {});
    await b.close().catch(() => {});
  }
}

const rates = new Map(KS.map((k) => [k, []]));
for (const k of KS) await loop(k); // warm-up
for (let r = 0; r < ROUNDS; r++) for (const k of KS) rates.get(k).push((await loop(k)).rate);
for (const k of KS) {
  const xs = rates.get(k).sort((x, y) => x - y);
  console.log(`K=${k}: ${Math.round(xs[Math.floor(xs.length / 2)])} jobs/s (rounds ${xs.map(Math.round).join(' ')})`);
}
