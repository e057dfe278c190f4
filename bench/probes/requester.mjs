// A bare amqplib requester for the probes: a confirm channel, a durable classic reply queue,
// and call(exchange, routingKey, extraProperties), which publishes one persistent request
// (body {"from":1,"to":100}) and resolves when its reply comes. One call at a time.
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';

export async function bareRequester(url, replyQueue) {
  const conn = await amqp.connect(url, { noDelay: true });
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(replyQueue, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-expires': 600000 } });
  let waiting;
  await ch.consume(replyQueue, (m) => {
    if (!m) return;
    ch.ack(m);
    waiting?.(m.properties.correlationId);
  });
  const body = Buffer.from('{"from":1,"to":100}');
  return {
    ch,
    call(exchange, routingKey, extra = {}) {
      const id = randomUUID();
      const replied = new Promise((resolve) => (waiting = (got) => got === id && resolve()));
      ch.publish(exchange, routingKey, body, { correlationId: id, replyTo: replyQueue, persistent: true, contentType: 'application/json', ...extra }, () => {});
      return replied;
    },
    async close() {
      await ch.deleteQueue(replyQueue).catch(() => {});
      await conn.close();
    },
  };
}
