import type { Emitted } from './collector.js';

/**
 * One JSON object per line: the batch, the job's id and input, then the result as the
 * service sent it (with `part` when a long list comes in parts). A combined summary has
 * the whole request as `input` and the number of `jobs` instead of an id.
 */
export function jsonLine(r: Emitted): string {
  if (r.type === 'combined') return `${JSON.stringify({ batch: r.batch, input: r.input, jobs: r.jobs, ...r.result })}\n`;
  return `${JSON.stringify({ batch: r.batch, id: r.id, input: r.input, ...r.result })}\n`;
}

function describeInput(input: Record<string, unknown>): string {
  if (typeof input.url === 'string') return input.url;
  if (typeof input.from === 'number' && typeof input.to === 'number') return `${input.from}..${input.to}`;
  return '(unknown job)';
}

/** Wraps a list of values into lines of at most `width` characters, indented. */
function wrap(values: readonly unknown[], width: number, indent = '  '): string {
  const lines: string[] = [];
  let line = indent;
  for (const v of values) {
    const s = String(v);
    if (line.length > indent.length && line.length + 1 + s.length > width) {
      lines.push(line);
      line = indent;
    }
    line += line.length > indent.length ? ` ${s}` : s;
  }
  if (line.length > indent.length) lines.push(line);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

function describeSummary(kind: string, s: { count: number; first: unknown; last: unknown; sum: string }): string {
  if (s.count === 0) return `no ${kind}`;
  return `${s.count} ${kind}, first ${String(s.first)}, last ${String(s.last)}, sum ${s.sum}`;
}

/**
 * Results for people: a header line, then the values wrapped to the terminal's width.
 * A long list arriving in parts gets one header, and "(continued)" if another result
 * was printed in between.
 */
export class HumanPrinter {
  private lastKey = '';

  constructor(private readonly width = 80) {}

  format(r: Emitted): string {
    const what = describeInput(r.input);
    const res = r.result;
    if (r.type === 'combined') {
      this.lastKey = '';
      if (!res.ok) return `${res.kind} in ${what}: FAILED ${res.error.code}: ${res.error.message}\n`;
      if (!('summary' in res)) return '';
      return `${res.kind} in ${what}: ${describeSummary(res.kind, res.summary)} (${r.jobs} job${r.jobs === 1 ? '' : 's'})\n`;
    }
    const key = `${r.id}:${res.kind}`;
    if (!res.ok) {
      this.lastKey = '';
      return `${res.kind} ${what}: FAILED ${res.error.code}: ${res.error.message}\n`;
    }
    if ('summary' in res) {
      this.lastKey = '';
      return `${res.kind} in ${what}: ${describeSummary(res.kind, res.summary)}\n`;
    }
    if (res.kind === 'title') {
      this.lastKey = '';
      return `title of ${what}: ${JSON.stringify(res.title)}${res.source === 'og:title' ? ' (from og:title)' : ''}\n`;
    }
    const values: readonly unknown[] = res.kind === 'primes' ? res.primes : res.squares;
    const label = res.kind === 'primes' ? `primes in ${what}` : `squares of ${what}`;
    let header = '';
    if (!res.part) header = `${label} (${values.length}):\n`;
    else if (res.part.index === 0) header = `${label}:\n`;
    else if (this.lastKey !== key) header = `${label} (continued):\n`;
    this.lastKey = res.part && !res.part.last ? key : '';
    return header + wrap(values, this.width);
  }
}
