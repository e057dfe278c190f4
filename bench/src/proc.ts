import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { loadConfig } from '@amqp-pipeline/shared';

/** Resident set size of a process, MB (Linux /proc); 0 if it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN if it is gone or pid is 0. */
export function cpuSeconds(pid: number): number {
  if (!pid) return Number.NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** The median of some measurements (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

let brokerPidMemo: number | undefined;

/**
 * The pid of the local broker's Erlang VM (beam.smp), so the bench can add the broker's CPU to
 * its notes: BEAM_PID if set, else the beam process listening on AMQP_URL's port when that URL
 * is on this machine (found through /proc/net/tcp and the processes' socket descriptors).
 * 0 when there is none to be found (a remote broker, a container, another OS); then the notes
 * leave the broker out.
 */
export function brokerPid(): number {
  brokerPidMemo ??= Number(process.env.BEAM_PID) || findLocalBroker(loadConfig(process.env).AMQP_URL);
  return brokerPidMemo;
}

function findLocalBroker(amqpUrl: string): number {
  try {
    const url = new URL(amqpUrl);
    if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(url.hostname)) return 0;
    const port = Number(url.port || (url.protocol === 'amqps:' ? 5671 : 5672));
    const inodes = new Set<string>();
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      let text = '';
      try {
        text = readFileSync(table, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; field 9 is the socket's inode.
        if (f.length > 9 && f[3] === '0A' && parseInt(f[1]!.split(':')[1]!, 16) === port) inodes.add(`socket:[${f[9]}]`);
      }
    }
    if (inodes.size === 0) return 0;
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('beam')) continue;
        if (readdirSync(`/proc/${pid}/fd`).some((fd) => inodes.has(safeReadlink(`/proc/${pid}/fd/${fd}`)))) return Number(pid);
      } catch {
        // the process ended, or is not ours to look at
      }
    }
  } catch {
    // not Linux, or an unparsable URL
  }
  return 0;
}

function safeReadlink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}
