// The bench's bare request/reply ceiling (20,000 jobs, 1,000 in flight, echo prefetch 128,
// persistent confirmed requests into a quorum queue, persistent confirmed replies), two ways:
// requester and echo in one process (as the bench runs it), and the echo in a process of its
// own (the pipeline's shape: producer and service are separate processes). Taking turns.
// DURABLE=1: durable reply queue (else exclusive). node bench/probes/ceiling-split.mjs
import { randomUUID } from 'node:crypto';
import { fork } from 'node:child_process';
import amqp from 'amqplib';
const url = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const JOBS = 20000, WINDOW = 1000, PREFETCH = 128;
async function echo(queue) {
  const conn = await amqp.connect(url, { noDelay: true });
  const ec = await conn.createConfirmChannel();
  await ec.prefetch(PREFETCH);
  await ec.consume(queue, (m) => m && ec.publish('', m.properties.replyTo, m.content, { correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json' }, (err) => { if (!err) ec.ack(m); }));
  return conn;
}
if (process.argv[2] === 'echo') { await echo(process.argv[3]); process.send('ready'); await new Promise(() => {}); }
async function loop(split) {
  const tag = randomUUID().slice(0, 8);
  const requests = `probe.ceiling.requests.${tag}`, durable = !!process.env.DURABLE;
  const conn = await amqp.connect(url, { noDelay: true });
  const rq = await conn.createConfirmChannel();
  await rq.assertQueue(requests, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  const replies = durable ? (await rq.assertQueue(`probe.ceiling.replies.${tag}`, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-expires': 600000 } })).queue : (await rq.assertQueue('', { exclusive: true })).queue;
  let child, echoConn;
  if (split) { child = fork(new URL(import.meta.url).pathname, ['echo', requests]); await new Promise((r) => child.once('message', r)); }
  else echoConn = await echo(requests);
  const body = Buffer.from('{"from":1,"to":100}');
  let sent = 0, received = 0;
  const send = () => rq.publish('', requests, body, { correlationId: String(sent++), replyTo: replies, persistent: true, contentType: 'application/json' }, () => {});
  const t0 = performance.now();
  await new Promise((resolve) => { rq.consume(replies, (m) => { if (!m) return; rq.ack(m); received++; if (sent < JOBS) send(); if (received === JOBS) resolve(); }); for (let i = 0; i < WINDOW; i++) send(); });
  const rate = JOBS / ((performance.now() - t0) / 1000);
  child?.kill(); await echoConn?.close();
  await rq.deleteQueue(requests); if (durable) await rq.deleteQueue(replies);
  await conn.close();
  return Math.round(rate);
}
const one = [], two = [];
await loop(false); await loop(true);
for (let i = 0; i < 4; i++) { one.push(await loop(false)); two.push(await loop(true)); }
console.log('one process:', one.join(' '), ' echo in its own process:', two.join(' '));
