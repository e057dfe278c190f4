import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

/** The consumer services, by the folder (and package) name they have. */
export const SERVICE_NAMES = ['prime-filter', 'square-mapper', 'title-fetcher'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

const require = createRequire(import.meta.url);

/** Absolute path of a service's entry point: the same file `npm start -w` and its container run. */
export function serviceEntry(name: ServiceName): string {
  const pkg = require.resolve(`@amqp-pipeline/${name}/package.json`);
  return join(dirname(pkg), 'dist', 'main.js');
}

/** Absolute path of the `pipeline` CLI: the file `npx pipeline` runs (it loads the bundle). */
export function cliEntry(): string {
  return join(dirname(require.resolve('@amqp-pipeline/producer/package.json')), 'bin', 'pipeline.js');
}

export interface StartOptions {
  /** Extra environment on top of this process's. */
  env?: Record<string, string>;
  /** Every line the service writes (stdout and stderr), as it comes. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /**
   * Start in its own process group, so a terminal's Ctrl-C reaches only the supervisor,
   * which then stops the service itself.
   * @defaultValue false
   */
  detached?: boolean;
}

/**
 * A consumer service running as a real child process. `ready` resolves when the
 * service logs that it is consuming (an info-level line: with LOG_LEVEL above info,
 * `ready` never resolves), and rejects if it exits first.
 */
export class ServiceProcess {
  readonly name: ServiceName;
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly lines: string[] = [];

  constructor(name: ServiceName, opts: StartOptions = {}) {
    this.name = name;
    this.child = spawn(process.execPath, [...(process.env.SERVICE_NODE_ARGS ?? "").split(" ").filter(Boolean), serviceEntry(name)], {
      // Readiness is read from the service's info-level "consuming" line, so info is the default here.
      env: { ...process.env, LOG_LEVEL: 'info', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: opts.detached ?? false,
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    let markReady!: () => void;
    let markFailed!: (err: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      markFailed = reject;
    });
    this.ready.catch(() => {});
    for (const [stream, source] of [
      ['stdout', this.child.stdout],
      ['stderr', this.child.stderr],
    ] as const) {
      if (!source) continue;
      createInterface({ input: source }).on('line', (line) => {
        this.lines.push(line);
        if (this.lines.length > 500) this.lines.shift();
        if (line.includes('"msg":"consuming"')) markReady();
        opts.onLine?.(line, stream);
      });
    }
    void this.exited.then(({ code, signal }) =>
      markFailed(new Error(`${name} exited (code ${code}, signal ${signal}) before it was ready:\n${this.lines.slice(-20).join('\n')}`)),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The last lines the service wrote (at most 500). */
  recentLines(): readonly string[] {
    return this.lines;
  }

  /** Sends a signal and waits for the process to end. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Starts services and waits until every one is consuming. */
export async function startServices(names: readonly ServiceName[], opts: StartOptions = {}): Promise<ServiceProcess[]> {
  const procs = names.map((n) => new ServiceProcess(n, opts));
  try {
    await Promise.all(procs.map((p) => p.ready));
  } catch (err) {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    throw err;
  }
  return procs;
}

/** Stops services with SIGTERM (graceful) and waits for all of them. */
export async function stopServices(procs: readonly ServiceProcess[]): Promise<void> {
  await Promise.all(procs.map((p) => p.stop('SIGTERM')));
}
