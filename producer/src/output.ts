import type { CollectedResult } from './collector.js';

/** One JSON object per line: the batch, the job's id and input, then the result as received. */
export function jsonLine(r: CollectedResult): string {
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
  return lines.join('\n');
}

/** A result for people: a header line, then the values wrapped to the terminal's width. */
export function humanLines(r: CollectedResult, width = 80): string {
  const what = describeInput(r.input);
  const res = r.result;
  if (!res.ok) return `${res.kind} ${what}: FAILED ${res.error.code}: ${res.error.message}\n`;
  switch (res.kind) {
    case 'primes':
      return `primes in ${what} (${res.primes.length}):\n${wrap(res.primes, width)}\n`;
    case 'squares':
      return `squares of ${what} (${res.squares.length}):\n${wrap(res.squares, width)}\n`;
    case 'title':
      return `title of ${what}: ${JSON.stringify(res.title)}${res.source === 'og:title' ? ' (from og:title)' : ''}\n`;
  }
}
