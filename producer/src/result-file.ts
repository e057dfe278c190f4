import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { outputKey, type Emitted } from './collector.js';
import { jsonLine } from './output.js';

/**
 * An output file that makes results exactly-once across producer sessions: JSON lines
 * (as `--json` prints them), appended, and read back when opened again, so a `collect`
 * after a crash skips every result (or part, or combined summary) the file already holds.
 *
 * Why a file and not stdout: the producer acknowledges replies about once a second, after
 * writing them out; whatever was written in the last second before a crash is still owed
 * to the broker. Only an output that can be read back can tell `collect` it already has it.
 *
 * A line cut short by the crash (no newline at the end) is removed when the file is opened.
 * Lines reach the kernel before their replies are acknowledged, so a killed process loses
 * nothing; `sync()` (called on close) also survives a machine crash.
 */
export class ResultFile {
  private chain: Promise<void> = Promise.resolve();
  private failed: Error | undefined;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly keys: Set<string>,
    /** Lines the file held when it was opened (after removing a cut-off last line). */
    readonly resumedLines: number,
  ) {}

  /** Opens (or creates) the file for appending, after reading what it already holds. */
  static async open(path: string): Promise<ResultFile> {
    const keys = new Set<string>();
    let lines = 0;
    const size = await stat(path).then(
      (s) => s.size,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return 0;
        throw err;
      },
    );
    const handle = await open(path, size > 0 ? 'r+' : 'a');
    try {
      if (size > 0) {
        const complete = await lengthOfCompleteLines(handle, size);
        if (complete < size) await handle.truncate(complete);
        lines = await readKeys(path, complete, keys);
        await handle.close();
        return new ResultFile(path, await open(path, 'a'), keys, lines);
      }
      return new ResultFile(path, handle, keys, 0);
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
  }

  /** Whether the file already holds this piece of output (see `outputKey`). */
  has = (key: string): boolean => this.keys.has(key);

  /** Appends one result; resolves once it is written (lines keep their order). */
  write = (r: Emitted): Promise<void> => {
    const key = outputKey(r);
    if (this.keys.has(key)) return this.chain;
    this.keys.add(key);
    const line = jsonLine(r);
    this.chain = this.chain.then(async () => {
      if (this.failed) throw this.failed;
      try {
        await this.handle.write(line);
      } catch (err) {
        this.failed = err as Error;
        throw err;
      }
    });
    return this.chain;
  };

  /** Everything written so far, on disk. */
  async sync(): Promise<void> {
    await this.chain;
    await this.handle.sync();
  }

  async close(): Promise<void> {
    try {
      await this.sync();
    } finally {
      await this.handle.close();
    }
  }
}

/** Bytes up to and including the last newline (a cut-off last line is not counted). */
async function lengthOfCompleteLines(handle: FileHandle, size: number): Promise<number> {
  const block = Buffer.alloc(64 * 1024);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - block.length);
    const { bytesRead } = await handle.read(block, 0, end - start, start);
    const nl = block.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (nl >= 0) return start + nl + 1;
    end = start;
  }
  return 0;
}

async function readKeys(path: string, length: number, keys: Set<string>): Promise<number> {
  if (length === 0) return 0;
  const rl = createInterface({ input: createReadStream(path, { end: length - 1 }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) {
    n++;
    if (!line.trim()) continue;
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`${path} is not a pipeline output file: line ${n} is not JSON (choose another file for --out)`);
    }
    const key = lineKey(v);
    if (key === undefined) {
      throw new Error(`${path} is not a pipeline output file: line ${n} has no batch or kind (choose another file for --out)`);
    }
    keys.add(key);
  }
  return n;
}

/**
 * The `outputKey` of one line as `--json` and ResultFile write it (the batch, the job's id and
 * input, then the result; a combined summary has `jobs` and no id); undefined if it is not one.
 */
export function lineKey(line: Record<string, unknown>): string | undefined {
  const { batch, id, input, jobs, ...result } = line;
  if (typeof batch !== 'string' || typeof result.kind !== 'string') return undefined;
  return outputKey(
    id === undefined && typeof jobs === 'number'
      ? ({ type: 'combined', batch, kind: result.kind, input: {}, jobs, result } as unknown as Emitted)
      : ({ type: 'result', batch, id: String(id), input: (input ?? {}) as Record<string, unknown>, result } as unknown as Emitted),
  );
}
