import { ErrorCodes, isPipelineError } from './errors.js';

/** Exit code for a configuration error (sysexits' EX_CONFIG). */
export const EXIT_CONFIG = 78;

/**
 * Runs a service's main body. A failure before or during start-up (bad config, no broker)
 * is written to stderr as one JSON line with its code, and sets a non-zero exit code;
 * no stack trace for errors we raised on purpose.
 */
export async function serviceMain(service: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    const line: Record<string, unknown> = { level: 'fatal', time: new Date().toISOString(), service, pid: process.pid };
    if (isPipelineError(err)) {
      line.code = err.code;
      line.msg = err.message;
      if (err.cause instanceof Error) line.cause = err.cause.message;
    } else {
      line.msg = 'service failed';
      line.err = err instanceof Error ? { message: err.message, stack: err.stack } : String(err);
    }
    process.stderr.write(`${JSON.stringify(line)}\n`);
    process.exitCode = isPipelineError(err) && err.code === ErrorCodes.CONFIG ? EXIT_CONFIG : 1;
  }
}
