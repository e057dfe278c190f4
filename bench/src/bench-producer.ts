/**
 * The producer library in a process of its own, for rows that compare producers configured
 * differently (the tracing rows: its OTEL_* variables are its own). Forked with the env it is
 * to run with; connects a PipelineClient (loadConfig from that env), says 'ready', then for
 * each {n, offset} sent runs one batch of `n` small jobs (jobs.ts), waits for every result
 * and answers {secs, complete, failed, cpuSecs}. Closes the client (which flushes spans) on
 * disconnect.
 */
import { PipelineClient } from '@amqp-pipeline/producer';
import { createLogger, loadConfig } from '@amqp-pipeline/shared';
import { smallJobs } from './jobs.js';

if (!process.send) throw new Error('usage: fork(bench-producer.js)');
const client = await PipelineClient.connect(loadConfig(process.env), createLogger('bench', { level: 'warn' }, 2));
process.on('message', (m: { n: number; offset: number }) => {
  void (async () => {
    const cpu0 = process.cpuUsage();
    const started = performance.now();
    const outcome = await client.submit(smallJobs(m.n, m.offset), { wait: true, output: 'independent', timeoutMs: 600_000 });
    const secs = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpu0);
    process.send!({ secs, complete: outcome.complete, failed: outcome.failed, cpuSecs: (cpu.user + cpu.system) / 1e6 });
  })().catch((err: unknown) => process.send!({ error: String(err) }));
});
process.once('disconnect', () => void client.close().finally(() => process.exit(0)));
process.send('ready');
