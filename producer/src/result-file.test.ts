import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { outputKey, type Emitted } from './collector.js';
import { ResultFile } from './result-file.js';

const dir = mkdtempSync(join(tmpdir(), 'result-file-'));
let n = 0;
const fresh = () => join(dir, `out-${++n}.jsonl`);

const part = (id: string, index: number, last: boolean): Emitted => ({
  type: 'result',
  batch: 'B1',
  id,
  input: { from: 1, to: 10 },
  result: { ok: true, kind: 'primes', primes: [index], part: { index, last } },
});
const combined: Emitted = {
  type: 'combined',
  batch: 'B1',
  kind: 'primes',
  input: { from: 1, to: 100 },
  jobs: 4,
  result: { ok: true, kind: 'primes', summary: { count: 25, first: 2, last: 97, sum: '1060' } },
};
const failure: Emitted = { type: 'result', batch: 'B1', id: 'B1.3', input: { url: 'http://x/' }, result: { ok: false, kind: 'title', error: { code: 'E', message: 'no' } } };

describe('ResultFile', () => {
  it('when results are written, then they are JSON lines in order and known by their keys', async () => {
    const path = fresh();
    const f = await ResultFile.open(path);
    await Promise.all([f.write(part('B1.0', 0, false)), f.write(part('B1.0', 1, true)), f.write(combined)]);
    await f.close();
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => (l.part as { index: number } | undefined)?.index ?? 'combined')).toEqual([0, 1, 'combined']);
  });

  it('when the file is opened again, then every piece it holds is known, and writing one again adds nothing', async () => {
    const path = fresh();
    const first = await ResultFile.open(path);
    for (const r of [part('B1.0', 0, false), failure, combined]) await first.write(r);
    await first.close();
    const again = await ResultFile.open(path);
    expect(again.resumedLines).toBe(3);
    for (const r of [part('B1.0', 0, false), failure, combined]) expect(again.has(outputKey(r))).toBe(true);
    expect(again.has(outputKey(part('B1.0', 1, true)))).toBe(false);
    await again.write(failure);
    await again.write(part('B1.0', 1, true));
    await again.close();
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(4);
  });

  it('when the last line was cut short by a crash, then it is removed and its result is owed again', async () => {
    const path = fresh();
    const f = await ResultFile.open(path);
    await f.write(part('B1.0', 0, false));
    await f.close();
    appendFileSync(path, '{"batch":"B1","id":"B1.0","input":{},"ok":true,"kind":"pri');
    const again = await ResultFile.open(path);
    expect(again.resumedLines).toBe(1);
    expect(again.has(outputKey(part('B1.0', 1, true)))).toBe(false);
    await again.write(part('B1.0', 1, true));
    await again.close();
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines.slice(0, -1).map((l) => JSON.parse(l) as unknown)).toHaveLength(2);
    expect(lines.at(-1)).toBe('');
  });

  it('when the file is not pipeline output, then opening it says so instead of appending to it', async () => {
    const path = fresh();
    writeFileSync(path, 'hello\n');
    await expect(ResultFile.open(path)).rejects.toThrow(/not a pipeline output file: line 1 is not JSON/);
    expect(readFileSync(path, 'utf8')).toBe('hello\n');
  });
});
