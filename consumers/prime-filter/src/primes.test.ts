import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as api from './primes.js';
import { SEGMENT_SPAN, kernelMemoryBytes, kernelName, kernels, type PrimeKernel } from './primes.js';

// ---------------------------------------------------------------------------------------------
// Slow, obviously-correct references
// ---------------------------------------------------------------------------------------------

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** Trial division over every number of the range. */
function trialDivision(from: number, to: number): number[] {
  const out: number[] = [];
  for (let n = from; n <= to; n++) if (isPrime(n)) out.push(n);
  return out;
}

/** Primes <= limit by a plain (unsegmented, byte-per-number) sieve. */
const smallPrimeCache = new Map<number, number[]>();
function plainSieve(limit: number): number[] {
  const cached = smallPrimeCache.get(limit);
  if (cached) return cached;
  const composite = new Uint8Array(limit + 1);
  const out: number[] = [];
  for (let i = 2; i <= limit; i++) {
    if (composite[i]) continue;
    out.push(i);
    for (let m = i * i; m <= limit; m += i) composite[m] = 1;
  }
  smallPrimeCache.set(limit, out);
  return out;
}

/** A plain sieve of [from, to] (one byte per number, no wheel, no segments), for wide ranges. */
function rangeSieve(from: number, to: number): number[] {
  const lo = Math.max(from, 2);
  if (to < lo) return [];
  const composite = new Uint8Array(to - lo + 1);
  for (const p of plainSieve(Math.floor(Math.sqrt(to)))) {
    if (p * p > to) break;
    const rem = lo % p;
    let m = rem === 0 ? lo : lo + (p - rem);
    if (m < p * p) m = p * p;
    for (; m <= to; m += p) composite[m - lo] = 1;
  }
  const out: number[] = [];
  for (let i = 0; i < composite.length; i++) if (composite[i] === 0) out.push(lo + i);
  return out;
}

const asArray = (primes: Float64Array): number[] => Array.from(primes);

function sumOf(primes: readonly number[]): bigint {
  return primes.reduce((acc, p) => acc + BigInt(p), 0n);
}

/** A small deterministic generator, so that failures reproduce. */
function makeRandom(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
}

// ---------------------------------------------------------------------------------------------

/**
 * The reference checks, run against one kernel (each kernel explicitly, and the public functions,
 * which use the active kernel).
 */
function referenceSuite(k: PrimeKernel): void {
  const { countPrimes, forEachPrimeChunk, primesBetween } = k;
  // This kernel's segment (the seams below are its seams): shadows the JS kernel's constant.
  const SEGMENT_SPAN = k.segmentSpan;

  describe('primesBetween', () => {
    it('when asked for 2..100, then it returns the 25 primes of the original example', () => {
      expect(asArray(primesBetween(2, 100))).toEqual([2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]);
    });

    it('when the result is returned, then it is a Float64Array sized to the primes found', () => {
      const primes = primesBetween(1, 1000);
      expect(primes).toBeInstanceOf(Float64Array);
      expect(primes.length).toBe(168);
      expect(primes.buffer.byteLength).toBe(168 * 8);
    });

    it('when the range is at or below 2, then edges are right (0, 1, 2, negatives)', () => {
      expect(asArray(primesBetween(0, 0))).toEqual([]);
      expect(asArray(primesBetween(0, 1))).toEqual([]);
      expect(asArray(primesBetween(1, 1))).toEqual([]);
      expect(asArray(primesBetween(-50, -1))).toEqual([]);
      expect(asArray(primesBetween(-10, 2))).toEqual([2]);
      expect(asArray(primesBetween(2, 2))).toEqual([2]);
      expect(asArray(primesBetween(3, 3))).toEqual([3]);
      expect(asArray(primesBetween(4, 4))).toEqual([]);
      expect(asArray(primesBetween(0, 7))).toEqual([2, 3, 5, 7]);
      expect(asArray(primesBetween(10, 3))).toEqual([]);
    });

    it('when the range starts or ends on a small prime of the wheel or of the pre-sieve, then that prime is kept', () => {
      for (let from = 0; from <= 70; from++) {
        for (const to of [from, from + 1, from + 29, from + 30, 120]) {
          expect(asArray(primesBetween(from, to)), `${from}..${to}`).toEqual(trialDivision(from, to));
        }
      }
    });

    it('when given many random small ranges, then it agrees with trial division', () => {
      const rand = makeRandom(12345);
      for (let i = 0; i < 300; i++) {
        const from = rand(200_000) - 100;
        const to = from + rand(3000);
        expect(asArray(primesBetween(from, to)), `${from}..${to}`).toEqual(trialDivision(from, to));
      }
    });

    it('when given random ranges up to 10^12, then it agrees with trial division', { timeout: 30_000 }, () => {
      const rand = makeRandom(777);
      for (let i = 0; i < 25; i++) {
        const from = rand(2 ** 30) * 1000 + rand(1000);
        const to = from + rand(300);
        expect(asArray(primesBetween(from, to)), `${from}..${to}`).toEqual(trialDivision(from, to));
      }
    });

    it('when given random wide ranges between 10^9 and 10^13, then it agrees with a plain sieve', { timeout: 30_000 }, () => {
      const rand = makeRandom(99);
      for (let i = 0; i < 8; i++) {
        const from = 1e9 + rand(10_000) * 1e9 + rand(1e9);
        const to = from + rand(2_000_000);
        expect(asArray(primesBetween(from, to)), `${from}..${to}`).toEqual(rangeSieve(from, to));
      }
    });

    it('when a range lies inside one segment, then it matches the reference', () => {
      const from = 3 * SEGMENT_SPAN + 12_345;
      expect(asArray(primesBetween(from, from + 5000))).toEqual(trialDivision(from, from + 5000));
    });

    it('when a range crosses segment boundaries, then nothing is lost or doubled at the seams', { timeout: 30_000 }, () => {
      // Segments are aligned on multiples of 30 from the range's start; starting at 0 they begin at
      // k * SEGMENT_SPAN, so these windows straddle the first seams.
      for (const k of [1, 2, 3]) {
        const seam = k * SEGMENT_SPAN;
        expect(asArray(primesBetween(seam - 500, seam + 500)), `seam ${k}`).toEqual(trialDivision(seam - 500, seam + 500));
        // A range started at 0 has its seam exactly here.
        const whole = asArray(primesBetween(0, seam + 300));
        expect(whole.length).toBe(countPrimes(0, seam + 300).count);
        expect(whole.filter((p) => p > seam - 500)).toEqual(trialDivision(seam - 499, seam + 300));
      }
      expect(primesBetween(1, 300_000).length).toBe(25997);
      // A range of several segments, from an unaligned start, against a plain sieve.
      const from = 1_000_003;
      const to = from + 3 * SEGMENT_SPAN + 17;
      expect(asArray(primesBetween(from, to))).toEqual(rangeSieve(from, to));
    });

    it('when the range needs the bucket sieve (primes above 2^16), then seams and starts are right', { timeout: 30_000 }, () => {
      // sqrt(5e9) > 2^16, so the largest sieving primes go through the buckets here.
      const from = 5e9 - 2 * SEGMENT_SPAN - 7;
      const to = 5e9 + SEGMENT_SPAN + 11;
      expect(asArray(primesBetween(from, to))).toEqual(rangeSieve(from, to));
      const far = 1e12 + 123;
      expect(asArray(primesBetween(far, far + SEGMENT_SPAN + 999))).toEqual(rangeSieve(far, far + SEGMENT_SPAN + 999));
    });

    it('when the range is near 2^53, then it finds the known largest primes below 2^53', { timeout: 30_000 }, () => {
      const top = Number.MAX_SAFE_INTEGER; // 2^53 - 1
      // 2^53 - 111 is the largest prime below 2^53 and 2^53 - 145 the one before it
      // (checked once by trial division, which is exact below 2^53).
      expect(asArray(primesBetween(top - 200, top))).toEqual([2 ** 53 - 145, 2 ** 53 - 111]);
      expect(asArray(primesBetween(top, top))).toEqual([]);
      expect(asArray(primesBetween(2 ** 53 - 111, 2 ** 53 - 111))).toEqual([2 ** 53 - 111]);
    });

    it('when the range is around 10^12, then the count matches the known value', () => {
      // pi(10^12 + 10^4) - pi(10^12) = 335 (counted once by trial division).
      const from = 1e12;
      const to = 1e12 + 1e4;
      const found = primesBetween(from, to);
      expect(found.length).toBe(335);
      for (const p of found.slice(0, 5)) expect(isPrime(p)).toBe(true);
    });

    it('when the bounds are not safe integers, then it throws a RangeError', () => {
      expect(() => primesBetween(0.5, 10)).toThrow(RangeError);
      expect(() => primesBetween(0, 2 ** 53)).toThrow(RangeError);
      expect(() => primesBetween(Number.NaN, 10)).toThrow(RangeError);
      expect(() => primesBetween(0, Number.POSITIVE_INFINITY)).toThrow(RangeError);
    });
  });

  describe('forEachPrimeChunk', () => {
    function collect(from: number, to: number): { primes: number[]; chunks: number } {
      const primes: number[] = [];
      let chunks = 0;
      forEachPrimeChunk(from, to, (chunk, length) => {
        chunks++;
        expect(length).toBeGreaterThan(0);
        expect(length).toBeLessThanOrEqual(chunk.length);
        for (let i = 0; i < length; i++) primes.push(chunk[i]!);
      });
      return { primes, chunks };
    }

    it('when the chunks are concatenated, then they equal primesBetween (over several segments)', { timeout: 30_000 }, () => {
      const from = 1e9 - SEGMENT_SPAN;
      const to = 1e9 + 2 * SEGMENT_SPAN;
      const { primes, chunks } = collect(from, to);
      expect(chunks).toBeGreaterThanOrEqual(3);
      expect(primes).toEqual(asArray(primesBetween(from, to)));
    });

    it('when the range starts below 7, then the wheel primes come first and in order', () => {
      expect(collect(-5, 40).primes).toEqual(trialDivision(0, 40));
      expect(collect(4, 4).primes).toEqual([]);
      expect(collect(-5, -1).chunks).toBe(0);
    });

    it('when the visitor calls the sieve itself, then both results stay right', () => {
      const outer: number[] = [];
      forEachPrimeChunk(1, 2 * SEGMENT_SPAN, (chunk, length) => {
        expect(asArray(primesBetween(90, 110))).toEqual([97, 101, 103, 107, 109]);
        for (let i = 0; i < length; i++) outer.push(chunk[i]!);
      });
      expect(outer.length).toBe(countPrimes(1, 2 * SEGMENT_SPAN).count);
    });
  });

  describe('countPrimes', () => {
    it('when counting up to 100, then count, first, last and sum are right', () => {
      expect(countPrimes(1, 100)).toEqual({ count: 25, first: 2, last: 97, sum: 1060n });
    });

    it('when the range has no primes, then first and last are null', () => {
      expect(countPrimes(-10, 1)).toEqual({ count: 0, first: null, last: null, sum: 0n });
      expect(countPrimes(24, 28)).toEqual({ count: 0, first: null, last: null, sum: 0n });
      expect(countPrimes(100, 10)).toEqual({ count: 0, first: null, last: null, sum: 0n });
    });

    it('when counting up to 10^6, then the sum is 37550402023', () => {
      expect(countPrimes(0, 1e6)).toEqual({ count: 78498, first: 2, last: 999_983, sum: 37_550_402_023n });
    });

    it('when given random ranges, then it agrees with the listed primes', () => {
      const rand = makeRandom(4242);
      for (let i = 0; i < 100; i++) {
        const from = rand(3_000_000) - 10;
        const to = from + rand(100_000);
        const ref = rangeSieve(from, to);
        expect(countPrimes(from, to), `${from}..${to}`).toEqual({
          count: ref.length,
          first: ref[0] ?? null,
          last: ref[ref.length - 1] ?? null,
          sum: sumOf(ref),
        });
      }
    });

    it('when counting [10^12, 10^12 + 10^6], then there are 36249 primes', () => {
      // 36249 checked with `primesieve 1e12 1000001000000 -c` and an independent C sieve.
      const s = countPrimes(1e12, 1e12 + 1e6);
      expect(s.count).toBe(36249);
      expect(s.first).toBe(1_000_000_000_039);
      expect(s.last).toBe(1_000_000_999_999);
      expect(s.sum).toBe(36_249_018_122_131_905n);
    });

    it('when counting [2^53 - 10^6, 2^53 - 1], then the wide top range matches the known figures', { timeout: 30_000 }, () => {
      // Checked with `primesieve 9007199253740992 9007199254740991 -c` (count) and an independent
      // C sieve with 128-bit sums (count, first, last, sum).
      const from = 2 ** 53 - 1e6;
      const to = Number.MAX_SAFE_INTEGER;
      const summary = countPrimes(from, to);
      expect(summary).toEqual({ count: 27_396, first: 9_007_199_253_741_163, last: 2 ** 53 - 111, sum: 246_761_230_769_158_925_930n });
      const listed = asArray(primesBetween(from, to));
      expect(listed.length).toBe(27_396);
      expect(sumOf(listed)).toBe(summary.sum);
      expect(isPrime(listed[0]!)).toBe(true);
    });

    it('when counting up to 10^9, then pi(10^9) = 50847534 and the sum is exact', { timeout: 30_000 }, () => {
      // Sum of the primes below 10^9 (OEIS A046731), also checked with an independent C sieve.
      expect(countPrimes(1, 1e9)).toEqual({ count: 50_847_534, first: 2, last: 999_999_937, sum: 24_739_512_092_254_535n });
    });
  });
}

// ---------------------------------------------------------------------------------------------

describe('kernels', () => {
  it('when build/sieve.wasm is built, then the WebAssembly kernel loads and is the active one', () => {
    expect(kernels.wasm, 'build/sieve.wasm is missing or broken: run `npm run build:wasm -w consumers/prime-filter`').toBeDefined();
    expect(kernels.js.name).toBe('js');
    if (process.env['PRIME_SIEVE_KERNEL'] !== 'js') expect(kernelName()).toBe('wasm');
  });
});

// The fallback is checked on the compiled module (dist/primes.js), like pool.test.ts.
const distPrimes = new URL('../dist/primes.js', import.meta.url);
describe.skipIf(!existsSync(distPrimes))('kernel fallback (built module from dist)', () => {
  it('when build/sieve.wasm is missing, then the JS kernel answers', async () => {
    // A copy of the module where ../build/sieve.wasm does not exist.
    const dir = mkdtempSync(join(tmpdir(), 'prime-filter-'));
    try {
      mkdirSync(join(dir, 'dist'));
      copyFileSync(fileURLToPath(distPrimes), join(dir, 'dist', 'primes.js'));
      if (existsSync(fileURLToPath(distPrimes) + '.map')) copyFileSync(fileURLToPath(distPrimes) + '.map', join(dir, 'dist', 'primes.js.map'));
      const mod = (await import(pathToFileURL(join(dir, 'dist', 'primes.js')).href)) as typeof api;
      expect(mod.kernelName()).toBe('js');
      expect(mod.kernels.wasm).toBeUndefined();
      expect(mod.kernelMemoryBytes()).toBe(0);
      expect(mod.countPrimes(1, 100)).toEqual({ count: 25, first: 2, last: 97, sum: 1060n });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('when PRIME_SIEVE_KERNEL=js is set, then the JS kernel is the active one', () => {
    const script = `import(${JSON.stringify(distPrimes.href)}).then((m) => console.log(m.kernelName(), m.countPrimes(1, 1e6).count))`;
    const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, PRIME_SIEVE_KERNEL: 'js' } });
    expect(out.stdout.trim()).toBe('js 78498');
  });
});

describe('public functions', () => {
  it('when called, then they answer as the active kernel (the full checks run per kernel below)', () => {
    expect(kernels.js.segmentSpan).toBe(SEGMENT_SPAN);
    const active = kernels[kernelName()]!;
    expect(asArray(api.primesBetween(2, 100))).toEqual([2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]);
    expect(api.countPrimes(0, 1e6)).toEqual({ count: 78498, first: 2, last: 999_983, sum: 37_550_402_023n });
    const from = 1e12 - 2 * SEGMENT_SPAN;
    const to = 1e12 + 1e5;
    expect(api.countPrimes(from, to)).toEqual(active.countPrimes(from, to));
    expect(asArray(api.primesBetween(from, to))).toEqual(asArray(active.primesBetween(from, to)));
    const chunks: number[] = [];
    api.forEachPrimeChunk(from, to, (chunk, length) => {
      for (let i = 0; i < length; i++) chunks.push(chunk[i]!);
    });
    expect(chunks).toEqual(asArray(active.primesBetween(from, to)));
  });
});

describe('js kernel', () => referenceSuite(kernels.js));
describe.runIf(kernels.wasm !== undefined)('wasm kernel', () => {
  const wasm = kernels.wasm!;
  const SEGMENT_SPAN = wasm.segmentSpan;
  referenceSuite(wasm);

  describe('against the js kernel', () => {
    const js = kernels.js;

    it('when given random ranges of all sizes and heights, then both kernels list and count the same', { timeout: 60_000 }, () => {
      const rand = makeRandom(2024);
      for (let i = 0; i < 60; i++) {
        // Heights from 10^1 to 2^53, widths from 0 to several segments (buckets, seams, tails).
        const height = 10 ** (1 + rand(15)) + rand(1e6) * 1e6;
        const width = i % 5 === 0 ? 2 * SEGMENT_SPAN + rand(SEGMENT_SPAN) : rand(10 ** (1 + rand(6)));
        const from = Math.min(height, Number.MAX_SAFE_INTEGER - width);
        const to = from + width;
        expect(wasm.countPrimes(from, to), `${from}..${to}`).toEqual(js.countPrimes(from, to));
        if (width < 3e6) expect(asArray(wasm.primesBetween(from, to)), `${from}..${to}`).toEqual(asArray(js.primesBetween(from, to)));
      }
    });

    it('when the range ends at 2^53 - 1 and spans segments, then both kernels agree', { timeout: 60_000 }, () => {
      const from = Number.MAX_SAFE_INTEGER - 2 * SEGMENT_SPAN - 12_345;
      const to = Number.MAX_SAFE_INTEGER;
      expect(wasm.countPrimes(from, to)).toEqual(js.countPrimes(from, to));
    });

    it('when ranges start and end around the L1 sub-blocks of a segment, then both kernels list the same primes', () => {
      // The smallest sieving primes are crossed 32 KiB (983,040 numbers) at a time inside a
      // segment; the JS kernel has no such blocks, so it is an independent check of the seams.
      const BLOCK_SPAN = 30 * 32 * 1024;
      for (const base of [0, 1e9, 1e12]) {
        for (let k = 1; k <= 3; k++) {
          for (const d of [-31, -1, 0, 1, 29]) {
            const from = Math.max(0, base + k * BLOCK_SPAN + d);
            const to = from + 2 * BLOCK_SPAN + 7 * d;
            expect(asArray(wasm.primesBetween(from, to)), `${from}..${to}`).toEqual(asArray(js.primesBetween(from, to)));
          }
        }
      }
    });

    it('when every start and end residue is tried around a seam, then both kernels agree', () => {
      for (let d = 0; d < 60; d++) {
        const from = SEGMENT_SPAN - 30 + d;
        const to = 2 * SEGMENT_SPAN + d;
        expect(wasm.countPrimes(from, to), `${from}..${to}`).toEqual(js.countPrimes(from, to));
      }
    });
  });

  it('when visitors nest open ranges until the wasm memory grows, then every listing stays right', { timeout: 60_000 }, () => {
    // Each open range of more than one segment holds a segment buffer in linear memory, so nesting
    // 200 of them outgrows the initial memory: memory.grow detaches the ArrayBuffer that the outer
    // levels read their primes through.
    const from = 1e9;
    const to = 1e9 + SEGMENT_SPAN + 1000;
    const ref = kernels.js.countPrimes(from, to);
    const before = kernelMemoryBytes();
    let maxMemory = before;
    const nest = (depth: number): { count: number; sum: number; last: number } => {
      const seen = { count: 0, sum: 0, last: 0 };
      wasm.forEachPrimeChunk(from, to, (chunk, length) => {
        if (seen.count === 0 && depth > 0) expect(nest(depth - 1)).toEqual(nest0);
        maxMemory = Math.max(maxMemory, kernelMemoryBytes());
        for (let i = 0; i < length; i++) {
          const p = chunk[i]!;
          if (p <= seen.last) throw new Error(`not ascending at ${p}`);
          seen.count++;
          seen.sum += p;
          seen.last = p;
        }
      });
      return seen;
    };
    const nest0 = { count: ref.count, sum: Number(ref.sum), last: ref.last! };
    expect(nest(200)).toEqual(nest0);
    expect(maxMemory).toBeGreaterThan(before);
  });

  it('when sieving many ranges in a row, then the wasm memory does not keep growing', { timeout: 30_000 }, () => {
    const round = (i: number): void => {
      wasm.countPrimes(1e12 + i * 1e6, 1e12 + (i + 1) * 1e6);
      wasm.primesBetween(1e9 + i * 1e5, 1e9 + (i + 1) * 1e5);
      wasm.countPrimes(1e13 + i * 1e7, 1e13 + (i + 1) * 1e7);
    };
    for (let i = 0; i < 20; i++) round(i);
    const before = kernelMemoryBytes();
    for (let i = 20; i < 120; i++) round(i);
    expect(before).toBeGreaterThan(0);
    expect(kernelMemoryBytes()).toBe(before);
  });
});
