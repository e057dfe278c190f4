/**
 * A bare amqplib echo in a process of its own, as a service runs: consumes the queues named in
 * its arguments (prefetch 10) and answers each request on its reply_to with a persistent
 * reply, acking the request once the reply is confirmed. Says 'ready' to its parent (fork)
 * once consuming. AMQP_URL as everywhere else.
 */
import amqp from 'amqplib';

const queues = process.argv.slice(2);
if (queues.length === 0 || !process.send) throw new Error('usage: fork(echo.js, [queue, ...])');
const conn = await amqp.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', { noDelay: true });
const ch = await conn.createConfirmChannel();
await ch.prefetch(10);
for (const queue of queues) {
  await ch.consume(queue, (m) => {
    if (!m) return;
    ch.publish('', m.properties.replyTo as string, m.content, { correlationId: m.properties.correlationId, persistent: true, contentType: 'application/json' }, (err) => {
      if (!err) ch.ack(m);
    });
  });
}
process.once('disconnect', () => void conn.close().finally(() => process.exit(0)));
process.send('ready');
