/**
 * Reading one batch's results: the reply window (reply-window.ts) feeds the collector
 * (collector.ts); what the collector releases is acknowledged at the next checkpoint
 * (checkpoint.ts), after the progress record that covers it; replies held ahead of their turn
 * past the window's bound are spilled (sent round again) to make room.
 *
 * State kept (per batch):
 * - the replies released and waiting for the next checkpoint's ack (`pending`, and their bytes);
 * - the progress record's revision, and how much had been taken in at the last record;
 * - the last write of the output (a checkpoint waits for it: nothing is recorded unwritten);
 * - for `ordered` batches, the jobs waiting for the lead gate (published once they are within
 *   `lead` jobs of the head, so results ahead of their turn fit in the window);
 * - spills under way, the spills paid for by unseen replies (`credits`), and the back-off
 *   when nothing new has come since the last spill;
 * - whether the batch is ending (`stopping`): replies that come after stay unacknowledged.
 *
 * Why it cannot stall: the window's prefetch never changes, and it always has room for the
 * reply in turn. While a batch is being published, the lead gate keeps the results ahead of
 * their turn within `holdMessages`, so nothing needs to be sent round (a queue holding replies
 * far out of order, as `collect` may find it, is the exception). Held replies are kept to
 * `holdMessages` by spilling; released ones are acked
 * by a checkpoint that is due well before they could fill the rest, and that is never skipped
 * (CheckpointRunner); a 1-second ticker covers the last few. `ReplyWindow.watch` checks this
 * every second and logs an error should it ever fail (results ready, room, nothing arriving).
 */
import {
  PROGRESS_TYPE,
  RESULTS_BUNDLE_TYPE,
  RESULT_TYPE,
  ResultsBundleSchema,
  TraceAttributes,
  declareProgressQueue,
  endSpan,
  processSpan,
  tracing,
  manifestQueueName,
  progressQueueName,
  within,
  type Logger,
  type Manifest,
  type Progress,
} from '@amqp-pipeline/shared/client';
import type { ConsumeMessage, RecoveringChannelModel } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { CHECKPOINT_MS, CheckpointRunner, checkpointDue, checkpointEvery } from './checkpoint.js';
import { BatchCollector, type CollectorStats, type Emitted, type MissingResult, type Msg } from './collector.js';
import type { ReliablePublisher } from './job-publisher.js';
import { ReplyWindow, leadFor, windowFor, type WindowLimits } from './reply-window.js';
import { senderOf, type Senders } from './fit.js';

export interface BatchOutcome {
  batch: string;
  jobs: number;
  /** Every expected result arrived. */
  complete: boolean;
  /** Results that did not arrive in time (they stay in the reply queue for `collect`). */
  missing: MissingResult[];
  stats: CollectorStats;
  /** How many results were `ok: false`. */
  failed: number;
  /** The reply window: its prefetch, replies spilled to make room, stalls seen (always 0 unless there is a bug). */
  window: { prefetch: number; spilled: number; stalls: number };
}

/** Where a batch's queues are, and who may write into them. */
export interface BatchPlace {
  /** The id its queues are named by: ownedQueueId(user, batch), or the batch id for a batch from before. */
  queueId: string;
  /** The producer's exchange its queues are bound to (the producer writes into them through it); undefined: the default exchange. */
  exchange?: string | undefined;
  /** The sender checks (fit.ts); undefined: none (a batch from before results were signed). */
  senders?: Senders | undefined;
}

export interface GatherOptions {
  /** Where the batch's queues are. */
  place: BatchPlace;
  onResult?: ((r: Emitted) => void | Promise<void>) | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
  written?: ((key: string) => boolean) | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  manifest?: Manifest | undefined;
  progress?: Progress | undefined;
  /**
   * Settles once every publish into the batch's queues (its jobs, its manifest) is settled:
   * the queues are deleted at the end only after it, so that no publish meets a queue gone.
   */
  published?: Promise<unknown> | undefined;
  /** The progress queue's declaration, when the caller made it (submit does, with the batch's other queues). */
  progressQueue?: Promise<unknown> | undefined;
  /** The reply window's limits; by default chosen from the jobs (windowFor). */
  window?: WindowLimits | undefined;
}

export interface GatherDeps {
  model: RecoveringChannelModel;
  publisher: ReliablePublisher;
  log: Logger;
  replyTtlMs: number;
  /** The type the batch's queues are declared with (its progress queue is declared here). */
  replyQueueType: 'quorum' | 'classic';
  /** True once the client is closing. */
  closing: () => boolean;
  /** Registers a clean-up the client's `close()` waits for. */
  track: (cleanup: Promise<void>) => void;
}

/** First wait before a spill that follows one which brought back only replies seen since the last result in turn, ms; it doubles up to SPILL_BACKOFF_MAX_MS. */
const SPILL_BACKOFF_MS = 50;
const SPILL_BACKOFF_MAX_MS = 1000;
/** The spill round a copy went out in: `<session>:<results done then>`. */
const SPILL_ROUND_HEADER = 'x-pipeline-spill-round';
/** A progress record not confirmed after this long is logged as an error, ms. */
const SLOW_CHECKPOINT_MS = 10_000;
/** Longest wait for a checkpoint or the output at the end of a batch, ms. */
const END_WAIT_MS = 5000;

export async function gather(
  deps: GatherDeps,
  batch: string,
  replyQueue: string,
  opts: GatherOptions,
): Promise<{
  done: Promise<BatchOutcome>;
  stop: (completed: boolean) => Promise<void>;
  /** Resolves when job `order` may be published (undefined: at once). */
  admit: (order: number) => Promise<void> | undefined;
  /** How far past the head jobs are admitted (Infinity: no gate); a message's jobs must fit in it. */
  lead: number;
}> {
  const { log } = deps;
  let written: Promise<void> = Promise.resolve();
  /** Waits until everything emitted so far has been written out (a write may start meanwhile). */
  const outputSettled = async () => {
    let w: Promise<void>;
    do {
      w = written;
      await w.catch(() => {});
    } while (w !== written);
  };
  let window: ReplyWindow;
  let refused = 0;

  // A bundle's reply (several jobs' results in one message, docs/protocol.md) is split into one
  // Msg per result for the collector, which sees them as it sees results that came alone. The
  // message is acknowledged once the collector has released every one of its results; while
  // some are held, it holds one place in the window for all of them.
  interface Bundle {
    message: ConsumeMessage;
    /** Its results the collector has not released yet. */
    left: number;
    results: Msg[];
  }
  const bundleOf = new WeakMap<Msg, { bundle: Bundle; kind: string; released: boolean }>();
  /** Bundles in hand (not every result released yet), for the window's count of what it holds. */
  const bundles = new Set<Bundle>();
  const split = (msg: ConsumeMessage): { result: Msg; body: unknown }[] | undefined => {
    const parsed = ResultsBundleSchema.safeParse(safeJson(msg.content));
    if (!parsed.success) return undefined; // the collector refuses it as not a result
    const results = parsed.data.results;
    const bundle: Bundle = { message: msg, left: results.length, results: [] };
    const size = Math.ceil(msg.content.length / results.length);
    const out = results.map(({ id, ...body }) => {
      let content: Buffer | undefined;
      const result: Msg = {
        // Made only if the result is sent round (spilled) or read without its body.
        get content() {
          return (content ??= Buffer.from(JSON.stringify(body)));
        },
        properties: { ...msg.properties, correlationId: id, type: RESULT_TYPE },
        size,
      };
      bundleOf.set(result, { bundle, kind: String(body.kind), released: false });
      bundle.results.push(result);
      return { result, body };
    });
    bundles.add(bundle);
    return out;
  };
  /** What the collector released, as messages to acknowledge: a bundle's once all its results are. */
  const acknowledgeable = (released: Msg[]): Msg[] => {
    const out: Msg[] = [];
    for (const m of released) {
      const b = bundleOf.get(m);
      if (!b) {
        out.push(m);
        continue;
      }
      if (b.released) continue;
      b.released = true;
      if (--b.bundle.left === 0) {
        bundles.delete(b.bundle);
        out.push(b.bundle.message);
      }
    }
    return out;
  };
  /** How many more results than messages the window holds in bundles (live ones; dead channels' are dropped). */
  const bundledExtra = (): number => {
    let extra = 0;
    for (const b of bundles) {
      if (!window.alive(b.message)) bundles.delete(b);
      else extra += b.left - 1;
    }
    return extra;
  };

  const collector = new BatchCollector(
    batch,
    (r) => {
      const w = opts.onResult?.(r);
      if (w) written = w;
    },
    opts.manifest ? { manifest: opts.manifest, progress: opts.progress } : undefined,
    (m) => window.alive(bundleOf.get(m)?.bundle.message ?? m),
    opts.written,
    (m, reason) => {
      // Each refusal is logged (the first ones: a flood of forgeries must not flood the log;
      // the count is in the batch's summary line).
      refused++;
      if (refused <= 20) log.warn({ batch, correlationId: m.properties.correlationId ?? null, ...senderOf(m), reason }, 'unexpected message in the reply queue refused');
      else if (refused === 21) log.warn({ batch }, 'more unexpected messages refused; only their count is reported from here on');
    },
    opts.place.senders,
  );
  if (!opts.manifest) collector.expectNoManifest();
  const limits = opts.window ?? windowFor(opts.manifest?.jobs ?? []);
  const every = checkpointEvery(limits.prefetch, limits.holdMessages);

  // The lead gate (ordered batches only): job i is published once i < head + lead, so results
  // ahead of their turn stay within what the window holds. Waiters come in job order (the
  // publisher's lanes take jobs in order), so the front ones are always the next to go.
  const lead = opts.manifest?.output === 'ordered' ? leadFor(opts.manifest.jobs, limits) : Infinity;
  const gated: { order: number; go: () => void }[] = [];
  let gateOpen = lead === Infinity;
  const openGate = () => {
    const reach = gateOpen ? Infinity : collector.headOrder + lead;
    let n = 0;
    while (n < gated.length && gated[n]!.order < reach) gated[n++]!.go();
    if (n) gated.splice(0, n);
  };
  const admit = (order: number): Promise<void> | undefined => {
    if (gateOpen || order < collector.headOrder + lead) return undefined;
    return new Promise<void>((go) => gated.push({ order, go }));
  };

  let pending: Msg[] = [];
  let pendingBytes = 0;
  /** Replies whose progress record is being written (taken out of `pending` meanwhile). */
  let recording = 0;
  const { place } = opts;
  const progressQueue = progressQueueName(place.queueId);
  let progressDeclared = opts.progress !== undefined || opts.progressQueue !== undefined;
  let progressReady = opts.progressQueue;
  let revision = opts.progress?.revision ?? 0;
  let recordedAt = collector.emittedCount;

  /** Records what was taken in (if anything was since the last record), then acks. */
  const checkpoint = async (): Promise<void> => {
    await outputSettled();
    const toAck = pending;
    pending = [];
    pendingBytes = 0;
    const taken = collector.emittedCount;
    if (taken !== recordedAt) {
      const record = collector.progress(revision + 1);
      if (record) {
        // Replies are acked only after the record that covers them: a record the broker does
        // not confirm holds the window, so say so (once) rather than wait in silence.
        const slow = setTimeout(
          () =>
            log.error(
              { batch, queue: progressQueue, waitedMs: SLOW_CHECKPOINT_MS },
              'progress record not confirmed: replies stay unacknowledged until it is (is the progress queue available? rabbitmq-queues quorum_status)',
            ),
          SLOW_CHECKPOINT_MS,
        );
        slow.unref();
        recording = toAck.length;
        try {
          await writeRecord(record);
        } catch (err) {
          // Not recorded, so not acked: they wait for the next checkpoint (dropping them here
          // would leave them unacknowledged for good, each one a slot of the window lost).
          pending = toAck.concat(pending);
          pendingBytes += toAck.reduce((n, m) => n + m.content.length, 0);
          throw err;
        } finally {
          clearTimeout(slow);
          recording = 0;
        }
        revision++;
        recordedAt = taken;
      }
    }
    for (const m of toAck) window.ack(m);
    window.flush();
  };
  const writeRecord = async (record: Progress): Promise<void> => {
    if (progressReady) {
      // Declared with the batch's other queues; if that failed (a lost channel), declare it here.
      if (!(await progressReady.then(() => true, () => false))) progressDeclared = false;
      progressReady = undefined;
    }
    const publisher = await deps.publisher.live();
    if (!progressDeclared) {
      await declareProgressQueue(publisher.channel, place.queueId, deps.replyTtlMs, deps.replyQueueType, place.exchange);
      progressDeclared = true;
    }
    await publisher.publish(place.exchange ?? '', progressQueue, Buffer.from(JSON.stringify(record)), {
      contentType: 'application/json',
      persistent: true,
      type: PROGRESS_TYPE,
      appId: 'pipeline',
      ...(place.senders ? { userId: place.senders.own } : {}),
    });
  };
  const checkpoints = new CheckpointRunner(checkpoint, (err) => log.debug({ err, batch }, 'checkpoint failed; the replies stay unacknowledged'));

  // Spills: a copy of each reply sent to the back of the reply queue, confirmed, then the
  // original acked. Each copy is stamped with the round it went out in (this session, and how
  // many results were done then). Sending replies round only helps if it lets in replies not
  // seen since the last result in turn (the one in turn may be among them), so spills are paid
  // for: a reply that arrives unseen (not a copy stamped with the current round) earns one
  // spill, a result in turn clears the way for a whole run. When nothing new has come, the
  // next spill waits (a little, doubling): the reply in turn is still being worked on, and
  // circling replies would only slow down the service doing it. A deep queue is still searched
  // at the broker's pace: each reply spilled lets in one unseen reply, which pays for the next.
  const session = randomUUID().slice(0, 8);
  const roundOf = () => `${session}:${collector.doneCount}`;
  let spilled = 0;
  let spilling = 0;
  let backoff = 0;
  let lastSpill = { at: 0, done: -1 };
  let credits = 0;
  let spillTimer: NodeJS.Timeout | undefined;
  /** A spilled reply's copy is confirmed: the original may be acknowledged (a bundle's, once all its results are). */
  const spilledAway = (m: Msg) => {
    if (!bundleOf.has(m)) return window.ack(m);
    for (const a of acknowledgeable([m])) {
      pending.push(a);
      pendingBytes += a.content.length;
    }
  };
  const spill = (taken: Msg[]) => {
    // A result of a bundle goes round alone; its bundle's message can be acknowledged only once
    // none of its results is held, so the others held go round with it (all are ahead of their
    // turn: a result in its turn is never held).
    const msgs: Msg[] = [];
    const seen = new Set<Msg>();
    for (const m of taken) {
      if (seen.has(m)) continue;
      seen.add(m);
      msgs.push(m);
      const b = bundleOf.get(m);
      if (!b) continue;
      for (const other of b.bundle.results) {
        const o = bundleOf.get(other)!;
        if (seen.has(other) || o.released || !collector.takeBack(other, o.kind)) continue;
        seen.add(other);
        msgs.push(other);
      }
    }
    spilled += msgs.length;
    const round = roundOf();
    for (const m of msgs) {
      spilling++;
      const p = m.properties;
      const headers = {
        ...(p.headers ?? {}),
        'x-pipeline-spilled': Number(p.headers?.['x-pipeline-spilled'] ?? 0) + 1,
        [SPILL_ROUND_HEADER]: round,
      };
      void deps.publisher
        .publish(
          place.exchange ?? '',
          replyQueue,
          m.content,
          {
            persistent: true,
            headers,
            // The copy is this producer's (the broker checks its user_id): a result it took from a service, sent round.
            ...(place.senders ? { userId: place.senders.own } : {}),
            ...(p.correlationId !== undefined ? { correlationId: p.correlationId } : {}),
            ...(p.messageId !== undefined ? { messageId: p.messageId } : {}),
            ...(p.contentType !== undefined ? { contentType: p.contentType } : {}),
            ...(p.type !== undefined ? { type: p.type } : {}),
            ...(p.appId !== undefined ? { appId: p.appId } : {}),
          },
          Date.now() + opts.timeoutMs,
        )
        .then(
          () => spilledAway(m),
          // Not sent round: the reply stays unacknowledged, and comes back when the channel closes.
          (err: unknown) => log.warn({ err, batch }, 'a held reply could not be sent round; it stays unacknowledged'),
        )
        .finally(() => spilling--);
    }
  };
  const maybeSpill = () => {
    if (stopping || spillTimer) return;
    if (collector.heldAhead <= limits.holdMessages && collector.heldBytes <= limits.holdBytes) return;
    // Down to three quarters of the bound, so spills come in runs, not one reply at a time.
    let maxHeld = Math.floor((limits.holdMessages * 3) / 4);
    const maxBytes = Math.floor((limits.holdBytes * 3) / 4);
    if (collector.doneCount !== lastSpill.done) {
      backoff = 0;
    } else if (credits > 0) {
      backoff = 0;
      maxHeld = Math.max(maxHeld, collector.heldAhead - credits);
    } else {
      backoff = Math.min(SPILL_BACKOFF_MAX_MS, Math.max(SPILL_BACKOFF_MS, backoff * 2));
      const wait = lastSpill.at + backoff - Date.now();
      if (wait > 0) {
        spillTimer = setTimeout(() => {
          spillTimer = undefined;
          maybeSpill();
        }, wait);
        return;
      }
    }
    lastSpill = { at: Date.now(), done: collector.doneCount };
    credits = 0;
    spill(collector.spill(maxHeld, maxBytes));
  };

  let settle!: (completed: boolean) => void;
  const finished = new Promise<boolean>((resolve) => (settle = resolve));
  let stopping = false;

  // With tracing on, a `process <reply queue>` span per reply message, a child of the
  // service's reply publish (the reply's traceparent).
  const onMessage = (msg: ConsumeMessage | null) => {
    const t = msg ? tracing() : undefined;
    if (!t || !msg) return take(msg);
    const { span } = processSpan(t, replyQueue, msg, { [TraceAttributes.batch]: batch });
    try {
      take(msg);
    } finally {
      endSpan(t, span, stopping ? 'left for collect' : 'received');
    }
  };
  const take = (msg: ConsumeMessage | null) => {
    if (msg === null) return settle(false); // the queue was deleted
    // After the end nothing more is taken in: what arrives now stays unacknowledged, and
    // goes back to the queue (for `collect`) when the channel closes.
    if (stopping) return;
    if (msg.properties.headers?.[SPILL_ROUND_HEADER] !== roundOf()) credits++;
    const results = msg.properties.type === RESULTS_BUNDLE_TYPE ? split(msg) : undefined;
    const released = results ? results.flatMap(({ result, body }) => collector.accept(result, body)) : collector.accept(msg);
    for (const m of acknowledgeable(released)) {
      pending.push(m);
      pendingBytes += m.content.length;
    }
    if (gated.length) openGate();
    opts.onProgress?.(collector.doneCount, collector.expectedCount);
    if (collector.complete) return settle(true);
    if (checkpointDue(pending.length, pendingBytes, every)) void checkpoints.request();
    maybeSpill();
  };

  window = new ReplyWindow({
    model: deps.model,
    queue: replyQueue,
    prefetch: limits.prefetch,
    log: log.child({ batch }),
    onMessage,
    closing: deps.closing,
    onGone: () => settle(false),
  });
  await window.start();
  const ticker = setInterval(() => {
    if (pending.length) void checkpoints.request();
    void window.watch(collector.held - bundledExtra() + pending.length + recording + spilling, {
      held: collector.held,
      heldBytes: collector.heldBytes,
      awaitingCheckpoint: pending.length,
      recording,
      spilling,
      done: collector.doneCount,
      expected: collector.expectedCount,
    });
  }, CHECKPOINT_MS);
  const timer = setTimeout(() => settle(false), opts.timeoutMs);
  if (opts.signal?.aborted) settle(false);
  opts.signal?.addEventListener('abort', () => settle(false), { once: true });

  /**
   * Ends the batch: on completion everything is acked and the queues deleted; on an early stop
   * a last checkpoint records what was taken in. The outcome is known before this clean-up,
   * so callers get it at once; the client's `close()` waits for the clean-up.
   */
  const stop = async (completed: boolean) => {
    if (stopping) return;
    stopping = true;
    // What the manifest promises is published, whatever the end: `collect` gathers the rest.
    gateOpen = true;
    openGate();
    clearTimeout(timer);
    clearInterval(ticker);
    clearTimeout(spillTimer);
    if (completed) for (const m of collector.finish()) pending.push(m); // emits combined results now
    const w = window;
    const cleanup = (async () => {
      // Bounded: with the connection down, a checkpoint under way cannot finish.
      await within(checkpoints.idle(), END_WAIT_MS);
      await within(outputSettled(), END_WAIT_MS);
      try {
        if (completed && w?.open) {
          for (const m of pending) w.ack(m);
          pending = [];
          w.flush();
          if (opts.published) await within(opts.published.catch(() => {}), END_WAIT_MS);
          await w.deleteQueues([replyQueue, manifestQueueName(place.queueId), ...(progressDeclared ? [progressQueue] : [])]);
        } else if (w?.open) {
          await within(checkpoints.request(), END_WAIT_MS);
        }
      } finally {
        if (w) await within(w.close(), END_WAIT_MS);
      }
    })();
    deps.track(cleanup);
    // An early stop must have its progress written before anyone may `collect`.
    if (!completed) await cleanup.catch(() => {});
  };
  const done = finished.then(async (completed) => {
    await stop(completed).catch(() => {});
    return {
      batch,
      jobs: collector.jobCount,
      complete: completed,
      missing: collector.missing(),
      stats: { ...collector.stats },
      failed: collector.failedCount,
      window: { prefetch: limits.prefetch, spilled, stalls: window.stalls },
    };
  });
  return { done, stop, admit, lead };
}

function safeJson(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
}
