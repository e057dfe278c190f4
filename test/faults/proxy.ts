/**
 * An in-process TCP proxy between the pipeline's processes and the throwaway node, for
 * network faults: a black hole (nothing moves either way, sockets stay open, like a
 * partition: TCP bytes are held, never lost), a reset of every connection, and resume.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

interface Pair {
  id: number;
  client: Socket;
  upstream: Socket | undefined;
  opened: number;
  /** Held by a trap: stays paused through resume(). */
  held: boolean;
}

/** A handle on the connection a trap caught. */
export interface CaughtConnection {
  id: number;
  /** Resets both sides (the broker then sees the connection die). */
  reset(): void;
}

/**
 * Watches the bytes one way for a marker. `up` is client to broker (publishes, acks),
 * `down` is broker to client (deliveries, confirms). With `hold`, the chunk holding the marker
 * is forwarded and then nothing more from that side: e.g. a result publish goes out, its ack never does.
 */
export interface Trap {
  direction: 'up' | 'down';
  /** Every one of these must be in the same chunk. */
  marker: string | string[];
  hold?: boolean;
  onTrip: (conn: CaughtConnection) => void;
}

export class TcpProxy {
  readonly port: number;
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private holes = false;
  private readonly traps = new Set<Trap & { bytes: Buffer[] }>();
  private nextId = 1;
  /** Connections accepted since start. */
  accepted = 0;

  private constructor(
    server: Server,
    private readonly targetPort: number,
  ) {
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new TcpProxy(server, targetPort);
    server.on('connection', (s) => proxy.accept(s));
    return proxy;
  }

  /** amqp:// URL through the proxy. */
  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  get blackholed(): boolean {
    return this.holes;
  }

  /** Stops forwarding in both directions without closing anything (new connections wait too). */
  blackhole(): void {
    this.holes = true;
    for (const p of this.pairs) {
      p.client.pause();
      p.upstream?.pause();
    }
  }

  /** Forwards again: held bytes flow, held new connections reach the broker. */
  resume(): void {
    this.holes = false;
    for (const p of this.pairs) {
      if (!p.upstream) this.link(p);
      if (p.held) continue;
      p.client.resume();
      p.upstream?.resume();
    }
  }

  /** Adds a trap; returns its removal. */
  trap(t: Trap): () => void {
    const entry = { ...t, bytes: (Array.isArray(t.marker) ? t.marker : [t.marker]).map((m) => Buffer.from(m)) };
    this.traps.add(entry);
    return () => this.traps.delete(entry);
  }

  private tripped(pair: Pair, direction: 'up' | 'down', d: Buffer): Trap | undefined {
    for (const t of this.traps) {
      if (t.direction !== direction || !t.bytes.every((b) => d.indexOf(b) >= 0)) continue;
      const conn: CaughtConnection = { id: pair.id, reset: () => this.drop(pair, true) };
      if (t.hold) pair.held = true;
      t.onTrip(conn);
      return t;
    }
    return undefined;
  }

  /** Resets every connection (RST to both sides). */
  resetAll(): number {
    const n = this.pairs.size;
    for (const p of [...this.pairs]) this.drop(p, true);
    return n;
  }

  async close(): Promise<void> {
    this.resetAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted++;
    client.setNoDelay(true);
    const pair: Pair = { id: this.nextId++, client, upstream: undefined, opened: Date.now(), held: false };
    this.pairs.add(pair);
    client.on('error', () => this.drop(pair, false));
    client.on('close', () => this.drop(pair, false));
    client.pause();
    if (!this.holes) this.link(pair);
  }

  private link(pair: Pair): void {
    const upstream = connect({ host: '127.0.0.1', port: this.targetPort, noDelay: true });
    pair.upstream = upstream;
    upstream.on('error', () => this.drop(pair, false));
    upstream.on('close', () => this.drop(pair, false));
    // Hand-made piping, so pause() really holds both directions during a black hole.
    pair.client.on('data', (d: Buffer) => {
      if (pair.held) return;
      const trap = this.traps.size ? this.tripped(pair, 'up', d) : undefined;
      if (!upstream.write(d) || trap?.hold) pair.client.pause();
    });
    upstream.on('drain', () => {
      if (!this.holes && !pair.held) pair.client.resume();
    });
    upstream.on('data', (d: Buffer) => {
      if (pair.held) return;
      const trap = this.traps.size ? this.tripped(pair, 'down', d) : undefined;
      if (!pair.client.write(d) || trap?.hold) upstream.pause();
    });
    pair.client.on('drain', () => {
      if (!this.holes && !pair.held) upstream.resume();
    });
    pair.client.on('end', () => upstream.end());
    upstream.on('end', () => pair.client.end());
    if (this.holes) upstream.pause();
    else pair.client.resume();
  }

  private drop(pair: Pair, reset: boolean): void {
    if (!this.pairs.delete(pair)) {
      if (!reset) return;
    }
    for (const s of [pair.client, pair.upstream]) {
      if (!s || s.destroyed) continue;
      if (reset) s.resetAndDestroy();
      else s.destroy();
    }
  }
}
