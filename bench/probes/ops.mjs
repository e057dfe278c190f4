// Latency of single broker operations the pipeline pays per batch and per job (p50, p90 of 50).
// node bench/probes/ops.mjs   (AMQP_URL, default the local broker)
import amqp from 'amqplib';
const c = await amqp.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', { noDelay: true });
const ch = await c.createConfirmChannel();
await ch.assertQueue('bench.probe.q', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
await ch.assertQueue('bench.probe.c', { durable: true, arguments: { 'x-queue-type': 'classic' } });
const t = async (name, fn) => { const xs = []; for (let i = 0; i < 50; i++) { const s = performance.now(); await fn(i); xs.push(performance.now() - s); } xs.sort((a, b) => a - b); console.log(name, 'p50', xs[25].toFixed(2), 'p90', xs[45].toFixed(2)); };
await t('declare durable classic', (i) => ch.assertQueue(`bench.probe.tmp.${i}`, { durable: true, arguments: { 'x-expires': 60000 } }));
await t('delete queue', (i) => ch.deleteQueue(`bench.probe.tmp.${i}`));
await t('publish persistent -> quorum, confirmed', () => new Promise((r) => ch.publish('', 'bench.probe.q', Buffer.from('x'), { persistent: true }, r)));
await t('publish persistent -> classic durable, confirmed', () => new Promise((r) => ch.publish('', 'bench.probe.c', Buffer.from('x'), { persistent: true }, r)));
await t('publish transient -> classic, confirmed', () => new Promise((r) => ch.publish('', 'bench.probe.c', Buffer.from('x'), { persistent: false }, r)));
await t('createChannel+close', async () => { const x = await c.createChannel(); await x.close(); });
await ch.deleteQueue('bench.probe.q'); await ch.deleteQueue('bench.probe.c'); await c.close();
