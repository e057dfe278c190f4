/** One line of a benchmark table: our figure beside a baseline measured in the same run. */
export interface Row {
  suite: string;
  case: string;
  /** Our figure. */
  ours: number;
  /** The baseline's figure, measured in the same run (undefined if it could not be run). */
  baseline?: number;
  /** What the baseline is (e.g. "primesieve -t1"). */
  baselineName?: string;
  /** Unit of both figures, e.g. "s", "ms", "jobs/s", "MB". */
  unit: string;
  /** True when bigger figures are better (rates); false for times and sizes. */
  higherIsBetter: boolean;
  /** The target, stated as the issue states it, e.g. "<= 2.5x primesieve". */
  target?: string;
  /** Whether the target is met (undefined when there is no target or no baseline). */
  met?: boolean;
  note?: string;
}

/** Our figure divided by the baseline's (for times, < 1 means we are faster; for rates, > 1). */
export function ratio(row: Row): number | undefined {
  if (row.baseline === undefined || row.baseline === 0) return undefined;
  return row.ours / row.baseline;
}

function fmt(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return '-';
  if (n === 0) return '0';
  const abs = Math.abs(n);
  if (abs >= 100) return n.toFixed(0);
  if (abs >= 10) return n.toFixed(1);
  if (abs >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

/** A Markdown table (readable in a terminal and pasteable into docs/benchmarks.md). */
export function renderTable(rows: readonly Row[]): string {
  const header = ['suite', 'case', 'ours', 'baseline', 'unit', 'ours/baseline', 'target', 'met', 'note'];
  const body = rows.map((r) => [
    r.suite,
    r.case,
    fmt(r.ours),
    r.baseline === undefined ? '-' : `${fmt(r.baseline)} (${r.baselineName ?? 'baseline'})`,
    r.unit,
    ratio(r) === undefined ? '-' : `${fmt(ratio(r))}x`,
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : 'NO',
    r.note ?? '',
  ]);
  const lines = [header, header.map(() => '---'), ...body];
  return lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}
