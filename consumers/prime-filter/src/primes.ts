/**
 * Primes in [from, to] for any safe integers, by a segmented Sieve of Eratosthenes.
 *
 * Synchronous and without timers, so it runs as well inside a worker thread. The only I/O is
 * reading build/sieve.wasm once, when this module loads.
 *
 * Two kernels, same algorithm, same results
 * -----------------------------------------
 * - `wasm`: assembly/sieve.ts (AssemblyScript), compiled by `npm run build:wasm` to
 *   build/sieve.wasm. Used by the public functions whenever that file loads: measured about 2.2x
 *   faster on [1, 1e9] and 1.8x on [1e12, 1e12 + 1e9] (V8 compiles the crossing-off loops of the
 *   wasm to tighter machine code than those of typed-array JS; see assembly/sieve.ts).
 * - `js`: the code below, the reference and the fallback when the .wasm is missing or
 *   PRIME_SIEVE_KERNEL=js is set. kernelName() tells which one is active; `kernels` gives both.
 *   Both are checked against the same references by primes.test.ts, and against each other.
 *
 * How the kernel works
 * --------------------
 * - Wheel mod 30: apart from 2, 3 and 5, every prime is 30q + r with r one of the 8 residues
 *   1, 7, 11, 13, 17, 19, 23, 29. One byte holds those 8 candidates of the block [30q, 30q + 30),
 *   so a segment of S bytes covers 30 * S numbers. A set bit means "still possibly prime".
 * - Pre-sieving: the multiples of 7 ... 53 form periodic bit patterns (period = product of the
 *   primes of a group, in bytes). Each segment starts as a copy of the first pattern and is ANDed
 *   with the others, 32 bits at a time, instead of crossing those multiples one by one.
 * - Medium sieving primes (each hits every segment many times): the multiples p * m with m
 *   coprime to 30 split into 8 progressions, one per residue of m mod 30. Each progression
 *   always lands on the same bit and steps exactly p bytes, so crossing off is a tight strided
 *   loop `seg[i] &= mask; i += p`. The 8 offsets per prime carry over from segment to segment.
 * - Large sieving primes (a few hits per segment at most): a bucket sieve. Each prime sits in the
 *   bucket of the segment holding its next multiple and walks the wheel (one entry per prime,
 *   tables give the next byte step and bit), then moves on to a later bucket.
 * - Counting uses 256-entry tables: number of set bits and sum of the residues per byte, so the
 *   count and the exact sum never look at individual primes.
 *
 * Exactness near 2^53: candidate values are never formed from products that could pass 2^53.
 * Byte indices q = floor(n / 30) stay below 3.1e14, offsets come from `%` on safe integers (exact),
 * and floor divisions are done as (x - x % d) / d, which is exact.
 */

import { readFileSync } from 'node:fs';

/** A short description of the primes in a range. */
export interface PrimeSummary {
  count: number;
  first: number | null;
  last: number | null;
  sum: bigint;
}

// ---------------------------------------------------------------------------------------------
// Wheel tables
// ---------------------------------------------------------------------------------------------

/** The residues mod 30 coprime to 30; bit k of a byte stands for 30q + RESIDUES[k]. */
const RESIDUES = [1, 7, 11, 13, 17, 19, 23, 29] as const;
const res = (k: number): number => RESIDUES[k & 7]!;

/** Bit index of a residue mod 30 (-1 when not coprime to 30). */
const BIT_OF = new Int8Array(30).fill(-1);
for (let k = 0; k < 8; k++) BIT_OF[res(k)] = k;

/** Distance from RESIDUES[j] to the next residue (wrapping past 30). */
const GAP = new Uint8Array(8);
for (let j = 0; j < 8; j++) GAP[j] = j < 7 ? res(j + 1) - res(j) : 30 + res(0) - res(7);

/**
 * Tables indexed by w = 8 * (index of p mod 30) + j, for crossing off p * m with m = 30t + RESIDUES[j]
 * (p = 30a + b):
 * - CROSS_MASK[w]: the AND-mask that clears the bit of p * m (it depends only on b and j);
 * - CLASS_EXTRA[w] = floor(b * RESIDUES[j] / 30), so that p * m lies in byte
 *   q = p * t + a * RESIDUES[j] + CLASS_EXTRA[w] (no product of size p * m is ever formed);
 * - WHEEL[w] packs CROSS_MASK | GAP[j] << 8 | corr << 16 for the bucket sieve: going from m to the
 *   next multiplier coprime to 30 moves the byte index by a * GAP[j] + corr, where
 *   corr = floor(((b * RESIDUES[j]) mod 30 + b * GAP[j]) / 30).
 */
const CROSS_MASK = new Uint8Array(64);
const CLASS_EXTRA = new Uint8Array(64);
const WHEEL = new Int32Array(64);
for (let bi = 0; bi < 8; bi++) {
  const b = res(bi);
  for (let j = 0; j < 8; j++) {
    const w = bi * 8 + j;
    const rem = (b * res(j)) % 30;
    const corr = Math.floor((rem + b * GAP[j]!) / 30);
    CROSS_MASK[w] = ~(1 << BIT_OF[rem]!) & 0xff;
    CLASS_EXTRA[w] = Math.floor((b * res(j)) / 30);
    WHEEL[w] = CROSS_MASK[w]! | (GAP[j]! << 8) | (corr << 16);
  }
}

/** For r = m mod 30: the index of the smallest residue >= r coprime to 30 (never wraps: 29 is one). */
const NEXT_COPRIME_CLASS = new Uint8Array(30);
for (let r = 0; r < 30; r++) {
  let d = 0;
  while (BIT_OF[r + d] === -1) d++;
  NEXT_COPRIME_CLASS[r] = BIT_OF[r + d]!;
}

/** Per byte value: number of set bits, and sum of the residues of the set bits. */
const POPCOUNT = new Uint8Array(256);
const RESIDUE_SUM = new Uint16Array(256);
/** For a byte with a single bit set: that bit's residue (lowest set bit of b is b & -b). */
const RESIDUE_OF_BIT = new Uint8Array(129);
for (let v = 0; v < 256; v++) {
  for (let k = 0; k < 8; k++) {
    if (v & (1 << k)) {
      POPCOUNT[v] = POPCOUNT[v]! + 1;
      RESIDUE_SUM[v] = RESIDUE_SUM[v]! + res(k);
    }
  }
}
for (let k = 0; k < 8; k++) RESIDUE_OF_BIT[1 << k] = res(k);

/** Bits whose residue is >= r (for the first byte of a range), and <= r (for the last). */
const KEEP_FROM = new Uint8Array(30);
const KEEP_UPTO = new Uint8Array(30);
for (let r = 0; r < 30; r++) {
  for (let k = 0; k < 8; k++) {
    if (res(k) >= r) KEEP_FROM[r] = KEEP_FROM[r]! | (1 << k);
    if (res(k) <= r) KEEP_UPTO[r] = KEEP_UPTO[r]! | (1 << k);
  }
}

// ---------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------

/**
 * log2 of the segment size in bytes: 2^18 bytes = 256 KiB = 7,864,320 numbers per segment, sized
 * for a per-core L2 cache (measured best among 2^15 .. 2^20 on a 1 MiB-L2 machine). Small ranges
 * only touch the bytes they need.
 */
const LOG_SEGMENT = 18;
/**
 * Segment size in bytes of the JS kernel (a multiple of 4, so segments can also be read as 32-bit
 * words). The wasm kernel uses 2^19 (see PrimeKernel.segmentSpan).
 */
export const SEGMENT_BYTES = 1 << LOG_SEGMENT;
/** Numbers covered by one full segment of the JS kernel. */
export const SEGMENT_SPAN = 30 * SEGMENT_BYTES;
/**
 * Sieving primes at or above this use the bucket sieve; below it, the strided per-class loops
 * (each of their 8 progressions then hits a full segment at least 4 times).
 */
const LARGE_PRIME_MIN = SEGMENT_BYTES / 4;

/** Largest safe integer (2^53 - 1) and the largest sieving prime it can ever need. */
const MAX_TO = Number.MAX_SAFE_INTEGER;
const MAX_BASE = 94_906_265; // floor(sqrt(2^53 - 1))

// ---------------------------------------------------------------------------------------------
// Pre-sieve patterns
// ---------------------------------------------------------------------------------------------

/** Primes whose multiples are removed by copying patterns; the first group is copied, the rest ANDed. */
const PRESIEVE_GROUPS = [[7, 11, 13, 17], [19, 23, 29], [31, 37, 41], [43, 47, 53]] as const;
const PRESIEVE_PRIMES = PRESIEVE_GROUPS.flat();
const PRESIEVE_MAX = 53;
/** The byte holding the largest pre-sieved prime (segments up to there need those primes put back). */
const PRESIEVE_LAST_BYTE = Math.floor(PRESIEVE_MAX / 30);

interface Pattern {
  /** Period in bytes (product of the group's primes). */
  period: number;
  /**
   * Four shifted copies: bytes[k][x] is pattern byte (x + k) mod period, long enough to read one
   * segment from any phase; words[k] views the same memory as 32-bit words, so a segment starting
   * at phase f is read from copy k = f mod 4 at the word-aligned index (f - k) / 4.
   */
  bytes: Uint8Array[];
  words: Int32Array[];
}

function buildPattern(primes: readonly number[]): Pattern {
  const period = primes.reduce((a, b) => a * b, 1);
  const base = new Uint8Array(period);
  for (let q = 0; q < period; q++) {
    let byte = 0;
    for (let k = 0; k < 8; k++) {
      const n = 30 * q + res(k);
      if (primes.every((p) => n % p !== 0)) byte |= 1 << k;
    }
    base[q] = byte;
  }
  const length = Math.ceil((period + SEGMENT_BYTES + 8) / 4) * 4;
  const bytes: Uint8Array[] = [];
  const words: Int32Array[] = [];
  for (let shift = 0; shift < 4; shift++) {
    const copy = new Uint8Array(length);
    for (let x = 0; x < length; x++) copy[x] = base[(x + shift) % period]!;
    bytes.push(copy);
    words.push(new Int32Array(copy.buffer));
  }
  return { period, bytes, words };
}

let patterns: Pattern[] | undefined;
function getPatterns(): Pattern[] {
  patterns ??= PRESIEVE_GROUPS.map(buildPattern);
  return patterns;
}

// ---------------------------------------------------------------------------------------------
// Base primes (the sieving primes), cached and grown on demand
// ---------------------------------------------------------------------------------------------

/** All primes <= baseLimit, ascending, in basePrimes[0 .. baseCount). */
let basePrimes = new Uint32Array(0);
let baseCount = 0;
let baseLimit = 1;

/**
 * Bootstraps the cache with a plain sieve. BOOT_LIMIT^2 > MAX_BASE, so growing the cache up to
 * MAX_BASE with the segmented sieve itself only ever needs primes that are already cached.
 */
const BOOT_LIMIT = 1 << 16;
function bootstrap(): void {
  const composite = new Uint8Array(BOOT_LIMIT + 1);
  const found: number[] = [];
  for (let i = 2; i <= BOOT_LIMIT; i++) {
    if (composite[i]) continue;
    found.push(i);
    for (let m = i * i; m <= BOOT_LIMIT; m += i) composite[m] = 1;
  }
  basePrimes = Uint32Array.from(found);
  baseCount = found.length;
  baseLimit = BOOT_LIMIT;
}

/** Makes sure every prime <= limit is cached (limit <= MAX_BASE). */
function ensureBasePrimes(limit: number): void {
  if (baseLimit === 1) bootstrap();
  if (limit <= baseLimit) return;
  // Grow at least geometrically so that rising ranges do not re-sieve in small steps.
  const target = Math.min(MAX_BASE, Math.max(limit, baseLimit * 2));
  // pi(x) < 1.25506 x / ln x for x > 1 (Rosser & Schoenfeld), so this never overflows.
  const capacity = Math.ceil((1.25506 * target) / Math.log(target)) + 16;
  const grown = new Uint32Array(capacity);
  grown.set(basePrimes.subarray(0, baseCount));
  let count = baseCount;
  // Sieving (baseLimit, target] needs primes up to sqrt(target) <= 9742 < BOOT_LIMIT: all cached.
  sieveRange(baseLimit + 1, target, (seg, q0, len) => {
    count = extractSegment(seg, q0, len, grown, count);
  });
  basePrimes = grown;
  baseCount = count;
  baseLimit = target;
}

/** Index of the first cached prime > value (binary search). */
function cachedPrimeIndex(value: number): number {
  let a = 0;
  let b = baseCount;
  while (a < b) {
    const mid = (a + b) >>> 1;
    if (basePrimes[mid]! <= value) a = mid + 1;
    else b = mid;
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Medium sieving primes: 8 strided progressions each
// ---------------------------------------------------------------------------------------------

/**
 * Crosses off the multiples of the medium primes in one segment. Prime i owns the 8 progressions
 * offsets[8i .. 8i+8): progression j always clears the same bit (CROSS_MASK[cls + j]) and steps p
 * bytes. Offsets are relative to the segment start; on return they are relative to the next one.
 */
function crossMedium(seg: Uint8Array, len: number, primes: Int32Array, classOf: Uint8Array, offsets: Int32Array, count: number): void {
  for (let i = 0; i < count; i++) {
    const p = primes[i]!;
    const p2 = p + p;
    const p3 = p2 + p;
    const p4 = p3 + p;
    const cls = classOf[i]!;
    const unrolledEnd = len - p3;
    for (let j = 0, k = 8 * i; j < 8; j++, k++) {
      const mask = CROSS_MASK[cls + j]!;
      let o = offsets[k]!;
      // Four crossings per turn while they all fit, then one at a time.
      for (; o < unrolledEnd; o += p4) {
        seg[o] = seg[o]! & mask;
        seg[o + p] = seg[o + p]! & mask;
        seg[o + p2] = seg[o + p2]! & mask;
        seg[o + p3] = seg[o + p3]! & mask;
      }
      for (; o < len; o += p) seg[o] = seg[o]! & mask;
      offsets[k] = o - SEGMENT_BYTES;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Large sieving primes: bucket sieve
// ---------------------------------------------------------------------------------------------

/** Entries per block; an entry is two 32-bit words: byte offset in its segment, (a << 6) | w. */
const BLOCK_ENTRIES = 1024;
const BLOCK_WORDS = 2 * BLOCK_ENTRIES;

/**
 * Large primes waiting for the segment of their next multiple. A ring of buckets, one per upcoming
 * segment; each bucket is a chain of fixed-size blocks from one arena, recycled via a free list.
 * An entry is a prime p = 30a + b at multiple p * m: the byte offset of p * m within its segment,
 * and (a << 6) | w where w = 8 * (index of b) + (index of m mod 30) selects the wheel tables.
 */
class Buckets {
  private arena: Int32Array;
  private nextBlock: Int32Array;
  private freeBlocks: Int32Array;
  private freeCount: number;
  private readonly ringMask: number;
  private readonly head: Int32Array;
  private readonly fill: Int32Array;
  private readonly size: Int32Array;

  constructor(ringSize: number) {
    this.ringMask = ringSize - 1;
    this.head = new Int32Array(ringSize).fill(-1);
    this.fill = new Int32Array(ringSize);
    this.size = new Int32Array(ringSize);
    this.arena = new Int32Array(0);
    this.nextBlock = new Int32Array(0);
    this.freeBlocks = new Int32Array(0);
    this.freeCount = 0;
    this.reserve(0);
  }

  /** Makes sure `entries` more pushes (spread over any buckets) cannot run out of blocks. */
  reserve(entries: number): void {
    const needed = Math.ceil(entries / BLOCK_ENTRIES) + this.ringMask + 2;
    if (this.freeCount >= needed) return;
    const oldBlocks = this.nextBlock.length;
    const blocks = Math.max(oldBlocks * 2, oldBlocks + needed - this.freeCount);
    const arena = new Int32Array(blocks * BLOCK_WORDS);
    arena.set(this.arena);
    const nextBlock = new Int32Array(blocks);
    nextBlock.set(this.nextBlock);
    const freeBlocks = new Int32Array(blocks);
    freeBlocks.set(this.freeBlocks.subarray(0, this.freeCount));
    let free = this.freeCount;
    for (let i = blocks - 1; i >= oldBlocks; i--) freeBlocks[free++] = i;
    this.arena = arena;
    this.nextBlock = nextBlock;
    this.freeBlocks = freeBlocks;
    this.freeCount = free;
  }

  /** Files an entry under absolute segment number `segment` (call reserve first). */
  push(segment: number, offset: number, packed: number): void {
    const slot = segment & this.ringMask;
    let block = this.head[slot]!;
    let fill = this.fill[slot]!;
    if (block < 0 || fill === BLOCK_ENTRIES) {
      const fresh = this.freeBlocks[--this.freeCount]!;
      this.nextBlock[fresh] = block;
      this.head[slot] = block = fresh;
      fill = 0;
    }
    const at = block * BLOCK_WORDS + 2 * fill;
    this.arena[at] = offset;
    this.arena[at + 1] = packed;
    this.fill[slot] = fill + 1;
    this.size[slot] = this.size[slot]! + 1;
  }

  /**
   * Crosses off, in segment `segment` (its first len bytes), the multiples of every prime filed
   * under it, and files each prime again under the segment of its next multiple (if <= last).
   */
  sieve(seg: Uint8Array, len: number, segment: number, last: number): void {
    const slot = segment & this.ringMask;
    this.reserve(this.size[slot]!);
    let block = this.head[slot]!;
    let fill = this.fill[slot]!;
    this.head[slot] = -1;
    this.fill[slot] = 0;
    this.size[slot] = 0;
    const arena = this.arena;
    const head = this.head;
    const fills = this.fill;
    const sizes = this.size;
    const nextBlock = this.nextBlock;
    const freeBlocks = this.freeBlocks;
    const ringMask = this.ringMask;
    let freeCount = this.freeCount;
    const wheel = WHEEL;
    while (block >= 0) {
      const base = block * BLOCK_WORDS;
      const end = base + 2 * fill;
      for (let e = base; e < end; e += 2) {
        let o = arena[e]!;
        const packed = arena[e + 1]!;
        const a = packed >>> 6;
        const wBase = packed & 56;
        let j = packed & 7;
        // Walk the wheel: the index j advances arithmetically, so the table loads do not form
        // a dependency chain.
        while (o < len) {
          const step = wheel[wBase + j]!;
          seg[o] = seg[o]! & step;
          o += a * ((step >>> 8) & 0xff) + (step >>> 16);
          j = (j + 1) & 7;
        }
        const target = segment + (o >>> LOG_SEGMENT);
        if (target > last) continue;
        // File it (inlined push).
        const tslot = target & ringMask;
        let tblock = head[tslot]!;
        let tfill = fills[tslot]!;
        if (tblock < 0 || tfill === BLOCK_ENTRIES) {
          const fresh = freeBlocks[--freeCount]!;
          nextBlock[fresh] = tblock;
          head[tslot] = tblock = fresh;
          tfill = 0;
        }
        const at = tblock * BLOCK_WORDS + 2 * tfill;
        arena[at] = o & (SEGMENT_BYTES - 1);
        arena[at + 1] = (a << 6) | wBase | j;
        fills[tslot] = tfill + 1;
        sizes[tslot] = sizes[tslot]! + 1;
      }
      const next = nextBlock[block]!;
      freeBlocks[freeCount++] = block;
      block = next;
      fill = BLOCK_ENTRIES;
    }
    this.freeCount = freeCount;
  }
}

// ---------------------------------------------------------------------------------------------
// The segmented sieve
// ---------------------------------------------------------------------------------------------

/**
 * Called once per segment: bit k of seg[i] (0 <= i < len) is set iff 30 * (q0 + i) + RESIDUES[k]
 * is a prime in the requested range. The buffer is reused for the next segment.
 */
type SegmentVisitor = (seg: Uint8Array, q0: number, len: number) => void;

/**
 * x mod d for integers 0 <= x < 2^52 and 0 < d < 2^31, exactly. Much faster than `%` on doubles
 * (a libm fmod call): floor(x / d) is the true quotient or one too many, and q * d <= x + d is
 * exact, so one correction suffices.
 */
function modSmall(x: number, d: number): number {
  const r = x - Math.floor(x / d) * d;
  return r < 0 ? r + d : r;
}

/** Exact floor(x / d) for a non-negative safe integer x. */
const floorDiv = (x: number, d: number): number => (x - (x % d)) / d;

/** Segment buffers not in use (reused so that repeated calls do not allocate). */
const spareSegments: ArrayBuffer[] = [];

/** Starts each segment from the pre-sieve patterns: copy the first, AND the others. */
function presieve(seg: Uint8Array, seg32: Int32Array, q0: number, words: number, pats: Pattern[]): void {
  for (let g = 0; g < pats.length; g++) {
    const pat = pats[g]!;
    const phase = modSmall(q0, pat.period);
    const shift = phase & 3;
    if (g === 0) {
      seg.set(pat.bytes[shift]!.subarray(phase - shift, phase - shift + 4 * words));
    } else {
      const src = pat.words[shift]!;
      const at = (phase - shift) >>> 2;
      for (let i = 0; i < words; i++) seg32[i] = seg32[i]! & src[at + i]!;
    }
  }
}

/**
 * Files primes[start .. end) into the buckets at their first multiple p * m that is >= p^2 and
 * in or after the segment starting at byte q0 (absolute segment number segIndex); primes whose
 * first such multiple lies beyond the last segment are dropped.
 */
function activateLarge(buckets: Buckets, primes: Uint32Array, start: number, end: number, q0: number, segIndex: number, lastSegment: number): void {
  for (let i = start; i < end; i++) {
    // Reserve in slices: for short ranges most primes are dropped, so do not reserve for all.
    if ((i - start) % BLOCK_ENTRIES === 0) buckets.reserve(Math.min(BLOCK_ENTRIES, end - i));
    const p = primes[i]!;
    const b = p % 30;
    const a = (p - b) / 30;
    // Smallest multiplier m >= 30 * q0 / p: with q0 = p * k + r, that is 30k + ceil(30r / p).
    const r = modSmall(q0, p);
    let m = (30 * (q0 - r)) / p + Math.ceil((30 * r) / p);
    if (m < p) m = p;
    // Then the next multiplier coprime to 30, m = 30t + RESIDUES[j].
    // (29 is coprime to 30, so this never wraps into the next block of 30.)
    const mr = modSmall(m, 30);
    const j = NEXT_COPRIME_CLASS[mr]!;
    const t = (m - mr) / 30;
    const w = BIT_OF[b]! * 8 + j;
    // p * m lies in byte p * t + a * RESIDUES[j] + CLASS_EXTRA[w] (no product beyond 2^53);
    // it is at most 7p / 30 + 1 bytes past q0, well within int32.
    const offset = p * t + a * res(j) + CLASS_EXTRA[w]! - q0;
    const target = segIndex + (offset >>> LOG_SEGMENT);
    if (target <= lastSegment) buckets.push(target, offset & (SEGMENT_BYTES - 1), a * 64 + w);
  }
}

/**
 * Sieves [lo, hi] (1 <= lo <= hi <= 2^53 - 1) segment by segment and hands each segment to visit.
 * Only primes >= 7 appear in the segments (2, 3 and 5 are not on the wheel).
 */
function sieveRange(lo: number, hi: number, visit: SegmentVisitor): void {
  const qlo = floorDiv(lo, 30);
  const qhi = floorDiv(hi, 30);
  const sqrtHi = Math.min(MAX_BASE, Math.floor(Math.sqrt(hi)));
  ensureBasePrimes(Math.max(sqrtHi, 2));
  // Sieving primes: cached primes in (PRESIEVE_MAX, sqrt(hi)]. Keep our own view: the cache
  // may be replaced while we run (e.g. by a nested call from a visitor).
  const firstIdx = cachedPrimeIndex(PRESIEVE_MAX);
  const endIdx = Math.max(firstIdx, cachedPrimeIndex(sqrtHi));
  const primes = basePrimes.subarray(firstIdx, endIdx);
  const nPrimes = primes.length;
  const mediumEnd = Math.min(nPrimes, cachedPrimeIndex(LARGE_PRIME_MIN - 1) - firstIdx);

  const buffer = spareSegments.pop() ?? new ArrayBuffer(SEGMENT_BYTES);
  const seg = new Uint8Array(buffer);
  const seg32 = new Int32Array(buffer);
  const pats = getPatterns();

  // Medium primes: the primes (as int32), 8 * (index of p mod 30), 8 offsets each.
  const medPrimes = Int32Array.from(primes.subarray(0, mediumEnd));
  const medClass = new Uint8Array(mediumEnd);
  const medOffset = new Int32Array(8 * mediumEnd);
  let nMedium = 0;

  // Large primes: buckets. The ring must reach past the farthest entry ever filed: a wheel step
  // is at most 6a + 6 <= p / 5 + 6 bytes, a first multiple at most 7p / 30 + 1 bytes ahead.
  const largest = nPrimes > 0 ? primes[nPrimes - 1]! : 0;
  let ringSize = 4;
  while (ringSize < Math.ceil(largest / 4 / SEGMENT_BYTES) + 3) ringSize *= 2;
  const buckets = nPrimes > mediumEnd ? new Buckets(ringSize) : undefined;
  let nLarge = mediumEnd;

  const lastSegment = floorDiv(qhi - qlo, SEGMENT_BYTES);
  try {
    for (let segIndex = 0; segIndex <= lastSegment; segIndex++) {
      const q0 = qlo + segIndex * SEGMENT_BYTES;
      const len = Math.min(SEGMENT_BYTES, qhi - q0 + 1);

      presieve(seg, seg32, q0, (len + 3) >>> 2, pats);

      // Activate the sieving primes whose square falls inside this segment.
      const segLastByteStart = 30 * (q0 + len - 1);
      const segEnd = hi - segLastByteStart < 29 ? hi : segLastByteStart + 29;
      while (nMedium < mediumEnd) {
        const p = medPrimes[nMedium]!;
        if (p * p > segEnd) break;
        const b = p % 30;
        const a = (p - b) / 30;
        const bi = BIT_OF[b]!;
        medClass[nMedium] = bi * 8;
        const r = modSmall(q0, p);
        for (let j = 0; j < 8; j++) {
          // Progression j: bytes p * t + c (t >= t0, so that m = 30t + RESIDUES[j] >= p).
          const c = a * res(j) + CLASS_EXTRA[bi * 8 + j]!;
          const t0 = res(j) >= b ? a : a + 1;
          let d = c - r;
          if (d < 0) d += p;
          const firstAllowed = p * t0 + c;
          medOffset[8 * nMedium + j] = q0 + d >= firstAllowed ? d : firstAllowed - q0;
        }
        nMedium++;
      }
      if (buckets !== undefined && nLarge < nPrimes) {
        const start = nLarge;
        while (nLarge < nPrimes && primes[nLarge]! * primes[nLarge]! <= segEnd) nLarge++;
        activateLarge(buckets, primes, start, nLarge, q0, segIndex, lastSegment);
      }

      crossMedium(seg, len, medPrimes, medClass, medOffset, nMedium);
      if (buckets !== undefined) buckets.sieve(seg, len, segIndex, lastSegment);

      // Fix-ups: 1 is not prime, the pre-sieved primes are; then cut to [lo, hi].
      if (q0 <= PRESIEVE_LAST_BYTE) {
        if (q0 === 0) seg[0] = seg[0]! & 0xfe;
        for (const p of PRESIEVE_PRIMES) {
          const q = floorDiv(p, 30) - q0;
          if (q >= 0 && q < len) seg[q] = seg[q]! | (1 << BIT_OF[p % 30]!);
        }
      }
      if (segIndex === 0) seg[0] = seg[0]! & KEEP_FROM[lo - 30 * qlo]!;
      if (segIndex === lastSegment) seg[len - 1] = seg[len - 1]! & KEEP_UPTO[hi - 30 * qhi]!;

      visit(seg, q0, len);
    }
  } finally {
    spareSegments.push(buffer);
  }
}

/** Appends the primes of one segment to out from index n; returns the new length. */
function extractSegment(seg: Uint8Array, q0: number, len: number, out: Float64Array | Uint32Array, n: number): number {
  for (let i = 0; i < len; i++) {
    let byte = seg[i]!;
    if (byte === 0) continue;
    const base = 30 * (q0 + i);
    do {
      const low = byte & -byte;
      out[n++] = base + RESIDUE_OF_BIT[low]!;
      byte ^= low;
    } while (byte !== 0);
  }
  return n;
}

function checkBounds(from: number, to: number): void {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to)) {
    throw new RangeError(`bounds must be safe integers (got ${from}, ${to})`);
  }
}

/** The wheel primes 2, 3, 5 that lie in [from, to]. */
function wheelPrimesIn(from: number, to: number): number[] {
  return [2, 3, 5].filter((p) => p >= from && p <= to);
}

/** Scratch for countSegment: [count, sum of i * count(byte i), sum of residues]. */
const segmentTotals = new Float64Array(3);

/** Counts the set bits of seg[0 .. len) into segmentTotals, with what the exact sum needs. */
function countSegment(seg: Uint8Array, len: number): void {
  let count = 0;
  let weighted = 0;
  let residues = 0;
  for (let i = 0; i < len; i++) {
    const byte = seg[i]!;
    const c = POPCOUNT[byte]!;
    count += c;
    weighted += i * c;
    residues += RESIDUE_SUM[byte]!;
  }
  segmentTotals[0] = count;
  segmentTotals[1] = weighted;
  segmentTotals[2] = residues;
}

/** The smallest (or largest) prime of a segment known to hold at least one. */
function firstInSegment(seg: Uint8Array, q0: number): number {
  let i = 0;
  while (seg[i] === 0) i++;
  const byte = seg[i]!;
  return 30 * (q0 + i) + RESIDUE_OF_BIT[byte & -byte]!;
}
function lastInSegment(seg: Uint8Array, q0: number, len: number): number {
  let i = len - 1;
  while (seg[i] === 0) i--;
  return 30 * (q0 + i) + res(31 - Math.clz32(seg[i]!));
}

// ---------------------------------------------------------------------------------------------
// Kernels: the JS one above (the reference, always there) and the WebAssembly one
// ---------------------------------------------------------------------------------------------

/** Which implementation sieves: 'wasm' (assembly/sieve.ts, built to build/sieve.wasm) or 'js'. */
export type KernelName = 'wasm' | 'js';

/**
 * What a kernel does for the public functions, on ranges 7 <= lo <= hi <= 2^53 - 1 (the wheel
 * primes 2, 3, 5 are added by the callers).
 */
interface Core {
  readonly name: KernelName;
  /** Bytes per full segment (30 numbers each). */
  readonly segmentBytes: number;
  /** Count, smallest, largest and exact sum of the primes of [lo, hi] into acc. */
  summarize(lo: number, hi: number, acc: Accumulator): void;
  /** The primes of [lo, hi], one chunk per segment (the array is reused after visit returns). */
  chunks(lo: number, hi: number, visit: (primes: Float64Array, length: number) => void): void;
  /**
   * The same primes in pieces of any size, for internal sinks only: a piece may be a view of the
   * kernel's own memory, valid only until emit returns, and emit must not call the sieve.
   */
  pieces(lo: number, hi: number, emit: (primes: Float64Array, length: number) => void): void;
}

interface Accumulator {
  count: number;
  first: number;
  last: number;
  sum: bigint;
}

const jsCore: Core = {
  name: 'js',
  segmentBytes: SEGMENT_BYTES,
  summarize(lo, hi, acc) {
    sieveRange(lo, hi, (seg, q0, len) => {
      countSegment(seg, len);
      const segCount = segmentTotals[0]!;
      if (segCount === 0) return;
      // Byte i holds c primes 30 * (q0 + i) + r, so the segment's primes add up to
      // 30 * (q0 * segCount + sum of i * c) + sum of residues; the big product in BigInt.
      if (acc.first < 0) acc.first = firstInSegment(seg, q0);
      acc.last = lastInSegment(seg, q0, len);
      acc.count += segCount;
      acc.sum += BigInt(q0) * BigInt(30 * segCount) + BigInt(30 * segmentTotals[1]! + segmentTotals[2]!);
    });
  },
  chunks(lo, hi, visit) {
    let chunk = new Float64Array(8);
    sieveRange(lo, hi, (seg, q0, len) => {
      if (chunk.length < 8 * len) chunk = new Float64Array(8 * len);
      const n = extractSegment(seg, q0, len, chunk, 0);
      if (n > 0) visit(chunk, n);
    });
  },
  pieces(lo, hi, emit) {
    this.chunks(lo, hi, emit);
  },
};

/** The exports of build/sieve.wasm (see assembly/sieve.ts). Handles and pointers are numbers. */
interface SieveWasm {
  memory: { buffer: ArrayBuffer };
  open(lo: number, hi: number): number;
  close(ctx: number): void;
  next(ctx: number): number;
  segmentQ0(ctx: number): number;
  countSegment(ctx: number, len: number): number;
  weighted(): number;
  residues(): number;
  firstPrime(ctx: number): number;
  lastPrime(ctx: number, len: number): number;
  segmentBytes(): number;
  extractBytes(): number;
  listBuffer(): number;
  extract(ctx: number, from: number, to: number): number;
}

/** The little of the WebAssembly JS API used here (no DOM lib in this project). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

/** Where the build puts the module: consumers/prime-filter/build/sieve.wasm (from src/ or dist/). */
const WASM_URL = new URL('../build/sieve.wasm', import.meta.url);

/**
 * Loads and instantiates the module synchronously (about 15 KB, once per thread); undefined when
 * it is missing, cannot be compiled, or PRIME_SIEVE_KERNEL=js asks for the JS kernel.
 */
function loadWasm(): SieveWasm | undefined {
  if (process.env['PRIME_SIEVE_KERNEL'] === 'js') return undefined;
  try {
    const api = (globalThis as unknown as { WebAssembly?: WebAssemblyApi }).WebAssembly;
    if (api === undefined) return undefined;
    const bytes = readFileSync(WASM_URL);
    const abort = (): never => {
      throw new Error('sieve.wasm aborted');
    };
    const instance = new api.Instance(new api.Module(bytes), { env: { abort } });
    const exports = instance.exports as SieveWasm;
    if (exports.extractBytes() <= 0 || exports.segmentBytes() <= 0) return undefined;
    return exports;
  } catch {
    return undefined;
  }
}

function makeWasmCore(wasm: SieveWasm): Core {
  const pieceBytes = wasm.extractBytes();
  const segmentBytes = wasm.segmentBytes();
  return {
    name: 'wasm',
    segmentBytes,
    summarize(lo, hi, acc) {
      const ctx = wasm.open(lo, hi);
      try {
        for (let len = wasm.next(ctx); len > 0; len = wasm.next(ctx)) {
          const segCount = wasm.countSegment(ctx, len);
          if (segCount === 0) continue;
          if (acc.first < 0) acc.first = wasm.firstPrime(ctx);
          acc.last = wasm.lastPrime(ctx, len);
          acc.count += segCount;
          acc.sum += BigInt(wasm.segmentQ0(ctx)) * BigInt(30 * segCount) + BigInt(30 * wasm.weighted() + wasm.residues());
        }
      } finally {
        wasm.close(ctx);
      }
    },
    chunks(lo, hi, visit) {
      let chunk = new Float64Array(1 << 16);
      const ctx = wasm.open(lo, hi);
      try {
        for (let len = wasm.next(ctx); len > 0; len = wasm.next(ctx)) {
          let n = 0;
          for (let from = 0; from < len; from += pieceBytes) {
            const got = wasm.extract(ctx, from, Math.min(len, from + pieceBytes));
            if (got === 0) continue;
            if (n + got > chunk.length) {
              const grown = new Float64Array(Math.min(8 * segmentBytes, Math.max(2 * chunk.length, n + got)));
              grown.set(chunk.subarray(0, n));
              chunk = grown;
            }
            // A fresh view each time: memory.grow (also from a nested call in visit) detaches the old buffer.
            chunk.set(new Float64Array(wasm.memory.buffer, wasm.listBuffer(), got), n);
            n += got;
          }
          if (n > 0) visit(chunk, n);
        }
      } finally {
        wasm.close(ctx);
      }
    },
    pieces(lo, hi, emit) {
      const ctx = wasm.open(lo, hi);
      try {
        for (let len = wasm.next(ctx); len > 0; len = wasm.next(ctx)) {
          for (let from = 0; from < len; from += pieceBytes) {
            const got = wasm.extract(ctx, from, Math.min(len, from + pieceBytes));
            if (got > 0) emit(new Float64Array(wasm.memory.buffer, wasm.listBuffer(), got), got);
          }
        }
      } finally {
        wasm.close(ctx);
      }
    },
  };
}

const wasmExports = loadWasm();
const wasmCore = wasmExports === undefined ? undefined : makeWasmCore(wasmExports);

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/** The three range functions over one kernel. */
export interface PrimeKernel {
  readonly name: KernelName;
  /** Numbers per full segment (SEGMENT_SPAN for the JS kernel, twice that for the wasm one). */
  readonly segmentSpan: number;
  countPrimes(from: number, to: number): PrimeSummary;
  primesBetween(from: number, to: number): Float64Array;
  forEachPrimeChunk(from: number, to: number, visit: (primes: Float64Array, length: number) => void): void;
}

function makeKernel(core: Core): PrimeKernel {
  const forEachChunk = (from: number, to: number, visit: (primes: Float64Array, length: number) => void): void => {
    checkBounds(from, to);
    const small = wheelPrimesIn(from, to);
    if (small.length > 0) visit(Float64Array.from(small), small.length);
    const lo = Math.max(from, 7);
    if (to < lo) return;
    core.chunks(lo, to, visit);
  };

  const between = (from: number, to: number): Float64Array => {
    checkBounds(from, to);
    if (to < Math.max(from, 2)) return new Float64Array(0);
    // Start from an estimate of the count (x / ln x differences, generous), grow if needed.
    const lo = Math.max(from, 2);
    const width = to - lo + 1;
    const guess = Math.ceil((1.3 * width) / Math.max(1, Math.log(Math.max(lo, Math.min(width, to))))) + 64;
    let out = new Float64Array(Math.min(guess, Math.ceil((8 * width) / 30) + 16));
    let n = 0;
    const append = (chunk: Float64Array, length: number): void => {
      if (n + length > out.length) {
        const grown = new Float64Array(Math.floor(Math.max(out.length * 1.5, n + length)));
        grown.set(out.subarray(0, n));
        out = grown;
      }
      out.set(length === chunk.length ? chunk : chunk.subarray(0, length), n);
      n += length;
    };
    const small = wheelPrimesIn(from, to);
    if (small.length > 0) append(Float64Array.from(small), small.length);
    if (to >= 7) core.pieces(Math.max(from, 7), to, append);
    return n === out.length ? out : out.slice(0, n);
  };

  const count = (from: number, to: number): PrimeSummary => {
    checkBounds(from, to);
    const small = wheelPrimesIn(from, to);
    const acc: Accumulator = {
      count: small.length,
      first: small.length > 0 ? small[0]! : -1,
      last: small.length > 0 ? small[small.length - 1]! : -1,
      sum: BigInt(small.reduce((a, b) => a + b, 0)),
    };
    const lo = Math.max(from, 7);
    if (to >= lo) core.summarize(lo, to, acc);
    return { count: acc.count, first: acc.first < 0 ? null : acc.first, last: acc.last < 0 ? null : acc.last, sum: acc.sum };
  };

  return { name: core.name, segmentSpan: 30 * core.segmentBytes, countPrimes: count, primesBetween: between, forEachPrimeChunk: forEachChunk };
}

/**
 * The kernels: `js` always, `wasm` when build/sieve.wasm was built and loads (undefined otherwise).
 * The public functions below use the WebAssembly kernel when there is one; both give identical results.
 */
export const kernels: { readonly js: PrimeKernel; readonly wasm: PrimeKernel | undefined } = {
  js: makeKernel(jsCore),
  wasm: wasmCore === undefined ? undefined : makeKernel(wasmCore),
};

const active: PrimeKernel = kernels.wasm ?? kernels.js;

/** The kernel behind countPrimes, primesBetween and forEachPrimeChunk in this thread. */
export function kernelName(): KernelName {
  return active.name;
}

/** Bytes of WebAssembly linear memory held by the wasm kernel in this thread (0 without it). */
export function kernelMemoryBytes(): number {
  return wasmExports === undefined ? 0 : wasmExports.memory.buffer.byteLength;
}

/**
 * Streams the primes of [from, to] in ascending order, one chunk per segment (at most 8 times the
 * segment size in bytes; in practice well under 1M primes), without holding them all. The array passed to visit is reused after it returns;
 * only its first `length` entries are meaningful.
 */
export function forEachPrimeChunk(from: number, to: number, visit: (primes: Float64Array, length: number) => void): void {
  active.forEachPrimeChunk(from, to, visit);
}

/** Every prime p with from <= p <= to, ascending. Below 2 nothing is prime, so e.g. negative ranges give []. */
export function primesBetween(from: number, to: number): Float64Array {
  return active.primesBetween(from, to);
}

/** Count, smallest, largest and exact sum of the primes in [from, to], without listing them. */
export function countPrimes(from: number, to: number): PrimeSummary {
  return active.countPrimes(from, to);
}
