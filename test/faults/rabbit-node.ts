/**
 * A throwaway RabbitMQ node for fault injection: started from the installed rabbitmq-server
 * with its own node name, ports, data and log folders, config, plugins file and Erlang cookie,
 * all in a mkdtemp folder. It can be stopped gracefully, killed with SIGKILL and restarted on
 * the same data folder (durable queues and persistent messages survive).
 *
 * It never touches the machine's own node (rabbit@localhost, port 5672): every rabbitmqctl
 * call names this node with `-n` and runs with this node's environment.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SBIN = process.env.RABBITMQ_SBIN ?? '/usr/lib/rabbitmq/bin';
/** The shared broker's ports: a throwaway node must never take (or talk to) them. */
const RESERVED_PORTS = new Set([5672, 15672, 25672, 4369, 35672]);

/** A TCP port that is free on 127.0.0.1 right now (and none of the shared broker's). */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port: p } = srv.address() as AddressInfo;
        srv.close(() => resolve(p));
      });
    });
    // The CLI tools take a distribution port in [dist + 10000 ...]: keep room below 65535.
    if (!RESERVED_PORTS.has(port) && port < 55000) return port;
  }
  throw new Error('could not find a free port');
}

export interface NodeOptions {
  /** Extra rabbitmq.conf lines. */
  extraConfig?: string[];
  /** Longest wait for the node to answer after a start, ms. */
  startTimeoutMs?: number;
  /** The Erlang cookie (nodes of one cluster share one); a random one by default. */
  cookie?: string;
  /**
   * A loopback address of its own (127.0.0.2, ...) that this node's outgoing distribution
   * connections come from, so that `cutOff()` can black-hole exactly its traffic with the other
   * nodes (they all listen on 127.0.0.1). AMQP and the management API are not affected.
   */
  distSource?: string;
  /** The Erlang kernel's net_ticktime, s (60 by default): a black-holed peer is seen as down after 0.75-1.25 of it. */
  netTicktime?: number;
}

const live = new Set<RabbitNode>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Synchronous: the last chance when a test file ends without its afterAll (a crash, a bail).
  process.once('exit', () => {
    for (const n of live) n.killSync();
  });
}

/**
 * Whether a broker answers on `port`: the AMQP 0-9-1 protocol header is sent and the first
 * frame back is a method frame (connection.start).
 */
function amqpAnswers(port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => sock.write(Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1])));
    sock.once('data', (d: Buffer) => done(d[0] === 1));
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
  });
}

/** The Erlang environment of one node (also what rabbitmqctl needs to reach it). */
export class RabbitNode {
  readonly nodename: string;
  readonly dir: string;
  readonly amqpPort: number;
  readonly managementPort: number;
  readonly distPort: number;
  readonly env: NodeJS.ProcessEnv;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private reaper: ChildProcess | undefined;
  private readonly output: string[] = [];
  private readonly startTimeoutMs: number;

  private constructor(ports: { amqp: number; management: number; dist: number }, opts: NodeOptions) {
    this.nodename = `faults-${randomBytes(4).toString('hex')}@localhost`;
    this.dir = mkdtempSync(join(tmpdir(), 'amqp-pipeline-faults-'));
    this.amqpPort = ports.amqp;
    this.managementPort = ports.management;
    this.distPort = ports.dist;
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    const file = (name: string) => join(this.dir, name);
    writeFileSync(file('.erlang.cookie'), opts.cookie ?? randomBytes(20).toString('hex').toUpperCase());
    chmodSync(file('.erlang.cookie'), 0o400);
    writeFileSync(file('rabbitmq-env.conf'), '# empty: this node ignores /etc/rabbitmq/rabbitmq-env.conf\n');
    writeFileSync(file('enabled_plugins'), '[rabbitmq_management].\n');
    writeFileSync(
      file('rabbitmq.conf'),
      [
        `listeners.tcp.default = 127.0.0.1:${ports.amqp}`,
        `management.tcp.port = ${ports.management}`,
        'management.tcp.ip = 127.0.0.1',
        // guest may log in from anywhere, but everything listens on 127.0.0.1 only.
        'loopback_users = none',
        'vm_memory_high_watermark.relative = 0.4',
        'disk_free_limit.absolute = 10MB',
        'log.console = false',
        'log.file.level = info',
        ...(opts.extraConfig ?? []),
        '',
      ].join('\n'),
    );
    this.env = {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      HOME: this.dir,
      RABBITMQ_CONF_ENV_FILE: file('rabbitmq-env.conf'),
      RABBITMQ_NODENAME: this.nodename,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(ports.amqp),
      RABBITMQ_DIST_PORT: String(ports.dist),
      RABBITMQ_CONFIG_FILE: file('rabbitmq.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: file('advanced.config'),
      RABBITMQ_ENABLED_PLUGINS_FILE: file('enabled_plugins'),
      RABBITMQ_MNESIA_BASE: file('mnesia'),
      RABBITMQ_LOG_BASE: file('log'),
      RABBITMQ_PID_FILE: file('beam.pid'),
      RABBITMQ_CTL_DIST_PORT_MIN: String(ports.dist + 10_000),
      RABBITMQ_CTL_DIST_PORT_MAX: String(ports.dist + 10_010),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      ERL_FLAGS: [
        '-kernel inet_dist_use_interface {127,0,0,1}',
        ...(opts.distSource ? [`-kernel inet_dist_connect_options [{ip,{${opts.distSource.split('.').join(',')}}}]`] : []),
        ...(opts.netTicktime ? [`-kernel net_ticktime ${opts.netTicktime}`] : []),
      ].join(' '),
    };
    this.distSource = opts.distSource;
  }

  private readonly distSource: string | undefined;
  private cut: string[][] = [];

  /**
   * Black-holes this node's distribution traffic (iptables DROP on loopback, both ways: what
   * it sends from its own source address, what is sent to it, and its distribution port) so
   * it is cut off from the rest of the cluster, silently, as by a failed switch: nobody gets a
   * reset, the others see it go only when net_ticktime runs out. AMQP clients still reach it.
   * Needs root, iptables and `distSource`. `heal()` takes the rules away.
   */
  async cutOff(): Promise<void> {
    if (!this.distSource) throw new Error('cutOff() needs a node started with distSource');
    if (this.cut.length) return;
    const tag = ['-m', 'comment', '--comment', `amqp-pipeline-faults ${this.nodename}`];
    this.cut = [
      ['-s', this.distSource, '-j', 'DROP', ...tag],
      ['-d', this.distSource, '-j', 'DROP', ...tag],
      ['-p', 'tcp', '--dport', String(this.distPort), '-j', 'DROP', ...tag],
      ['-p', 'tcp', '--sport', String(this.distPort), '-j', 'DROP', ...tag],
    ];
    for (const rule of this.cut) await iptables(['-I', 'INPUT', '-i', 'lo', ...rule]);
  }

  /** Takes `cutOff()`'s rules away: the nodes see each other again. */
  async heal(): Promise<void> {
    const rules = this.cut;
    this.cut = [];
    for (const rule of rules) await iptables(['-D', 'INPUT', '-i', 'lo', ...rule]).catch(() => {});
  }

  /** Creates the node's folder and starts it; resolves once it accepts AMQP connections. */
  static async start(opts: NodeOptions = {}): Promise<RabbitNode> {
    const node = new RabbitNode({ amqp: await freePort(), management: await freePort(), dist: await freePort() }, opts);
    installExitHooks();
    live.add(node);
    try {
      await node.boot();
    } catch (err) {
      await node.dispose();
      throw err;
    }
    return node;
  }

  /** Direct URL of the node (the tests put a proxy in front of it). */
  get amqpUrl(): string {
    return `amqp://guest:guest@127.0.0.1:${this.amqpPort}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * pid of beam.smp. In the foreground rabbitmq-server stays a shell that forwards signals
   * and waits for the emulator, so the emulator is its child: its pid is in the pid file.
   */
  get beamPid(): number | undefined {
    return this.beam;
  }

  private beam: number | undefined;

  private readPidFile(): number | undefined {
    const pidFile = this.env.RABBITMQ_PID_FILE as string;
    if (!existsSync(pidFile)) return undefined;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return pid > 0 ? pid : undefined;
  }

  /** Starts the server (again) on the same data folder and waits until it accepts connections. */
  async boot(): Promise<void> {
    if (this.running) return;
    rmSync(this.env.RABBITMQ_PID_FILE as string, { force: true });
    const child = spawn(join(SBIN, 'rabbitmq-server'), [], { cwd: this.dir, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    for (const s of [child.stdout, child.stderr]) {
      s?.setEncoding('utf8').on('data', (d: string) => {
        this.output.push(d);
        if (this.output.length > 200) this.output.shift();
      });
    }
    this.beam = undefined;
    this.startReaper(child.pid as number);
    const deadline = Date.now() + this.startTimeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`rabbitmq-server exited during start:\n${this.output.join('').slice(-3000)}`);
      // An AMQP handshake, not `rabbitmq-diagnostics` (each run of which boots an Erlang VM:
      // polled twice a second, that slowed a node rejoining a busy cluster on two cores).
      if (await amqpAnswers(this.amqpPort)) {
        this.beam = this.readPidFile() ?? Number((await this.ctl(['eval', 'os:getpid().'])).replace(/\D/g, ''));
        if (!this.beam) throw new Error(`could not learn the beam.smp pid of ${this.nodename}`);
        return;
      }
      await sleep(500);
    }
    // Its own log says why (the console output only shows the banner).
    const logFile = join(this.env.RABBITMQ_LOG_BASE as string, `${this.nodename}.log`);
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n') : '(no log file)';
    throw new Error(`node ${this.nodename} did not come up within ${this.startTimeoutMs} ms:\n${this.output.join('').slice(-1500)}\n--- ${logFile}:\n${tail}`);
  }

  /** SIGKILL of beam.smp: no goodbye to clients, no flush beyond what was fsynced. */
  async kill(): Promise<void> {
    // The pid file too: a node that never answered during boot() has no `beam` yet.
    const pid = this.beam ?? this.readPidFile();
    if (pid && this.running) process.kill(pid, 'SIGKILL');
    // The wrapper shell exits as soon as the emulator is gone.
    await Promise.race([this.exited, sleep(10_000)]);
    if (this.running) this.child?.kill('SIGKILL');
    await this.exited;
    this.beam = undefined;
  }

  /** Graceful stop of the whole node (`rabbitmqctl stop`): clients get CONNECTION_FORCED. */
  async stop(): Promise<void> {
    if (!this.running) return;
    await this.ctl(['stop'], 60_000);
    await Promise.race([this.exited, sleep(30_000)]);
    if (this.running) await this.kill();
  }

  /** `rabbitmqctl stop_app` / `start_app`: the Erlang node stays up, RabbitMQ stops and starts. */
  async stopApp(): Promise<void> {
    await this.ctl(['stop_app'], 60_000);
  }

  async startApp(): Promise<void> {
    await this.ctl(['start_app'], 60_000);
    await this.ctl(['await_startup'], 60_000);
  }

  async restart(): Promise<void> {
    await this.boot();
  }

  /** Makes this (fresh) node a member of `other`'s cluster: stop_app, join_cluster, start_app. */
  async joinCluster(other: RabbitNode): Promise<void> {
    await this.ctl(['stop_app'], 60_000);
    await this.ctl(['join_cluster', other.nodename], 60_000);
    await this.startApp();
  }

  /** rabbitmqctl against this node; rejects on a non-zero exit. */
  async ctl(args: string[], timeoutMs = 30_000): Promise<string> {
    const r = await this.ctlRaw(['rabbitmqctl', '-q', '-n', this.nodename, ...args], timeoutMs);
    if (r.code !== 0) throw new Error(`rabbitmqctl ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  private ctlRaw(cmd: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const [tool, ...args] = cmd as [string, ...string[]];
    return new Promise((resolve) => {
      const c = spawn(join(SBIN, tool), args, { cwd: this.dir, env: this.env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
      let stdout = '';
      let stderr = '';
      c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      c.once('error', (err) => resolve({ code: -1, stdout, stderr: String(err) }));
      c.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  /** The management HTTP API of this node, as guest. */
  async api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`http://127.0.0.1:${this.managementPort}/api${path}`, {
      method,
      headers: {
        authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed as T };
  }

  /** Waits until the management API answers (it starts a little after the AMQP listener). */
  async waitForManagement(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        if ((await this.api('GET', '/overview')).status === 200) return;
      } catch {
        /* not yet */
      }
      await sleep(250);
    }
    throw new Error(`management API of ${this.nodename} did not answer within ${timeoutMs} ms`);
  }

  /** Stops the node (kill: a throwaway node has nothing to save) and deletes its folder. */
  async dispose(): Promise<void> {
    await this.heal();
    if (this.running) {
      await this.kill().catch(() => {});
    }
    this.stopReaper();
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
  }

  /** For the exit hook: no awaiting there. */
  killSync(): void {
    for (const rule of this.cut) spawnSync('iptables', ['-D', 'INPUT', '-i', 'lo', ...rule], { stdio: 'ignore' });
    this.cut = [];
    for (const pid of [this.beam ?? this.readPidFile(), this.running ? this.child?.pid : undefined]) {
      if (!pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    this.stopReaper();
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }

  /**
   * A detached watchdog that SIGKILLs the node (and removes its folder) if this test process
   * dies without cleaning up (SIGKILL of the vitest worker, a crash): no stray node survives.
   */
  private startReaper(wrapperPid: number): void {
    this.stopReaper();
    const pidFile = this.env.RABBITMQ_PID_FILE as string;
    const script = [
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
      `[ -f '${pidFile}' ] && kill -9 "$(cat '${pidFile}')" 2>/dev/null`,
      `kill -9 ${wrapperPid} 2>/dev/null`,
      'sleep 1',
      `rm -rf '${this.dir}'`,
    ].join('; ');
    const reaper = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore' });
    reaper.unref();
    this.reaper = reaper;
  }

  private stopReaper(): void {
    if (this.reaper?.pid && this.reaper.exitCode === null) {
      try {
        process.kill(this.reaper.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.reaper = undefined;
  }
}

/** Whether this machine can black-hole loopback traffic (root and an iptables that works). */
export function canCutOff(): boolean {
  return process.getuid?.() === 0 && spawnSync('iptables', ['-L', 'INPUT', '-n'], { stdio: 'ignore' }).status === 0;
}

function iptables(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('iptables', ['-w', '5', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`iptables ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
