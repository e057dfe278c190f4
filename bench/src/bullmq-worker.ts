/**
 * The BullMQ peer's worker, a process of its own as a BullMQ deployment runs it (forked by
 * peers.ts): KIND=primes answers each job `{from, to}` with the primes in it, computed by the
 * same function our prime-filter uses for small ranges; KIND=titles fetches `{url}` with
 * undici's request, reads the whole body and takes the title with a regex (what the bare
 * title service of the titles suite does). The job's return value is the result: BullMQ keeps
 * it in Redis and sends it to the producer on the queue's event stream.
 *
 * Env: REDIS_URL, QUEUE, KIND, CONCURRENCY. Tells its parent "ready" over IPC; exits when the
 * parent disconnects.
 */
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { smallPrimesBetween } from '@amqp-pipeline/prime-filter/dist/small-range.js';

const TITLE = /<title[^>]*>([^<]*)<\/title>/i;
const agent = new Agent();

async function primes(job: Job<{ from: number; to: number }>): Promise<number[]> {
  return Array.from(smallPrimesBetween(job.data.from, job.data.to));
}

async function title(job: Job<{ url: string }>): Promise<{ title: string }> {
  const { body } = await request(job.data.url, { dispatcher: agent });
  return { title: TITLE.exec(await body.text())?.[1] ?? '' };
}

const connection = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
const processor = process.env.KIND === 'titles' ? title : primes;
const worker = new Worker(process.env.QUEUE ?? 'peers', processor as (job: Job) => Promise<unknown>, {
  connection,
  concurrency: Number(process.env.CONCURRENCY ?? 50),
});
await worker.waitUntilReady();
process.send?.('ready');
process.on('disconnect', () => {
  void worker.close().finally(() => {
    connection.disconnect();
    process.exit(0);
  });
});
