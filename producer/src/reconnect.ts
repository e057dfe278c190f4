/**
 * Reconnect handling for the producer's channels. amqplib's `recovery` brings the connection
 * back by itself (shared/src/broker.ts); what is left here is opening a channel again on it:
 * `createChannel` fails while the connection is down, so it is tried again every `delayMs`
 * until it works, or the caller says to stop (the batch ended, the client is closing).
 *
 * State kept: none (each call is one loop).
 */

export type StopReason = 'stopped' | 'closing';

export interface ReopenOptions {
  /** Asked before every try: a reason to give up, or false to go on. */
  stop: () => StopReason | false;
  /** Wait between tries, ms (default 250). */
  delayMs?: number;
  /** Told about each failed try. */
  onRetry?: (err: unknown, attempt: number) => void;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `open` until it resolves (its value) or `stop` gives a reason (that reason). */
export async function reopen<T>(open: () => Promise<T>, opts: ReopenOptions): Promise<{ value: T } | { stopped: StopReason }> {
  for (let attempt = 1; ; attempt++) {
    const why = opts.stop();
    if (why) return { stopped: why };
    try {
      return { value: await open() };
    } catch (err) {
      opts.onRetry?.(err, attempt);
      await delay(opts.delayMs ?? 250);
    }
  }
}
