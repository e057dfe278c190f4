/**
 * The WebAssembly sieve kernel (AssemblyScript). The same algorithm as the JS kernel of
 * src/primes.ts, which stays the reference (see the comments there for the why):
 *
 * - wheel mod 30, one byte = the 8 candidates 30q + {1, 7, 11, 13, 17, 19, 23, 29};
 * - segments of 512 KiB, each started from pre-sieve patterns of 7 .. 53 (ANDed 16 bytes at a time);
 * - medium sieving primes (< SEGMENT_BYTES / 2): 8 strided progressions each, walked together,
 *   offsets carried over; the smallest of them (< 8192) one 32 KiB block of the segment at a
 *   time, so that their many crossings stay in the L1 cache;
 * - large sieving primes: a bucket sieve walking the wheel;
 * - counting by 64-bit popcounts (count, sum of byte index * count, sum of residues).
 *
 * All state lives in linear memory (raw allocations from the runtime's heap): the base-prime cache
 * (grown on demand, prefix never changes, so a range only keeps indices into it) and one context
 * per open range (so a caller may open a range while another is still being walked).
 *
 * Positions: byte indices q = floor(n / 30) are u64 (n < 2^53), so everything is exact near 2^53.
 * The JS side passes bounds as f64 (safe integers) and gets values back as f64 (< 2^53).
 *
 * Memory: asconfig.json starts the module with 64 MiB (virtual until touched), enough for ranges
 * up to about 1e15 without growing. Growing detaches the old ArrayBuffer, which in V8 also turns
 * off a fast path for every typed array of the thread (the JS kernel measured ~20% slower after);
 * ranges near 2^53 still grow it to 128 MiB (5.4M base primes and their bucket entries), once:
 * linear memory never shrinks, freed blocks are reused by later ranges.
 *
 * Build: `npm run build:wasm -w consumers/prime-filter` (asc --config asconfig.json) writes
 * build/sieve.wasm; src/primes.ts loads it from there and falls back to its JS kernel without it.
 */

/**
 * log2 of the segment size: 512 KiB here (the JS kernel uses 256 KiB). Measured on a 1 MiB-L2
 * machine: 2^19 and 2^20 sieve [1e12, 1e12 + 1e9] 15-18% faster than 2^18 (half the bucket
 * visits per crossing), [1, 1e9] the same; 2^19 leaves the other half of L2 for the rest.
 */
const LOG_SEGMENT: i32 = 19;
const SEGMENT_BYTES: i32 = 1 << LOG_SEGMENT;
/** Slack after a segment buffer: word reads may run past len (up to 16 bytes). */
const SEGMENT_PAD: i32 = 64;
/**
 * Sub-block for the smallest medium primes: fits a core's L1 data cache (32 KiB or more).
 * Measured on a 2-core Xeon (48 KiB L1d, 2 MiB L2), best of 2^14 .. 2^16 blocks and 2^12 ..
 * 2^15 prime limits: [1, 1e9] 0.204 -> 0.130 s, [1e12, 1e12 + 1e9] 0.355 -> 0.272 s.
 */
const L1_BLOCK_BYTES: i32 = 1 << 15;
/** Medium primes below this are crossed block by block (several crossings per progression each). */
const BLOCKED_PRIME_MAX: i32 = 1 << 13;
/** A byte in that slack (past the 16 zeroed ones) that branch-free code may clear instead of missing. */
const SCRATCH: i32 = 32;
/**
 * Sieving primes at or above this use the bucket sieve. Half a segment here (the JS kernel uses a
 * quarter): the joint 8-progression walk of crossMedium stays cheaper than a bucket entry up to
 * there (measured with 2^18-byte segments: SEGMENT_BYTES / 2 beat / 1, / 4, / 8 and / 16 by 2-8%
 * on [1e12, 1e12 + 1e9]; with 2^19, / 2 and / 4 are even).
 */
const LARGE_PRIME_MIN: u32 = <u32>(SEGMENT_BYTES / 2);
const MAX_BASE: u32 = 94_906_265; // floor(sqrt(2^53 - 1))
const BOOT_LIMIT: u32 = 1 << 16;
const PRESIEVE_MAX: u32 = 53;
const BLOCK_ENTRIES: i32 = 1024;
/** Bytes per bucket block: BLOCK_ENTRIES entries of two u32 (offset, packed). */
const BLOCK_BYTES: i32 = 8 * BLOCK_ENTRIES;

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

const RES: usize = memory.data<u8>([1, 7, 11, 13, 17, 19, 23, 29]);
const PRESIEVE_PRIMES: usize = memory.data<u8>([7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53]);

// @ts-ignore: decorator
@inline function res(k: i32): i32 {
  return <i32>load<u8>(RES + <usize>(k & 7));
}

const BIT_OF: usize = heap.alloc(32);
const GAP: usize = heap.alloc(8);
const CROSS_MASK: usize = heap.alloc(64);
const CLASS_EXTRA: usize = heap.alloc(64);
const WHEEL: usize = heap.alloc(64 * 4);
const NEXT_COPRIME_CLASS: usize = heap.alloc(32);
const RESIDUE_OF_BIT: usize = heap.alloc(256);
const KEEP_FROM: usize = heap.alloc(32);
const KEEP_UPTO: usize = heap.alloc(32);
/** RESIDUE_BITS[t]: the bits (replicated in every byte) whose residue has bit t set, t = 0..4. */
const RESIDUE_BITS: usize = heap.alloc(5 * 8);

function initTables(): void {
  memory.fill(BIT_OF, 0xff, 32);
  for (let k = 0; k < 8; k++) store<i8>(BIT_OF + <usize>res(k), <i8>k);
  for (let j = 0; j < 8; j++) store<u8>(GAP + <usize>j, <u8>(j < 7 ? res(j + 1) - res(j) : 30 + res(0) - res(7)));
  for (let bi = 0; bi < 8; bi++) {
    const b = res(bi);
    for (let j = 0; j < 8; j++) {
      const w = bi * 8 + j;
      const rem = (b * res(j)) % 30;
      const gap = <i32>load<u8>(GAP + <usize>j);
      const corr = (rem + b * gap) / 30;
      const mask = ~(1 << <i32>load<i8>(BIT_OF + <usize>rem)) & 0xff;
      store<u8>(CROSS_MASK + <usize>w, <u8>mask);
      store<u8>(CLASS_EXTRA + <usize>w, <u8>((b * res(j)) / 30));
      store<i32>(WHEEL + (<usize>w << 2), mask | (gap << 8) | (corr << 16));
    }
  }
  for (let r = 0; r < 30; r++) {
    let d = 0;
    while (load<i8>(BIT_OF + <usize>(r + d)) == -1) d++;
    store<u8>(NEXT_COPRIME_CLASS + <usize>r, <u8>load<i8>(BIT_OF + <usize>(r + d)));
  }
  memory.fill(RESIDUE_OF_BIT, 0, 256);
  for (let k = 0; k < 8; k++) store<u8>(RESIDUE_OF_BIT + <usize>(1 << k), <u8>res(k));
  for (let r = 0; r < 30; r++) {
    let from = 0;
    let upto = 0;
    for (let k = 0; k < 8; k++) {
      if (res(k) >= r) from |= 1 << k;
      if (res(k) <= r) upto |= 1 << k;
    }
    store<u8>(KEEP_FROM + <usize>r, <u8>from);
    store<u8>(KEEP_UPTO + <usize>r, <u8>upto);
  }
  for (let t = 0; t < 5; t++) {
    let byte: u64 = 0;
    for (let k = 0; k < 8; k++) if (res(k) & (1 << t)) byte |= <u64>(1 << k);
    store<u64>(RESIDUE_BITS + (<usize>t << 3), byte * 0x0101010101010101);
  }
}
initTables();

// ---------------------------------------------------------------------------------------------
// Pre-sieve patterns: groups {7, 11, 13, 17}, {19, 23, 29}, {31, 37, 41}, {43, 47, 53}
// ---------------------------------------------------------------------------------------------

const PATTERN_GROUPS = 4;
/** Per group: pointer to the pattern (period + SEGMENT_BYTES + SEGMENT_PAD bytes) and its period. */
const PATTERN_PTR: usize = heap.alloc(PATTERN_GROUPS * 8);
const PATTERN_PERIOD: usize = heap.alloc(PATTERN_GROUPS * 4);
let patternsReady = false;

function buildPattern(g: i32, first: i32, count: i32): void {
  let period = 1;
  for (let i = 0; i < count; i++) period *= <i32>load<u8>(PRESIEVE_PRIMES + <usize>(first + i));
  const length = period + SEGMENT_BYTES + SEGMENT_PAD;
  const ptr = heap.alloc(<usize>length);
  for (let q = 0; q < period; q++) {
    let byte = 0;
    for (let k = 0; k < 8; k++) {
      const n = 30 * q + res(k);
      let keep = true;
      for (let i = 0; i < count; i++) {
        if (n % <i32>load<u8>(PRESIEVE_PRIMES + <usize>(first + i)) == 0) keep = false;
      }
      if (keep) byte |= 1 << k;
    }
    store<u8>(ptr + <usize>q, <u8>byte);
  }
  for (let x = period; x < length; x++) store<u8>(ptr + <usize>x, load<u8>(ptr + <usize>(x - period)));
  store<usize>(PATTERN_PTR + (<usize>g << 3), ptr);
  store<i32>(PATTERN_PERIOD + (<usize>g << 2), period);
}

function ensurePatterns(): void {
  if (patternsReady) return;
  buildPattern(0, 0, 4);
  buildPattern(1, 4, 3);
  buildPattern(2, 7, 3);
  buildPattern(3, 10, 3);
  patternsReady = true;
}

/** seg[0 .. len rounded up to 16) = AND of the four patterns at the phases of q0. */
function presieve(seg: usize, q0: u64, len: i32): void {
  const p0 = load<usize>(PATTERN_PTR) + <usize>(q0 % <u64>load<i32>(PATTERN_PERIOD));
  const p1 = load<usize>(PATTERN_PTR, 8) + <usize>(q0 % <u64>load<i32>(PATTERN_PERIOD, 4));
  const p2 = load<usize>(PATTERN_PTR, 16) + <usize>(q0 % <u64>load<i32>(PATTERN_PERIOD, 8));
  const p3 = load<usize>(PATTERN_PTR, 24) + <usize>(q0 % <u64>load<i32>(PATTERN_PERIOD, 12));
  const end = <usize>((len + 15) & ~15);
  for (let i: usize = 0; i < end; i += 16) {
    const v = v128.and(v128.and(v128.load(p0 + i), v128.load(p1 + i)), v128.and(v128.load(p2 + i), v128.load(p3 + i)));
    v128.store(seg + i, v);
  }
}

// ---------------------------------------------------------------------------------------------
// Base primes (all primes <= baseLimit, ascending, u32), grown on demand; the prefix never changes
// ---------------------------------------------------------------------------------------------

let basePtr: usize = 0;
let baseCount: i32 = 0;
let baseLimit: u32 = 1;

function bootstrap(): void {
  const composite = heap.alloc(<usize>(BOOT_LIMIT + 1));
  memory.fill(composite, 0, <usize>(BOOT_LIMIT + 1));
  basePtr = heap.alloc(7000 * 4); // pi(65536) = 6542
  let n = 0;
  for (let i: u32 = 2; i <= BOOT_LIMIT; i++) {
    if (load<u8>(composite + <usize>i)) continue;
    store<u32>(basePtr + (<usize>n << 2), i);
    n++;
    for (let m = i * i; m <= BOOT_LIMIT; m += i) store<u8>(composite + <usize>m, 1);
  }
  heap.free(composite);
  baseCount = n;
  baseLimit = BOOT_LIMIT;
}

/** Index of the first cached prime > value. */
function cachedPrimeIndex(value: u64): i32 {
  let a = 0;
  let b = baseCount;
  while (a < b) {
    const mid = (a + b) >>> 1;
    if (<u64>load<u32>(basePtr + (<usize>mid << 2)) <= value) a = mid + 1;
    else b = mid;
  }
  return a;
}

function ensureBasePrimes(limit: u32): void {
  if (baseLimit == 1) bootstrap();
  if (limit <= baseLimit) return;
  let target = limit > baseLimit * 2 ? limit : baseLimit * 2;
  if (target > MAX_BASE) target = MAX_BASE;
  const capacity = <i32>Math.ceil((1.25506 * <f64>target) / Math.log(<f64>target)) + 16;
  const grown = heap.alloc(<usize>capacity << 2);
  memory.copy(grown, basePtr, <usize>baseCount << 2);
  heap.free(basePtr);
  basePtr = grown;
  // Sieving (baseLimit, target] needs primes <= 9742 only, all cached; the appended primes lie
  // past every index this range reads.
  const ctx = openRange(<u64>baseLimit + 1, <u64>target);
  let count = baseCount;
  for (let len = nextSegment(ctx); len > 0; len = nextSegment(ctx)) {
    const seg = ctx.seg;
    const q0 = ctx.q0;
    for (let i = 0; i < len; i++) {
      let byte = <u32>load<u8>(seg + <usize>i);
      if (byte == 0) continue;
      const base = <u32>(30 * (q0 + <u64>i));
      do {
        const low = byte & (0 - byte);
        store<u32>(grown + (<usize>count << 2), base + <u32>load<u8>(RESIDUE_OF_BIT + <usize>low));
        count++;
        byte ^= low;
      } while (byte != 0);
    }
  }
  closeRange(ctx);
  baseCount = count;
  baseLimit = target;
}

// ---------------------------------------------------------------------------------------------
// A range being sieved
// ---------------------------------------------------------------------------------------------

@unmanaged
class Ctx {
  lo: u64;
  hi: u64;
  qlo: u64;
  qhi: u64;
  /** Start byte of the segment last sieved. */
  q0: u64;
  segIndex: i64;
  lastSegment: i64;
  seg: usize;
  /** Sieving primes: base primes [firstIdx, firstIdx + nPrimes); medium are the first mediumEnd. */
  firstIdx: i32;
  nPrimes: i32;
  mediumEnd: i32;
  nMedium: i32;
  nLarge: i32;
  /** Medium primes: p, 8 * (index of p mod 30), 8 offsets each (i32 arrays). */
  medPrimes: usize;
  medClass: usize;
  medOffset: usize;
  /** Buckets (when there are large primes). */
  hasBuckets: bool;
  ringMask: i32;
  head: usize;
  fill: usize;
  size: usize;
  arena: usize;
  nextBlock: usize;
  freeBlocks: usize;
  freeCount: i32;
  nBlocks: i32;
}

function isqrt(x: u64): u64 {
  let s = <u64>Math.sqrt(<f64>x);
  while (s * s > x) s--;
  while ((s + 1) * (s + 1) <= x) s++;
  return s;
}

/** Opens the range [lo, hi], 7 <= lo <= hi < 2^53. */
function openRange(lo: u64, hi: u64): Ctx {
  ensurePatterns();
  let sqrtHi = isqrt(hi);
  if (sqrtHi > <u64>MAX_BASE) sqrtHi = <u64>MAX_BASE;
  ensureBasePrimes(sqrtHi > 2 ? <u32>sqrtHi : 2);
  const ctx = changetype<Ctx>(heap.alloc(offsetof<Ctx>()));
  ctx.lo = lo;
  ctx.hi = hi;
  ctx.qlo = lo / 30;
  ctx.qhi = hi / 30;
  ctx.q0 = 0;
  ctx.segIndex = 0;
  ctx.lastSegment = <i64>((ctx.qhi - ctx.qlo) / <u64>SEGMENT_BYTES);
  const firstIdx = cachedPrimeIndex(<u64>PRESIEVE_MAX);
  let endIdx = cachedPrimeIndex(sqrtHi);
  if (endIdx < firstIdx) endIdx = firstIdx;
  const nPrimes = endIdx - firstIdx;
  let mediumEnd = cachedPrimeIndex(<u64>(LARGE_PRIME_MIN - 1)) - firstIdx;
  if (mediumEnd > nPrimes) mediumEnd = nPrimes;
  ctx.firstIdx = firstIdx;
  ctx.nPrimes = nPrimes;
  ctx.mediumEnd = mediumEnd;
  ctx.nMedium = 0;
  ctx.nLarge = mediumEnd;
  const segLen = ctx.lastSegment == 0 ? <i32>(ctx.qhi - ctx.qlo + 1) : SEGMENT_BYTES;
  ctx.seg = heap.alloc(<usize>(segLen + SEGMENT_PAD));
  const m = <usize>(mediumEnd > 0 ? mediumEnd : <i32>1);
  ctx.medPrimes = heap.alloc(m << 2);
  ctx.medClass = heap.alloc(m << 2);
  ctx.medOffset = heap.alloc(m << 5);
  for (let i = 0; i < mediumEnd; i++) {
    store<u32>(ctx.medPrimes + (<usize>i << 2), load<u32>(basePtr + (<usize>(firstIdx + i) << 2)));
  }
  ctx.hasBuckets = nPrimes > mediumEnd;
  ctx.head = 0;
  ctx.fill = 0;
  ctx.size = 0;
  ctx.arena = 0;
  ctx.nextBlock = 0;
  ctx.freeBlocks = 0;
  ctx.freeCount = 0;
  ctx.nBlocks = 0;
  ctx.ringMask = 0;
  if (ctx.hasBuckets) {
    const largest = load<u32>(basePtr + (<usize>(endIdx - 1) << 2));
    let ringSize = 4;
    const need = <i32>Math.ceil(<f64>largest / 4 / <f64>SEGMENT_BYTES) + 3;
    while (ringSize < need) ringSize *= 2;
    ctx.ringMask = ringSize - 1;
    ctx.head = heap.alloc(<usize>ringSize << 2);
    ctx.fill = heap.alloc(<usize>ringSize << 2);
    ctx.size = heap.alloc(<usize>ringSize << 2);
    memory.fill(ctx.head, 0xff, <usize>ringSize << 2);
    memory.fill(ctx.fill, 0, <usize>ringSize << 2);
    memory.fill(ctx.size, 0, <usize>ringSize << 2);
    reserve(ctx, 0);
  }
  return ctx;
}

function closeRange(ctx: Ctx): void {
  heap.free(ctx.seg);
  heap.free(ctx.medPrimes);
  heap.free(ctx.medClass);
  heap.free(ctx.medOffset);
  if (ctx.hasBuckets) {
    heap.free(ctx.head);
    heap.free(ctx.fill);
    heap.free(ctx.size);
    heap.free(ctx.arena);
    heap.free(ctx.nextBlock);
    heap.free(ctx.freeBlocks);
  }
  heap.free(changetype<usize>(ctx));
}

// ---------------------------------------------------------------------------------------------
// Buckets
// ---------------------------------------------------------------------------------------------

/** Makes sure `entries` more pushes cannot run out of blocks. */
function reserve(ctx: Ctx, entries: i32): void {
  const needed = (entries + BLOCK_ENTRIES - 1) / BLOCK_ENTRIES + ctx.ringMask + 2;
  if (ctx.freeCount >= needed) return;
  const oldBlocks = ctx.nBlocks;
  let blocks = oldBlocks * 2;
  if (blocks < oldBlocks + needed - ctx.freeCount) blocks = oldBlocks + needed - ctx.freeCount;
  ctx.arena = ctx.arena == 0 ? heap.alloc(<usize>blocks * <usize>BLOCK_BYTES) : heap.realloc(ctx.arena, <usize>blocks * <usize>BLOCK_BYTES);
  ctx.nextBlock = ctx.nextBlock == 0 ? heap.alloc(<usize>blocks << 2) : heap.realloc(ctx.nextBlock, <usize>blocks << 2);
  ctx.freeBlocks = ctx.freeBlocks == 0 ? heap.alloc(<usize>blocks << 2) : heap.realloc(ctx.freeBlocks, <usize>blocks << 2);
  let free = ctx.freeCount;
  for (let i = blocks - 1; i >= oldBlocks; i--) {
    store<i32>(ctx.freeBlocks + (<usize>free << 2), i);
    free++;
  }
  ctx.freeCount = free;
  ctx.nBlocks = blocks;
}

// @ts-ignore: decorator
@inline function pushEntry(ctx: Ctx, segment: i64, offset: i32, packed: u32): void {
  const slot = <usize>(<i32>segment & ctx.ringMask) << 2;
  let block = load<i32>(ctx.head + slot);
  let fill = load<i32>(ctx.fill + slot);
  if (block < 0 || fill == BLOCK_ENTRIES) {
    const fc = ctx.freeCount - 1;
    ctx.freeCount = fc;
    const fresh = load<i32>(ctx.freeBlocks + (<usize>fc << 2));
    store<i32>(ctx.nextBlock + (<usize>fresh << 2), block);
    store<i32>(ctx.head + slot, fresh);
    block = fresh;
    fill = 0;
  }
  const at = ctx.arena + <usize>block * <usize>BLOCK_BYTES + (<usize>fill << 3);
  store<i32>(at, offset);
  store<u32>(at, packed, 4);
  store<i32>(ctx.fill + slot, fill + 1);
  store<i32>(ctx.size + slot, load<i32>(ctx.size + slot) + 1);
}

function activateLarge(ctx: Ctx, start: i32, end: i32, q0: u64): void {
  const segIndex = ctx.segIndex;
  const lastSegment = ctx.lastSegment;
  for (let i = start; i < end; i++) {
    if ((i - start) % BLOCK_ENTRIES == 0) reserve(ctx, end - i < BLOCK_ENTRIES ? end - i : BLOCK_ENTRIES);
    const p = load<u32>(basePtr + (<usize>(ctx.firstIdx + i) << 2));
    const p64 = <u64>p;
    const b = <i32>(p % 30);
    const a = <u64>(p / 30);
    // Smallest multiplier m >= 30 * q0 / p (q0 = p * k + r: m = 30k + ceil(30r / p)), at least p.
    const r = q0 % p64;
    let m = 30 * ((q0 - r) / p64) + (30 * r + p64 - 1) / p64;
    if (m < p64) m = p64;
    const mr = <i32>(m % 30);
    const j = <i32>load<u8>(NEXT_COPRIME_CLASS + <usize>mr);
    const t = (m - <u64>mr) / 30;
    const w = <i32>load<i8>(BIT_OF + <usize>b) * 8 + j;
    const offset = <i64>(p64 * t + a * <u64>res(j) + <u64>load<u8>(CLASS_EXTRA + <usize>w) - q0);
    const target = segIndex + (offset >> LOG_SEGMENT);
    if (target <= lastSegment) pushEntry(ctx, target, <i32>(offset & (SEGMENT_BYTES - 1)), (<u32>a << 6) | <u32>w);
  }
}

function sieveBuckets(ctx: Ctx, seg: usize, len: i32): void {
  const segment = ctx.segIndex;
  const last = ctx.lastSegment;
  const slot0 = <usize>(<i32>segment & ctx.ringMask) << 2;
  reserve(ctx, load<i32>(ctx.size + slot0));
  let block = load<i32>(ctx.head + slot0);
  let fill = load<i32>(ctx.fill + slot0);
  store<i32>(ctx.head + slot0, -1);
  store<i32>(ctx.fill + slot0, 0);
  store<i32>(ctx.size + slot0, 0);
  const arena = ctx.arena;
  const head = ctx.head;
  const fills = ctx.fill;
  const sizes = ctx.size;
  const nextBlock = ctx.nextBlock;
  const freeBlocks = ctx.freeBlocks;
  const ringMask = ctx.ringMask;
  let freeCount = ctx.freeCount;
  while (block >= 0) {
    let e = arena + <usize>block * <usize>BLOCK_BYTES;
    const end = e + (<usize>fill << 3);
    for (; e < end; e += 8) {
      let o = load<i32>(e);
      const packed = load<u32>(e, 4);
      const a = <i32>(packed >>> 6);
      const wBase = WHEEL + (<usize>(packed & 56) << 2);
      let j = <i32>(packed & 7);
      while (o < len) {
        const step = load<i32>(wBase + (<usize>j << 2));
        const at = seg + <usize>o;
        store<u8>(at, load<u8>(at) & <u8>step);
        o += a * ((step >>> 8) & 0xff) + (step >>> 16);
        j = (j + 1) & 7;
      }
      const target = segment + <i64>(o >>> LOG_SEGMENT);
      if (target > last) continue;
      const tslot = <usize>(<i32>target & ringMask) << 2;
      let tblock = load<i32>(head + tslot);
      let tfill = load<i32>(fills + tslot);
      if (tblock < 0 || tfill == BLOCK_ENTRIES) {
        freeCount--;
        const fresh = load<i32>(freeBlocks + (<usize>freeCount << 2));
        store<i32>(nextBlock + (<usize>fresh << 2), tblock);
        store<i32>(head + tslot, fresh);
        tblock = fresh;
        tfill = 0;
      }
      const at = arena + <usize>tblock * <usize>BLOCK_BYTES + (<usize>tfill << 3);
      store<i32>(at, o & (SEGMENT_BYTES - 1));
      store<u32>(at, (<u32>a << 6) | (packed & 56) | <u32>j, 4);
      store<i32>(fills + tslot, tfill + 1);
      store<i32>(sizes + tslot, load<i32>(sizes + tslot) + 1);
    }
    const next = load<i32>(nextBlock + (<usize>block << 2));
    store<i32>(freeBlocks + (<usize>freeCount << 2), block);
    freeCount++;
    block = next;
    fill = BLOCK_ENTRIES;
  }
  ctx.freeCount = freeCount;
}

// ---------------------------------------------------------------------------------------------
// Medium primes
// ---------------------------------------------------------------------------------------------

/**
 * The joint walk of one medium prime p of class bi (= index of p mod 30): from the lowest offset
 * lo, progression j sits at lo + (o_j - lo), so each turn clears 8 bytes of one p-byte window (one
 * pass over the segment, not 8) while the highest progression is inside the segment. Returns
 * where the walk stopped (the offset that replaces lo). One copy per class, with its 8 masks
 * (CROSS_MASK[8 * bi + j]) written out as constants: one memory access less per crossing.
 * (Written out by hand: binaryen folds @inline copies with constant arguments back together.)
 */
function crossJoint0(seg: usize, len: i32, p: i32, offs: usize, lo: i32, hi: i32): i32 {
  const d0 = <usize>(load<i32>(offs) - lo);
  const d1 = <usize>(load<i32>(offs, 4) - lo);
  const d2 = <usize>(load<i32>(offs, 8) - lo);
  const d3 = <usize>(load<i32>(offs, 12) - lo);
  const d4 = <usize>(load<i32>(offs, 16) - lo);
  const d5 = <usize>(load<i32>(offs, 20) - lo);
  const d6 = <usize>(load<i32>(offs, 24) - lo);
  const d7 = <usize>(load<i32>(offs, 28) - lo);
  let at = seg + <usize>lo;
  const atStop = seg + <usize>(len - (hi - lo));
  const step = <usize>p;
  do {
    store<u8>(at + d0, load<u8>(at + d0) & 0xfe);
    store<u8>(at + d1, load<u8>(at + d1) & 0xfd);
    store<u8>(at + d2, load<u8>(at + d2) & 0xfb);
    store<u8>(at + d3, load<u8>(at + d3) & 0xf7);
    store<u8>(at + d4, load<u8>(at + d4) & 0xef);
    store<u8>(at + d5, load<u8>(at + d5) & 0xdf);
    store<u8>(at + d6, load<u8>(at + d6) & 0xbf);
    store<u8>(at + d7, load<u8>(at + d7) & 0x7f);
    at += step;
  } while (at < atStop);
  return <i32>(at - seg);
}

function crossJoint1(seg: usize, len: i32, p: i32, offs: usize, lo: i32, hi: i32): i32 {
  const d0 = <usize>(load<i32>(offs) - lo);
  const d1 = <usize>(load<i32>(offs, 4) - lo);
  const d2 = <usize>(load<i32>(offs, 8) - lo);
  const d3 = <usize>(load<i32>(offs, 12) - lo);
  const d4 = <usize>(load<i32>(offs, 16) - lo);
  const d5 = <usize>(load<i32>(offs, 20) - lo);
  const d6 = <usize>(load<i32>(offs, 24) - lo);
  const d7 = <usize>(load<i32>(offs, 28) - lo);
  let at = seg + <usize>lo;
  const atStop = seg + <usize>(len - (hi - lo));
  const step = <usize>p;
  do {
    store<u8>(at + d0, load<u8>(at + d0) & 0xfd);
    store<u8>(at + d1, load<u8>(at + d1) & 0xdf);
    store<u8>(at + d2, load<u8>(at + d2) & 0xef);
    store<u8>(at + d3, load<u8>(at + d3) & 0xfe);
    store<u8>(at + d4, load<u8>(at + d4) & 0x7f);
    store<u8>(at + d5, load<u8>(at + d5) & 0xf7);
    store<u8>(at + d6, load<u8>(at + d6) & 0xfb);
    store<u8>(at + d7, load<u8>(at + d7) & 0xbf);
    at += step;
  } while (at < atStop);
  return <i32>(at - seg);
}

function crossJoint2(seg: usize, len: i32, p: i32, offs: usize, lo: i32, hi: i32): i32 {
  const d0 = <usize>(load<i32>(offs) - lo);
  const d1 = <usize>(load<i32>(offs, 4) - lo);
  const d2 = <usize>(load<i32>(offs, 8) - lo);
  const d3 = <usize>(load<i32>(offs, 12) - lo);
  const d4 = <usize>(load<i32>(offs, 16) - lo);
  const d5 = <usize>(load<i32>(offs, 20) - lo);
  const d6 = <usize>(load<i32>(offs, 24) - lo);
  const d7 = <usize>(load<i32>(offs, 28) - lo);
  let at = seg + <usize>lo;
  const atStop = seg + <usize>(len - (hi - lo));
  const step = <usize>p;
  do {
    store<u8>(at + d0, load<u8>(at + d0) & 0xfb);
    store<u8>(at + d1, load<u8>(at + d1) & 0xef);
    store<u8>(at + d2, load<u8>(at + d2) & 0xfe);
    store<u8>(at + d3, load<u8>(at + d3) & 0xbf);
    store<u8>(at + d4, load<u8>(at + d4) & 0xfd);
    store<u8>(at + d5, load<u8>(at + d5) & 0x7f);
    store<u8>(at + d6, load<u8>(at + d6) & 0xf7);
    store<u8>(at + d7, load<u8>(at + d7) & 0xdf);
    at += step;
  } while (at < atStop);
  return <i32>(at - seg);
}

function crossJoint3(seg: usize, len: i32, p: i32, offs: usize, lo: i32, hi: i32): i32 {
  const d0 = <usize>(load<i32>(offs) - lo);
  const d1 = <usize>(load<i32>(offs, 4) - lo);
  const d2 = <usize>(load<i32>(offs, 8) - lo);
  const d3 = <usize>(load<i32>(offs, 12) - lo);
  const d4 = <usize>(load<i32>(offs, 16) - lo);
  const d5 = <usize>(load<i32>(offs, 20) - lo);
  const d6 = <usize>(load<i32>(offs, 24) - lo);
  const d7 = <usize>(load<i32>(offs, 28) - lo);
  let at = seg + <usize>lo;
  const atStop = seg + <usize>(len - (hi - lo));
  const step = <usize>p;
  do {
    store<u8>(at + d0, load<u8>(at + d0) & 0xf7);
    store<u8>(at + d1, load<u8>(at + d1) & 0xfe);
    store<u8>(at + d2, load<u8>(at + d2) & 0xbf);
    store<u8>(at + d3, load<u8>(at + d3) & 0xdf);
    store<u8>(at + d4, load<u8>(at + d4) & 0xfb);
    store<u8>(at + d5, load<u8>(at + d5) & 0xfd);
    store<u8>(at + d6, load<u8>(at + d6) & 0x7f);
    store<u8>(at + d7, load<u8>(at + d7) & 0xef);
    at += step;
  } while (at < atStop);
  return <i32>(at - seg);
}

function crossJoint4(seg: usize, len: i32, p: i32, offs: usize, lo: i32, hi: i32): i32 {
  const d0 = <usize>(load<i32>(offs) - lo);
  const d1 = <usize>(load<i32>(offs, 4) - lo);
  const d2 = <usize>(load<i32>(offs, 8) - lo);
  const d3 = <usize>(load<i32>(offs, 12) - lo);
  const d4 = <usize>(load<i32>(offs, 16) - lo);
  const d5 = <usize>(load<i32>(offs, 20) - lo);
  const d6 = <usize>(load<i32>(offs, 24) - lo);
  const d7 = <usize>(load<i32>(offs, 28) - lo);
  let at = seg + <usize>lo;
  const atStop = seg + <usize>(len - (hi - lo));
  const step = <usize>p;
  do {
    store<u8>(at + d0, load<u8>(at + d0) & 0xef);
    store<u8>(at + d1, load<u8>(at + d1) & 0x7f);
    store<u8>(at + d2, load<u8>(at + d2) & 0xfd);
    store<u8>(at + d3, load<u8>(at + d3) & 0xfb);
    store<u8>(at + d4, load<u8>(at + d4) & 0xdf);
    store<u8>(at + d5, load<u8>(at + d5) & 0xbf);
    store<u8>(at + d6, load<u8>(at + d6) & 0xfe);
    store<u8>(at + d7, load<u8>(at + d7) & 0xf7);
    at += step;
  } while (at < atStop);
  return <i32>(at - seg);
}

function crossJoint5(seg: usize, len: i32, p: i32, offs: usize, lo: i32, hi: i32): i32 {
  const d0 = <usize>(load<i32>(offs) - lo);
  const d1 = <usize>(load<i32>(offs, 4) - lo);
  const d2 = <usize>(load<i32>(offs, 8) - lo);
  const d3 = <usize>(load<i32>(offs, 12) - lo);
  const d4 = <usize>(load<i32>(offs, 16) - lo);
  const d5 = <usize>(load<i32>(offs, 20) - lo);
  const d6 = <usize>(load<i32>(offs, 24) - lo);
  const d7 = <usize>(load<i32>(offs, 28) - lo);
  let at = seg + <usize>lo;
  const atStop = seg + <usize>(len - (hi - lo));
  const step = <usize>p;
  do {
    store<u8>(at + d0, load<u8>(at + d0) & 0xdf);
    store<u8>(at + d1, load<u8>(at + d1) & 0xf7);
    store<u8>(at + d2, load<u8>(at + d2) & 0x7f);
    store<u8>(at + d3, load<u8>(at + d3) & 0xfd);
    store<u8>(at + d4, load<u8>(at + d4) & 0xbf);
    store<u8>(at + d5, load<u8>(at + d5) & 0xfe);
    store<u8>(at + d6, load<u8>(at + d6) & 0xef);
    store<u8>(at + d7, load<u8>(at + d7) & 0xfb);
    at += step;
  } while (at < atStop);
  return <i32>(at - seg);
}

function crossJoint6(seg: usize, len: i32, p: i32, offs: usize, lo: i32, hi: i32): i32 {
  const d0 = <usize>(load<i32>(offs) - lo);
  const d1 = <usize>(load<i32>(offs, 4) - lo);
  const d2 = <usize>(load<i32>(offs, 8) - lo);
  const d3 = <usize>(load<i32>(offs, 12) - lo);
  const d4 = <usize>(load<i32>(offs, 16) - lo);
  const d5 = <usize>(load<i32>(offs, 20) - lo);
  const d6 = <usize>(load<i32>(offs, 24) - lo);
  const d7 = <usize>(load<i32>(offs, 28) - lo);
  let at = seg + <usize>lo;
  const atStop = seg + <usize>(len - (hi - lo));
  const step = <usize>p;
  do {
    store<u8>(at + d0, load<u8>(at + d0) & 0xbf);
    store<u8>(at + d1, load<u8>(at + d1) & 0xfb);
    store<u8>(at + d2, load<u8>(at + d2) & 0xf7);
    store<u8>(at + d3, load<u8>(at + d3) & 0x7f);
    store<u8>(at + d4, load<u8>(at + d4) & 0xfe);
    store<u8>(at + d5, load<u8>(at + d5) & 0xef);
    store<u8>(at + d6, load<u8>(at + d6) & 0xdf);
    store<u8>(at + d7, load<u8>(at + d7) & 0xfd);
    at += step;
  } while (at < atStop);
  return <i32>(at - seg);
}

function crossJoint7(seg: usize, len: i32, p: i32, offs: usize, lo: i32, hi: i32): i32 {
  const d0 = <usize>(load<i32>(offs) - lo);
  const d1 = <usize>(load<i32>(offs, 4) - lo);
  const d2 = <usize>(load<i32>(offs, 8) - lo);
  const d3 = <usize>(load<i32>(offs, 12) - lo);
  const d4 = <usize>(load<i32>(offs, 16) - lo);
  const d5 = <usize>(load<i32>(offs, 20) - lo);
  const d6 = <usize>(load<i32>(offs, 24) - lo);
  const d7 = <usize>(load<i32>(offs, 28) - lo);
  let at = seg + <usize>lo;
  const atStop = seg + <usize>(len - (hi - lo));
  const step = <usize>p;
  do {
    store<u8>(at + d0, load<u8>(at + d0) & 0x7f);
    store<u8>(at + d1, load<u8>(at + d1) & 0xbf);
    store<u8>(at + d2, load<u8>(at + d2) & 0xdf);
    store<u8>(at + d3, load<u8>(at + d3) & 0xef);
    store<u8>(at + d4, load<u8>(at + d4) & 0xf7);
    store<u8>(at + d5, load<u8>(at + d5) & 0xfb);
    store<u8>(at + d6, load<u8>(at + d6) & 0xfd);
    store<u8>(at + d7, load<u8>(at + d7) & 0xfe);
    at += step;
  } while (at < atStop);
  return <i32>(at - seg);
}

/**
 * Crosses off the multiples of the medium primes in one segment. Prime i owns the 8 progressions
 * offsets[8i .. 8i+8): progression j always clears the same bit (CROSS_MASK[cls + j]) and steps p
 * bytes. They are walked together (crossJoint0 .. 7), then each finishes on its own. Offsets are
 * relative to the segment start; on return they are relative to the next one.
 */
function crossMedium(seg: usize, len: i32, primes: usize, classOf: usize, offsets: usize, from: i32, count: i32, advance: i32, scratchAt: usize): void {
  for (let i = from; i < count; i++) {
    const p = load<i32>(primes + (<usize>i << 2));
    const cls = load<i32>(classOf + (<usize>i << 2));
    const offs = offsets + (<usize>i << 5);
    const o0 = load<i32>(offs);
    const o1 = load<i32>(offs, 4);
    const o2 = load<i32>(offs, 8);
    const o3 = load<i32>(offs, 12);
    const o4 = load<i32>(offs, 16);
    const o5 = load<i32>(offs, 20);
    const o6 = load<i32>(offs, 24);
    const o7 = load<i32>(offs, 28);
    const lo = min(min(min(o0, o1), min(o2, o3)), min(min(o4, o5), min(o6, o7)));
    const hi = max(max(max(o0, o1), max(o2, o3)), max(max(o4, o5), max(o6, o7)));
    // While the highest progression is inside the segment, all 8 are.
    let o = lo;
    if (hi < len) {
      switch (cls >> 3) {
        case 0: o = crossJoint0(seg, len, p, offs, lo, hi); break;
        case 1: o = crossJoint1(seg, len, p, offs, lo, hi); break;
        case 2: o = crossJoint2(seg, len, p, offs, lo, hi); break;
        case 3: o = crossJoint3(seg, len, p, offs, lo, hi); break;
        case 4: o = crossJoint4(seg, len, p, offs, lo, hi); break;
        case 5: o = crossJoint5(seg, len, p, offs, lo, hi); break;
        case 6: o = crossJoint6(seg, len, p, offs, lo, hi); break;
        default: o = crossJoint7(seg, len, p, offs, lo, hi); break;
      }
    }
    // The rest, one progression at a time. Usually at most one crossing is left per progression
    // (offsets within one p-byte window): that one is done without a branch (a miss crosses the
    // scratch byte past the segment instead), so only the rare longer tails take the loop.
    const masks = CROSS_MASK + <usize>cls;
    for (let j = 0; j < 8; j++) {
      const mask = load<u8>(masks + <usize>j);
      let q = o + load<i32>(offs + (<usize>j << 2)) - lo;
      const inside = q < len;
      const at = select<usize>(seg + <usize>q, scratchAt, inside);
      store<u8>(at, load<u8>(at) & mask);
      q += select<i32>(p, 0, inside);
      for (; q < len; q += p) {
        const at = seg + <usize>q;
        store<u8>(at, load<u8>(at) & mask);
      }
      store<i32>(offs + (<usize>j << 2), q - advance);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One segment
// ---------------------------------------------------------------------------------------------

/**
 * Sieves the next segment of the range into ctx.seg; returns its length in bytes (0 when the
 * range is done). Bit k of seg[i] is set iff 30 * (ctx.q0 + i) + RES[k] is a prime in the range.
 * The 16 bytes after len are zero.
 */
function nextSegment(ctx: Ctx): i32 {
  const segIndex = ctx.segIndex;
  if (segIndex > ctx.lastSegment) return 0;
  const seg = ctx.seg;
  const q0 = ctx.qlo + <u64>segIndex * <u64>SEGMENT_BYTES;
  const rest = ctx.qhi - q0 + 1;
  const len = rest < <u64>SEGMENT_BYTES ? <i32>rest : SEGMENT_BYTES;
  ctx.q0 = q0;

  presieve(seg, q0, len);

  const hi = ctx.hi;
  const segLastByteStart = 30 * (q0 + <u64>(len - 1));
  const segEnd = hi - segLastByteStart < 29 ? hi : segLastByteStart + 29;
  const mediumEnd = ctx.mediumEnd;
  let nMedium = ctx.nMedium;
  while (nMedium < mediumEnd) {
    const p = load<i32>(ctx.medPrimes + (<usize>nMedium << 2));
    const p64 = <u64>p;
    if (p64 * p64 > segEnd) break;
    const b = p % 30;
    const a = p / 30;
    const bi = <i32>load<i8>(BIT_OF + <usize>b);
    store<i32>(ctx.medClass + (<usize>nMedium << 2), bi * 8);
    const r = <i32>(q0 % p64);
    for (let j = 0; j < 8; j++) {
      const c = a * res(j) + <i32>load<u8>(CLASS_EXTRA + <usize>(bi * 8 + j));
      const t0 = res(j) >= b ? a : a + 1;
      let d = c - r;
      if (d < 0) d += p;
      const firstAllowed = p64 * <u64>t0 + <u64>c;
      const off = q0 + <u64>d >= firstAllowed ? d : <i32>(firstAllowed - q0);
      store<i32>(ctx.medOffset + (<usize>(8 * nMedium + j) << 2), off);
    }
    nMedium++;
  }
  ctx.nMedium = nMedium;
  if (ctx.hasBuckets && ctx.nLarge < ctx.nPrimes) {
    const start = ctx.nLarge;
    let n = start;
    const nPrimes = ctx.nPrimes;
    const base = basePtr + (<usize>ctx.firstIdx << 2);
    while (n < nPrimes) {
      const p = <u64>load<u32>(base + (<usize>n << 2));
      if (p * p > segEnd) break;
      n++;
    }
    ctx.nLarge = n;
    activateLarge(ctx, start, n, q0);
  }

  // The smallest medium primes cross many times per segment: they are walked over one
  // L1-sized block at a time (offsets carried from block to block), so those crossings hit the
  // L1 cache instead of streaming the whole segment through it once per prime.
  const scratchAt = seg + <usize>(len + SCRATCH);
  let nSmall = 0;
  while (nSmall < nMedium && load<i32>(ctx.medPrimes + (<usize>nSmall << 2)) < BLOCKED_PRIME_MAX) nSmall++;
  if (nSmall > 0) {
    for (let b = 0; b < len; b += L1_BLOCK_BYTES) {
      const bl = min(L1_BLOCK_BYTES, len - b);
      crossMedium(seg + <usize>b, bl, ctx.medPrimes, ctx.medClass, ctx.medOffset, 0, nSmall, bl, scratchAt);
    }
  }
  crossMedium(seg, len, ctx.medPrimes, ctx.medClass, ctx.medOffset, nSmall, nMedium, SEGMENT_BYTES, scratchAt);
  if (ctx.hasBuckets) sieveBuckets(ctx, seg, len);

  if (q0 <= 1) {
    if (q0 == 0) store<u8>(seg, load<u8>(seg) & 0xfe);
    for (let i = 0; i < 13; i++) {
      const p = <i32>load<u8>(PRESIEVE_PRIMES + <usize>i);
      const q = p / 30 - <i32>q0;
      if (q >= 0 && q < len) store<u8>(seg + <usize>q, <u8>(<i32>load<u8>(seg + <usize>q) | (1 << <i32>load<i8>(BIT_OF + <usize>(p % 30)))));
    }
  }
  if (segIndex == 0) store<u8>(seg, load<u8>(seg) & load<u8>(KEEP_FROM + <usize>(ctx.lo - 30 * ctx.qlo)));
  if (segIndex == ctx.lastSegment) {
    const at = seg + <usize>(len - 1);
    store<u8>(at, load<u8>(at) & load<u8>(KEEP_UPTO + <usize>(hi - 30 * ctx.qhi)));
  }
  memory.fill(seg + <usize>len, 0, 16);
  ctx.segIndex = segIndex + 1;
  return len;
}

// ---------------------------------------------------------------------------------------------
// Counting and listing
// ---------------------------------------------------------------------------------------------

let totalWeighted: u64 = 0;
let totalResidues: u64 = 0;

/** Count of the set bits of seg[0 .. len); also sets totalWeighted (sum of i * count(seg[i])) and totalResidues. */
function countBits(seg: usize, len: i32): i32 {
  const r1 = load<u64>(RESIDUE_BITS, 8);
  const r2 = load<u64>(RESIDUE_BITS, 16);
  const r3 = load<u64>(RESIDUE_BITS, 24);
  const r4 = load<u64>(RESIDUE_BITS, 32);
  let count: u64 = 0;
  let weighted: u64 = 0;
  let inWord: u64 = 0;
  let residues: u64 = 0;
  const words = <usize>((len + 7) >>> 3);
  for (let w: usize = 0; w < words; w++) {
    const x = load<u64>(seg + (w << 3));
    if (x == 0) continue;
    const c = popcnt<u64>(x);
    count += c;
    weighted += <u64>w * c;
    inWord += popcnt<u64>(x & 0xff00ff00ff00ff00) + (popcnt<u64>(x & 0xffff0000ffff0000) << 1) + (popcnt<u64>(x & 0xffffffff00000000) << 2);
    residues += c + (popcnt<u64>(x & r1) << 1) + (popcnt<u64>(x & r2) << 2) + (popcnt<u64>(x & r3) << 3) + (popcnt<u64>(x & r4) << 4);
  }
  totalWeighted = (weighted << 3) + inWord;
  totalResidues = residues;
  return <i32>count;
}

// ---------------------------------------------------------------------------------------------
// Exports (bounds and values as f64: safe integers)
// ---------------------------------------------------------------------------------------------

/** Opens [lo, hi] (7 <= lo <= hi <= 2^53 - 1); returns a handle for the calls below. */
export function open(lo: f64, hi: f64): usize {
  return changetype<usize>(openRange(<u64>lo, <u64>hi));
}

export function close(ctx: usize): void {
  closeRange(changetype<Ctx>(ctx));
}

/** Sieves the next segment; returns its length in bytes, 0 when the range is done. */
export function next(ctx: usize): i32 {
  return nextSegment(changetype<Ctx>(ctx));
}

/** Start byte of the current segment (numbers 30 * q0 + ...). */
export function segmentQ0(ctx: usize): f64 {
  return <f64>changetype<Ctx>(ctx).q0;
}

/** Count of the primes of the current segment (length len); see weighted() and residues(). */
export function countSegment(ctx: usize, len: i32): i32 {
  return countBits(changetype<Ctx>(ctx).seg, len);
}

/** After countSegment: sum over bytes i of i * (primes in byte i). */
export function weighted(): f64 {
  return <f64>totalWeighted;
}

/** After countSegment: sum of the residues (n mod 30) of the primes. */
export function residues(): f64 {
  return <f64>totalResidues;
}

/** Smallest prime of the current segment (it must hold one). */
export function firstPrime(ctx: usize): f64 {
  const c = changetype<Ctx>(ctx);
  let i = 0;
  while (load<u8>(c.seg + <usize>i) == 0) i++;
  const byte = <i32>load<u8>(c.seg + <usize>i);
  return <f64>(<u64>30 * (c.q0 + <u64>i) + <u64>load<u8>(RESIDUE_OF_BIT + <usize>(byte & -byte)));
}

/** Largest prime of the current segment of length len (it must hold one). */
export function lastPrime(ctx: usize, len: i32): f64 {
  const c = changetype<Ctx>(ctx);
  let i = len - 1;
  while (load<u8>(c.seg + <usize>i) == 0) i--;
  const byte = <i32>load<u8>(c.seg + <usize>i);
  return <f64>(<u64>30 * (c.q0 + <u64>i) + <u64>res(31 - clz<i32>(byte)));
}

/** Largest number of bytes extract() handles per call (so its output fits LIST_CAPACITY values). */
const EXTRACT_BYTES: i32 = 1 << 15;
const LIST_CAPACITY: i32 = 8 * EXTRACT_BYTES;

/** Bytes per full segment (each byte covers 30 numbers). */
export function segmentBytes(): i32 {
  return SEGMENT_BYTES;
}

export function extractBytes(): i32 {
  return EXTRACT_BYTES;
}
let listPtr: usize = 0;

/** The output buffer of extract() (LIST_CAPACITY f64 values). */
export function listBuffer(): usize {
  if (listPtr == 0) listPtr = heap.alloc(<usize>LIST_CAPACITY << 3);
  return listPtr;
}

/** OFFSET_OF_BIT[b] = 30 * (b >> 3) + RES[b & 7]: the offset of bit b of a 64-bit word (8 bytes). */
const OFFSET_OF_BIT: usize = heap.alloc(64 * 8);
for (let b = 0; b < 64; b++) store<f64>(OFFSET_OF_BIT + (<usize>b << 3), <f64>(30 * (b >> 3) + res(b & 7)));

/**
 * Writes the primes of bytes [from, to) of the current segment (to - from <= EXTRACT_BYTES; from a
 * multiple of 8) as f64 to listBuffer(), ascending; returns how many. Reads whole 64-bit words: the
 * bytes past the segment's end are zero.
 */
export function extract(ctx: usize, from: i32, to: i32): i32 {
  const c = changetype<Ctx>(ctx);
  const seg = c.seg;
  const out = listBuffer();
  let n: usize = 0;
  const q0 = c.q0;
  for (let i = from; i < to; i += 8) {
    let x = load<u64>(seg + <usize>i);
    if (x == 0) continue;
    const base = <f64>(<u64>30 * (q0 + <u64>i));
    do {
      const bit = <usize>ctz<u64>(x);
      store<f64>(out + (n << 3), base + load<f64>(OFFSET_OF_BIT + (bit << 3)));
      n++;
      x &= x - 1;
    } while (x != 0);
  }
  return <i32>n;
}
