/**
 * A throwaway virtual host on the bench's broker, for running the pipeline with another
 * topology beside the one the broker already has (WORK_QUEUE_TYPE=classic: the work queues of
 * the default vhost are quorum queues, and a queue's type cannot change in place). Made and
 * removed through the management HTTP API (MANAGEMENT_URL, default http://<AMQP host>:15672,
 * with the AMQP URL's user): the user must be an administrator, as guest is on a local broker.
 */
export interface Vhost {
  /** AMQP_URL with the vhost in its path. */
  url: string;
  name: string;
}

function managementBase(amqpUrl: string): { base: string; auth: string } {
  const u = new URL(amqpUrl);
  const user = decodeURIComponent(u.username || 'guest');
  const pass = decodeURIComponent(u.password || 'guest');
  const base = (process.env.MANAGEMENT_URL ?? `http://${u.hostname}:15672`).replace(/\/$/, '');
  return { base, auth: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
}

async function api(amqpUrl: string, method: string, path: string, body?: unknown): Promise<number> {
  const { base, auth } = managementBase(amqpUrl);
  const res = await fetch(`${base}/api${path}`, {
    method,
    headers: { authorization: auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  await res.text();
  return res.status;
}

/**
 * Runs `fn` with a fresh vhost (the AMQP user may do everything in it), then deletes the vhost
 * with everything in it. Resolves with undefined and the reason if the management API is not
 * there (the caller prints the reason in place of the figures).
 */
export async function withVhost<T>(amqpUrl: string, name: string, fn: (v: Vhost) => Promise<T>): Promise<{ value?: T; skipped?: string }> {
  const user = decodeURIComponent(new URL(amqpUrl).username || 'guest');
  const path = `/vhosts/${encodeURIComponent(name)}`;
  try {
    await api(amqpUrl, 'DELETE', path); // a leftover of an interrupted run
    const made = await api(amqpUrl, 'PUT', path, {});
    if (made >= 300) return { skipped: `could not create vhost ${name} (HTTP ${made})` };
    await api(amqpUrl, 'PUT', `/permissions/${encodeURIComponent(name)}/${encodeURIComponent(user)}`, { configure: '.*', write: '.*', read: '.*' });
  } catch (err) {
    return { skipped: `no management API at ${managementBase(amqpUrl).base} (${(err as Error).message}); rabbitmq-plugins enable rabbitmq_management` };
  }
  try {
    const u = new URL(amqpUrl);
    u.pathname = `/${encodeURIComponent(name)}`;
    return { value: await fn({ url: u.toString(), name }) };
  } finally {
    await api(amqpUrl, 'DELETE', path).catch(() => 0);
  }
}
