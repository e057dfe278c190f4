// What each feature of the pipeline's messages costs the broker: a bare request/reply loop
// (20,000 jobs, 1,000 in flight, durable reply queue), with features added through V (comma
// separated): dlx (delivery limit and dead-letter exchange on the work queue), topic (jobs
// through a topic exchange), props (message id, type, app id, timestamp, two headers),
// noheaders (the same without headers), batchonly (one header on jobs), mandatory, ackmulti
// (the echo consumer acks several at once), replymulti (the requester acks replies several at once),
// replylate (replies acked in runs of RLATE, default 2000, as at the producer's checkpoints),
// cqv2 (the reply queue a classic queue version 2, RabbitMQ 3.10+),
// globalqos / consumerqos (the requester reads replies under a channel-wide / per-consumer prefetch, RPF, 256). PF = its prefetch (16), W = jobs in flight.
// With BEAM_PID (the broker's beam.smp, local broker only) it also prints the broker's CPU per job.
// V=topic,props PF=128 BEAM_PID=$(pgrep -f beam.smp | head -1) node bench/probes/broker-cost.mjs
import amqp from 'amqplib';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
const beam = Number(process.env.BEAM_PID);
const cpu = () => { if (!beam) return NaN; const f = readFileSync(`/proc/${beam}/stat`, 'utf8').split(' '); return Number(f[13]) + Number(f[14]); };
const V = new Set((process.env.V ?? '').split(','));
const JOBS = 20000, WINDOW = Number(process.env.W ?? 1000), PREFETCH = Number(process.env.PF ?? 16);
const url = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const tag = randomUUID().slice(0, 8);
const requester = await amqp.connect(url, { noDelay: true });
const echo = await amqp.connect(url, { noDelay: true });
const rq = await requester.createConfirmChannel();
let reqQ = `bench.probe.requests.${tag}`;
const qargs = { 'x-queue-type': process.env.QT ?? 'quorum' };
if (V.has('dlx')) Object.assign(qargs, { 'x-delivery-limit': 5, 'x-dead-letter-exchange': 'pipeline.dead-letter' });
await rq.assertQueue(reqQ, { durable: true, arguments: qargs });
let exchange = '', rk = reqQ;
if (V.has('topic')) { await rq.assertExchange(`bench.probe.x.${tag}`, 'topic', { durable: false, autoDelete: true }); await rq.bindQueue(reqQ, `bench.probe.x.${tag}`, 'range.primes'); exchange = `bench.probe.x.${tag}`; rk = 'range.primes'; }
const replies = `bench.probe.replies.${tag}`;
await rq.assertQueue(replies, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-expires': 600000, ...(V.has('cqv2') ? { 'x-queue-version': 2 } : {}) } });
const ec = await echo.createConfirmChannel();
await ec.prefetch(PREFETCH);
let seq = 0; let pendingTag = 0; let flushSched = false; let closing = false;
await ec.consume(reqQ, (m) => {
  if (!m) return;
  const props = { correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json' };
  if (V.has('props')) Object.assign(props, { type: 'pipeline.result.v1', appId: 'prime-filter', timestamp: Math.floor(Date.now() / 1000), headers: { 'x-pipeline-kind': 'primes', 'x-pipeline-seq': ++seq } });
  if (V.has('noheaders') || V.has('batchonly')) Object.assign(props, { type: 'pipeline.result.v1', appId: 'prime-filter', timestamp: Math.floor(Date.now() / 1000) });
  if (V.has('mandatory')) props.mandatory = true;
  const done = V.has('ackmulti') ? () => { pendingTag = Math.max(pendingTag, m.fields.deliveryTag); if (!flushSched) { flushSched = true; setImmediate(() => { flushSched = false; if (!closing) ec.ack({ fields: { deliveryTag: pendingTag } }, true); }); } } : () => ec.ack(m);
  ec.publish('', m.properties.replyTo, Buffer.from('{"ok":true,"kind":"primes","primes":[2,3,5,7,11,13,17,19,23,29,31,37,41,43,47,53,59,61,67,71,73,79,83,89,97]}'), props, (err) => { if (!err) done(); });
});
const body = Buffer.from('{"from":1,"to":100}');
let sent = 0, received = 0, pseq = 0;
const send = () => {
  const id = String(sent++);
  const props = { correlationId: id, replyTo: replies, persistent: true, contentType: 'application/json' };
  if (V.has('props')) Object.assign(props, { messageId: randomUUID(), type: 'pipeline.job.range.v1', appId: 'pipeline', timestamp: Math.floor(Date.now() / 1000), headers: { 'x-pipeline-batch': '20261129T120000Z-abcdef12', 'x-pipeline-seq': ++pseq } });
  if (V.has('noheaders')) Object.assign(props, { messageId: randomUUID(), type: 'pipeline.job.range.v1', appId: 'pipeline', timestamp: Math.floor(Date.now() / 1000) });
  if (V.has('batchonly')) Object.assign(props, { messageId: randomUUID(), type: 'pipeline.job.range.v1', appId: 'pipeline', timestamp: Math.floor(Date.now() / 1000), headers: { 'x-pipeline-batch': '20261129T120000Z-abcdef12' } });
  if (V.has('mandatory')) props.mandatory = true;
  rq.publish(exchange, rk, body, props, () => {});
};
const c0 = cpu(); const t0 = performance.now();
await new Promise((resolve) => {
  let replyTag = 0; let replyFlush = false;
  // replylate: replies acked in runs of RLATE (2000) with one multiple ack, as the producer's checkpoints do.
  const RLATE = Number(process.env.RLATE ?? 2000); let lateCount = 0;
  const ackReply = V.has('replylate') ? (m) => { if (++lateCount % RLATE === 0 || lateCount === JOBS) rq.ack(m, true); } : V.has('replymulti') ? (m) => { replyTag = Math.max(replyTag, m.fields.deliveryTag); if (!replyFlush) { replyFlush = true; setImmediate(() => { replyFlush = false; rq.ack({ fields: { deliveryTag: replyTag } }, true); }); } } : (m) => rq.ack(m);
  if (V.has('globalqos')) rq.prefetch(Number(process.env.RPF ?? 256), true);
  else if (V.has('consumerqos')) rq.prefetch(Number(process.env.RPF ?? 256), false);
  rq.consume(replies, (m) => { if (!m) return; ackReply(m); received++; if (sent < JOBS) send(); if (received === JOBS) resolve(); });
  for (let i = 0; i < WINDOW; i++) send();
});
const secs = (performance.now() - t0) / 1000; const c1 = cpu();
console.log(`${process.env.V || 'base'}: ${Math.round(JOBS / secs)} jobs/s, beam ${Math.round(((c1 - c0) * 10000) / JOBS)} us/job`);
closing = true; await ec.close(); await rq.deleteQueue(reqQ); await rq.deleteQueue(replies);
await requester.close(); await echo.close();
