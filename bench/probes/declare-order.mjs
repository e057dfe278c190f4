// Does a second queue declared on the same channel delay a job published right after the first
// declare? Time from "declare the reply queue" to "job confirmed", p50/p90 of 50, with the manifest
// queue declared (a) on the same channel, pipelined, (b) on a second channel, (c) not at all.
// node bench/probes/declare-order.mjs
import amqp from 'amqplib';
const c = await amqp.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', { noDelay: true });
const ch = await c.createConfirmChannel();
const side = await c.createChannel();
await ch.assertQueue('bench.probe.work', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
const run = async (name, manifestOn) => {
  const xs = [];
  for (let i = 0; i < 50; i++) {
    const q = `bench.probe.r.${name}.${i}`;
    const s = performance.now();
    const reply = ch.assertQueue(q, { durable: true, arguments: { 'x-expires': 60000 } });
    const manifest = manifestOn ? manifestOn.assertQueue(`${q}.m`, { durable: true, arguments: { 'x-expires': 60000, 'x-max-length': 1 } }) : Promise.resolve();
    await reply;
    await new Promise((r) => ch.publish('', 'bench.probe.work', Buffer.from('{}'), { persistent: true, replyTo: q }, r));
    xs.push(performance.now() - s);
    await manifest;
    await ch.deleteQueue(q);
    if (manifestOn) await ch.deleteQueue(`${q}.m`);
  }
  xs.sort((a, b) => a - b);
  console.log(name, 'p50', xs[25].toFixed(2), 'p90', xs[45].toFixed(2));
};
await run('same-channel', ch);
await run('second-channel', side);
await run('no-manifest', undefined);
await ch.deleteQueue('bench.probe.work');
await c.close();
