import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

export interface LoggerConfig {
  /** pino level: fatal, error, warn, info, debug, trace or silent. */
  level: string;
}

/**
 * The root logger of a process: JSON lines on stdout (or the given destination),
 * one `service` field so lines from many services can be told apart.
 * Services hand child loggers (`log.child({ queue })`) to the code below them.
 */
export function createLogger(
  service: string,
  config: LoggerConfig,
  destination: NodeJS.WritableStream | number = 1,
): Logger {
  const options: LoggerOptions = {
    level: config.level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  const dest = typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination;
  return pino(options, dest);
}
