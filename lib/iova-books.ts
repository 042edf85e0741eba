// The books of live DMA mappings: disjoint IOVA intervals in a B+ tree, so
// that map, unmap, the overlap check and the search for a free IOVA cost
// O(log n) at the kernel's 65,535 mappings per container, not O(n).
//
// Why a B+ tree and not a binary one: at 65,535 entries a binary tree costs
// ~20 dependent cache misses per lookup. Here a leaf holds up to 32 intervals
// in flat arrays and the tree is 4 levels deep at 65,535; a map or unmap
// shifts a few entries inside one leaf. Measured (scripts/bench/books.js):
// an insert+remove pair at 65,535 live costs a third of an augmented AVL
// tree's, and a hundredth of the sorted array's it replaces.
//
// An item's iova and size must not change while it is in the books.
//
// Each inner node keeps, per child, the child's first start, last end and
// largest gap between two of its consecutive intervals, so findFree goes
// straight to the lowest gap that is long enough. A change climbs only as
// long as some summary actually changed: most stop at their leaf.
//
// Speed: BigInt arithmetic allocates, so the tree compares and subtracts
// doubles (Number(iova)) and touches the bigints only to break a tie that
// involves a rounded value, and to check a candidate exactly. Below 2^53, and
// for every multiple of 2 KiB below 2^64 (so every page-aligned IOVA), the
// double is the IOVA itself. Otherwise it is rounded: order still holds
// (rounding is monotone, ties fall back to the bigints), and a gap touching a
// rounded interval carries SLACK so its bound is never below the real gap; a
// bound can then only let findFree look at a gap too many, never skip one.

/** [iova, iova + size), size > 0, iova + size <= 2^64. */
export interface IovaInterval {
  readonly iova: bigint;
  readonly size: bigint;
}

/** A usable IOVA range, end inclusive. */
export interface IovaWindow {
  readonly start: bigint;
  readonly end: bigint;
}

const LIMIT = 1n << 64n;
/** Below this a double holds every integer. */
const EXACT = 2 ** 53;
/**
 * Added to a gap bound next to a rounded interval: each rounding is at most
 * 1 KiB off below 2^64 (half a 2 KiB ulp), the subtraction another 1 KiB,
 * the addition of SLACK itself another 1 KiB; 4 KiB covers all four.
 */
const SLACK = 4096;

/**
 * Intervals per leaf and children per inner node. At most 32: a leaf keeps
 * its "rounded" flags as the bits of one int32.
 */
const ORDER = 32;

/** A node other than the root keeps at least this many of its capacity. */
function least(capacity: number): number {
  return Math.max(2, capacity >> 2);
}

/** Whether a double holds this bigint exactly (asked only on a tie). */
function exact(d: number, v: bigint): boolean {
  return d < EXACT || BigInt(d) === v;
}

/** An array of doubles V8 stores unboxed (PACKED_DOUBLE_ELEMENTS). */
function doubles(n: number): number[] {
  const a = [0.5];
  while (a.length < n) a.push(0.5);
  return a;
}

function smis(n: number): number[] {
  const a = [0];
  while (a.length < n) a.push(0);
  return a;
}

class Leaf<T> {
  n = 0;
  /** Bit i: s[i] or e[i] is rounded. */
  x = 0;
  /** Largest gap bound between two consecutive intervals here; -1: none. */
  maxGap = -1;
  /**
   * How many gaps here are maxGap long: when mappings are laid out evenly
   * most gaps tie, and splitting one of them must not cost a rescan.
   */
  maxCount = 0;
  prev: Leaf<T> | null = null;
  next: Leaf<T> | null = null;
  /** Number(iova), Number(iova + size). */
  readonly s: number[];
  readonly e: number[];
  readonly items: (T | null)[];

  constructor(capacity: number) {
    this.s = doubles(capacity);
    this.e = doubles(capacity);
    this.items = new Array<T | null>(capacity).fill(null);
  }
}

class Inner<T> {
  n = 0;
  /** Largest gap bound between two consecutive intervals in this subtree; -1: none. */
  maxGap = -1;
  readonly kids: Tree<T>[] = [];
  // Per child: first start, last end, maxGap, whether the first / last interval is rounded.
  readonly lo: number[];
  readonly hi: number[];
  readonly gap: number[];
  readonly lx: number[];
  readonly hx: number[];

  constructor(capacity: number) {
    this.lo = doubles(capacity);
    this.hi = doubles(capacity);
    this.gap = doubles(capacity);
    this.lx = smis(capacity);
    this.hx = smis(capacity);
  }
}

type Tree<T> = Leaf<T> | Inner<T>;

function startOf<T extends IovaInterval>(l: Leaf<T>, i: number): bigint {
  return l.items[i]!.iova;
}

function endOf<T extends IovaInterval>(l: Leaf<T>, i: number): bigint {
  const m = l.items[i]!;
  return m.iova + m.size;
}

function rounded<T>(l: Leaf<T>, i: number): number {
  return (l.x >>> i) & 1;
}

/** Bound of the gap before interval i of a leaf (1 <= i < n). */
function leafGap<T>(l: Leaf<T>, i: number): number {
  return l.s[i] - l.e[i - 1] + ((l.x >>> (i - 1)) & 3 ? SLACK : 0);
}

/** Bound of the gap between children k and k + 1. */
function innerGap<T>(p: Inner<T>, k: number): number {
  return p.lo[k + 1] - p.hi[k] + (p.hx[k] | p.lx[k + 1] ? SLACK : 0);
}

function recomputeLeaf<T>(l: Leaf<T>): void {
  let g = -1;
  let count = 0;
  for (let i = 1; i < l.n; i++) {
    const v = leafGap(l, i);
    if (v > g) {
      g = v;
      count = 1;
    } else if (v === g) {
      count++;
    }
  }
  l.maxGap = g;
  l.maxCount = count;
}

function addGap<T>(l: Leaf<T>, g: number): void {
  if (g > l.maxGap) {
    l.maxGap = g;
    l.maxCount = 1;
  } else if (g === l.maxGap) {
    l.maxCount++;
  }
}

/** The caller rescans if maxCount drops to 0 and no added gap took over. */
function dropGap<T>(l: Leaf<T>, g: number): void {
  if (g === l.maxGap) l.maxCount--;
}

/** Rewrites every child summary of p, and p's maxGap (after a split or a merge). */
function recomputeInner<T>(p: Inner<T>): void {
  for (let k = 0; k < p.n; k++) writeSlot(p, k);
  rescanInner(p);
}

/**
 * p's maxGap from the child summaries it holds: no child is read, so a gap
 * that closes deep in a big tree costs one flat scan per level, not a visit
 * to every child of every level on the way up.
 */
function rescanInner<T>(p: Inner<T>): void {
  let g = -1;
  for (let k = 0; k < p.n; k++) {
    if (p.gap[k] > g) g = p.gap[k];
    if (k > 0) {
      const v = innerGap(p, k - 1);
      if (v > g) g = v;
    }
  }
  p.maxGap = g;
}

function writeSlot<T>(p: Inner<T>, k: number): void {
  const c = p.kids[k];
  if (c instanceof Leaf) {
    const last = c.n - 1;
    p.lo[k] = c.s[0];
    p.hi[k] = c.e[last];
    p.lx[k] = c.x & 1;
    p.hx[k] = rounded(c, last);
  } else {
    const last = c.n - 1;
    p.lo[k] = c.lo[0];
    p.hi[k] = c.hi[last];
    p.lx[k] = c.lx[0];
    p.hx[k] = c.hx[last];
  }
  p.gap[k] = c.maxGap;
}

/**
 * Brings child k's summary up to date after a change inside it, keeping
 * p.maxGap right without a rescan unless the largest gap shrank. Returns
 * false when nothing changed: then nothing above changes either.
 */
function refreshSlot<T>(p: Inner<T>, k: number): boolean {
  const c = p.kids[k];
  let lo: number, hi: number, lx: number, hx: number;
  if (c instanceof Leaf) {
    const last = c.n - 1;
    lo = c.s[0];
    hi = c.e[last];
    lx = c.x & 1;
    hx = rounded(c, last);
  } else {
    const last = c.n - 1;
    lo = c.lo[0];
    hi = c.hi[last];
    lx = c.lx[0];
    hx = c.hx[last];
  }
  const gap = c.maxGap;
  if (lo === p.lo[k] && hi === p.hi[k] && gap === p.gap[k] && lx === p.lx[k] && hx === p.hx[k]) return false;
  const before = k > 0;
  const after = k + 1 < p.n;
  const old = Math.max(p.gap[k], before ? innerGap(p, k - 1) : -1, after ? innerGap(p, k) : -1);
  p.lo[k] = lo;
  p.hi[k] = hi;
  p.lx[k] = lx;
  p.hx[k] = hx;
  p.gap[k] = gap;
  const now = Math.max(gap, before ? innerGap(p, k - 1) : -1, after ? innerGap(p, k) : -1);
  if (now >= p.maxGap) p.maxGap = now;
  else if (old === p.maxGap) rescanInner(p);
  return true;
}

// --- positions --------------------------------------------------------------
//
// Doubles decide every comparison they can. Equal doubles mean equal values
// when neither side is rounded; otherwise the bigints decide.

/** The leftmost start under c, exact. */
function firstStart<T extends IovaInterval>(c: Tree<T>): bigint {
  while (!(c instanceof Leaf)) c = c.kids[0];
  return startOf(c, 0);
}

/** The rightmost end under c, exact. */
function lastEnd<T extends IovaInterval>(c: Tree<T>): bigint {
  while (!(c instanceof Leaf)) c = c.kids[c.n - 1];
  return endOf(c, c.n - 1);
}

/** Interval i of l starts above (s, start). */
function startsAbove<T extends IovaInterval>(l: Leaf<T>, i: number, s: number, start: bigint): boolean {
  const v = l.s[i];
  return v > s || (v === s && (rounded(l, i) === 1 || !exact(s, start)) && startOf(l, i) > start);
}

/** Interval i of l starts below (s, start). */
function startsBelow<T extends IovaInterval>(l: Leaf<T>, i: number, s: number, start: bigint): boolean {
  const v = l.s[i];
  return v < s || (v === s && (rounded(l, i) === 1 || !exact(s, start)) && startOf(l, i) < start);
}

/** Interval i of l ends above (e, end). */
function endsAbove<T extends IovaInterval>(l: Leaf<T>, i: number, e: number, end: bigint): boolean {
  const v = l.e[i];
  return v > e || (v === e && (rounded(l, i) === 1 || !exact(e, end)) && endOf(l, i) > end);
}

/** The child of p whose range holds start (s, start): the last whose first start is <= it, or 0. */
function routeStart<T extends IovaInterval>(p: Inner<T>, s: number, start: bigint): number {
  let lo = 0;
  let hi = p.n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (p.lo[mid] <= s) lo = mid + 1;
    else hi = mid;
  }
  let k = lo - 1;
  while (k > 0 && p.lo[k] === s && (p.lx[k] === 1 || !exact(s, start)) && firstStart(p.kids[k]) > start) k--;
  return k < 0 ? 0 : k;
}

/** The first index of l whose start is above (s, start). */
function upperStart<T extends IovaInterval>(l: Leaf<T>, s: number, start: bigint): number {
  let lo = 0;
  let hi = l.n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (l.s[mid] <= s) lo = mid + 1;
    else hi = mid;
  }
  while (lo > 0 && l.s[lo - 1] === s && startsAbove(l, lo - 1, s, start)) lo--;
  return lo;
}

/** The first index of l whose start is at or above (s, start). */
function lowerStart<T extends IovaInterval>(l: Leaf<T>, s: number, start: bigint): number {
  let lo = 0;
  let hi = l.n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (l.s[mid] < s) lo = mid + 1;
    else hi = mid;
  }
  while (lo < l.n && l.s[lo] === s && startsBelow(l, lo, s, start)) lo++;
  return lo;
}

// A found position: seekEnd and the gap search leave their answer here
// rather than allocate one. A gap is named by the interval above it.
let atLeaf: Leaf<unknown> | null = null;
let atIndex = 0;

/** Finds the first interval whose end is above p; false if none. */
function seekEnd<T extends IovaInterval>(c: Tree<T>, p: bigint, pn: number): boolean {
  while (!(c instanceof Leaf)) {
    let lo = 0;
    let hi = c.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c.hi[mid] < pn) lo = mid + 1;
      else hi = mid;
    }
    while (lo < c.n && c.hi[lo] === pn && !((c.hx[lo] === 1 || !exact(pn, p)) && lastEnd(c.kids[lo]) > p)) lo++;
    if (lo === c.n) return false;
    c = c.kids[lo];
  }
  let lo = 0;
  let hi = c.n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (c.e[mid] < pn) lo = mid + 1;
    else hi = mid;
  }
  while (lo < c.n && c.e[lo] === pn && !endsAbove(c, lo, pn, p)) lo++;
  if (lo === c.n) return false;
  atLeaf = c;
  atIndex = lo;
  return true;
}

function setGap<T>(v: Leaf<T>, j: number): true {
  atLeaf = v;
  atIndex = j;
  return true;
}

/** The gap between subtrees a and b, b right after a. */
function setGapBefore<T>(b: Tree<T>): true {
  while (!(b instanceof Leaf)) b = b.kids[0];
  return setGap(b, 0);
}

/** The lowest gap under c with a bound >= need (c.maxGap >= need, so there is one). */
function lowestGap<T extends IovaInterval>(c: Tree<T>, need: number): boolean {
  descend: for (;;) {
    if (c instanceof Leaf) {
      for (let i = 1; i < c.n; i++) if (leafGap(c, i) >= need) return setGap(c, i);
      return false;
    }
    for (let k = 0; k < c.n; k++) {
      if (k > 0 && innerGap(c, k - 1) >= need) return setGapBefore(c.kids[k]);
      if (c.gap[k] >= need) {
        c = c.kids[k];
        continue descend;
      }
    }
    return false;
  }
}

/**
 * The lowest gap under c with a bound >= need whose lower interval is the
 * live interval (s, start) or a later one. One path down, at most one
 * lowestGap that cannot fail: O(depth × ORDER).
 */
function gapFrom<T extends IovaInterval>(c: Tree<T>, s: number, start: bigint, need: number): boolean {
  if (c.maxGap < need) return false;
  if (c instanceof Leaf) {
    for (let i = lowerStart(c, s, start) + 1; i < c.n; i++) if (leafGap(c, i) >= need) return setGap(c, i);
    return false;
  }
  const k0 = routeStart(c, s, start);
  if (gapFrom(c.kids[k0], s, start, need)) return true;
  for (let k = k0 + 1; k < c.n; k++) {
    if (innerGap(c, k - 1) >= need) return setGapBefore(c.kids[k]);
    if (c.gap[k] >= need) return lowestGap(c.kids[k], need);
  }
  return false;
}

// --- insert -------------------------------------------------------------------

const SAME = 0;
const CHANGED = 1;
const SPLIT = 2;
const UNDER = 3;
const MISSING = 4;
const CLASH = 5;

// What an insert that found an overlap ran into (insertAt returned CLASH).
let clash: unknown = null;

// The new right half of a node that split, handed to its parent.
let splitOff: Tree<unknown> | null = null;

/**
 * The live interval (s..e) would overlap on either side of position pos of
 * l, or null. The one before is in l: routing puts a start at or after the
 * first start of its leaf, except in the leftmost leaf, where nothing comes before.
 */
function clashAt<T extends IovaInterval>(l: Leaf<T>, pos: number, item: T, s: number, e: number, x: number): T | null {
  if (pos > 0) {
    const pe = l.e[pos - 1];
    if (pe > s || (pe === s && (rounded(l, pos - 1) | x) !== 0 && endOf(l, pos - 1) > item.iova)) return l.items[pos - 1];
  }
  let nl: Leaf<T> | null = l;
  let ni = pos;
  if (pos === l.n) {
    nl = l.next;
    ni = 0;
  }
  if (nl !== null) {
    const ns = nl.s[ni];
    if (ns < e || (ns === e && (rounded(nl, ni) | x) !== 0 && startOf(nl, ni) < item.iova + item.size)) return nl.items[ni];
  }
  return null;
}

function leafInsert<T>(l: Leaf<T>, pos: number, item: T, s: number, e: number, x: number): void {
  const n = l.n;
  if (pos > 0 && pos < n) dropGap(l, leafGap(l, pos));
  for (let j = n; j > pos; j--) {
    l.s[j] = l.s[j - 1];
    l.e[j] = l.e[j - 1];
    l.items[j] = l.items[j - 1];
  }
  l.s[pos] = s;
  l.e[pos] = e;
  l.items[pos] = item;
  const below = ~(-1 << pos);
  l.x = (l.x & below) | ((l.x & ~below) << 1) | (x << pos);
  l.n = n + 1;
  if (pos > 0) addGap(l, leafGap(l, pos));
  if (pos < n) addGap(l, leafGap(l, pos + 1));
  if (l.maxCount === 0) recomputeLeaf(l);
}

function splitLeaf<T>(l: Leaf<T>): Leaf<T> {
  const r = new Leaf<T>(l.s.length);
  const h = l.n >> 1;
  for (let i = h; i < l.n; i++) {
    r.s[i - h] = l.s[i];
    r.e[i - h] = l.e[i];
    r.items[i - h] = l.items[i];
    l.items[i] = null;
  }
  r.x = l.x >>> h;
  l.x &= ~(-1 << h);
  r.n = l.n - h;
  l.n = h;
  r.next = l.next;
  if (r.next !== null) r.next.prev = r;
  r.prev = l;
  l.next = r;
  recomputeLeaf(l);
  recomputeLeaf(r);
  return r;
}

function insertKid<T>(p: Inner<T>, at: number, c: Tree<T>): void {
  for (let k = p.n; k > at; k--) p.kids[k] = p.kids[k - 1];
  p.kids[at] = c;
  p.n++;
}

function splitInner<T>(p: Inner<T>): Inner<T> {
  const r = new Inner<T>(p.lo.length);
  const h = p.n >> 1;
  for (let k = h; k < p.n; k++) r.kids.push(p.kids[k]);
  r.n = p.n - h;
  p.kids.length = h;
  p.n = h;
  return r;
}

function insertAt<T extends IovaInterval>(c: Tree<T>, item: T, s: number, e: number, x: number, start: bigint): number {
  if (c instanceof Leaf) {
    const pos = upperStart(c, s, start);
    const hit = clashAt(c, pos, item, s, e, x);
    if (hit !== null) {
      clash = hit;
      return CLASH;
    }
    if (c.n < c.s.length) {
      leafInsert(c, pos, item, s, e, x);
      return CHANGED;
    }
    const r = splitLeaf(c);
    if (pos <= c.n) leafInsert(c, pos, item, s, e, x);
    else leafInsert(r, pos - c.n, item, s, e, x);
    splitOff = r;
    return SPLIT;
  }
  const k = routeStart(c, s, start);
  const done = insertAt(c.kids[k], item, s, e, x, start);
  if (done === SPLIT) {
    const sibling = splitOff as Tree<T>;
    if (c.n < c.lo.length) {
      insertKid(c, k + 1, sibling);
      recomputeInner(c);
      return CHANGED;
    }
    const r = splitInner(c);
    if (k + 1 <= c.n) insertKid(c, k + 1, sibling);
    else insertKid(r, k + 1 - c.n, sibling);
    recomputeInner(c);
    recomputeInner(r);
    splitOff = r;
    return SPLIT;
  }
  if (done === CLASH) return CLASH;
  return done === CHANGED && refreshSlot(c, k) ? CHANGED : SAME;
}

// --- remove -------------------------------------------------------------------

function leafRemove<T>(l: Leaf<T>, pos: number): void {
  const n = l.n;
  if (pos > 0) dropGap(l, leafGap(l, pos));
  if (pos + 1 < n) dropGap(l, leafGap(l, pos + 1));
  for (let j = pos + 1; j < n; j++) {
    l.s[j - 1] = l.s[j];
    l.e[j - 1] = l.e[j];
    l.items[j - 1] = l.items[j];
  }
  l.items[n - 1] = null;
  const below = ~(-1 << pos);
  l.x = (l.x & below) | ((l.x >>> 1) & ~below);
  l.n = n - 1;
  if (pos > 0 && pos < n - 1) addGap(l, leafGap(l, pos));
  if (l.maxCount === 0) recomputeLeaf(l);
}

/** Moves entries between siblings a (left) and b (right) so that a ends up with `want`. */
function shiftLeaves<T>(a: Leaf<T>, b: Leaf<T>, want: number): void {
  const total = a.n + b.n;
  const s = a.s.slice(0, a.n).concat(b.s.slice(0, b.n));
  const e = a.e.slice(0, a.n).concat(b.e.slice(0, b.n));
  const items = a.items.slice(0, a.n).concat(b.items.slice(0, b.n));
  const x = (a.x >>> 0) + (b.x >>> 0) * 2 ** a.n; // up to 64 bits: a double, not an int32
  for (let i = 0; i < total; i++) {
    const to = i < want ? a : b;
    const j = i < want ? i : i - want;
    to.s[j] = s[i];
    to.e[j] = e[i];
    to.items[j] = items[i];
  }
  for (let i = want; i < a.n; i++) a.items[i] = null;
  for (let i = total - want; i < b.n; i++) b.items[i] = null;
  a.x = x % 2 ** want | 0;
  b.x = Math.floor(x / 2 ** want) | 0;
  a.n = want;
  b.n = total - want;
  recomputeLeaf(a);
  recomputeLeaf(b);
}

/** Child k of p is under its minimum: borrow from a sibling, or merge with it. */
function fixUnder<T>(p: Inner<T>, k: number): void {
  const j = k > 0 ? k - 1 : k;
  const a = p.kids[j];
  const b = p.kids[j + 1];
  if (a instanceof Leaf) {
    const bl = b as Leaf<T>;
    const total = a.n + bl.n;
    if (total >= 2 * least(a.s.length)) {
      shiftLeaves(a, bl, total >> 1);
    } else {
      shiftLeaves(a, bl, total);
      a.next = bl.next;
      if (a.next !== null) a.next.prev = a;
      p.kids.splice(j + 1, 1);
      p.n--;
    }
  } else {
    const bi = b as Inner<T>;
    const total = a.n + bi.n;
    const want = total >= 2 * least(a.lo.length) ? total >> 1 : total;
    const all = a.kids.concat(bi.kids);
    a.kids.length = 0;
    bi.kids.length = 0;
    for (let i = 0; i < total; i++) (i < want ? a.kids : bi.kids).push(all[i]);
    a.n = want;
    bi.n = total - want;
    recomputeInner(a);
    if (bi.n > 0) {
      recomputeInner(bi);
    } else {
      p.kids.splice(j + 1, 1);
      p.n--;
    }
  }
  recomputeInner(p);
}

function removeAt<T extends IovaInterval>(c: Tree<T>, item: T, s: number, start: bigint): number {
  if (c instanceof Leaf) {
    let i = lowerStart(c, s, start);
    while (i < c.n && c.s[i] === s && c.items[i] !== item) i++;
    if (i === c.n || c.items[i] !== item) return MISSING;
    leafRemove(c, i);
    return c.n < least(c.s.length) ? UNDER : CHANGED;
  }
  const k = routeStart(c, s, start);
  const done = removeAt(c.kids[k], item, s, start);
  if (done === UNDER) {
    fixUnder(c, k);
    return c.n < least(c.lo.length) ? UNDER : CHANGED;
  }
  if (done === CHANGED) return refreshSlot(c, k) ? CHANGED : SAME;
  return done;
}

// --- the books ------------------------------------------------------------------

export class IovaBooks<T extends IovaInterval> {
  readonly #order: number;
  #root: Tree<T>;
  #size = 0;
  /** Bumped by every change, so a running iterator knows to find its place again. */
  #version = 0;

  /** @param order @internal Node capacity (4..32); tests pass a small one to reach every split and merge with few entries. */
  constructor(order = ORDER) {
    if (!Number.isInteger(order) || order < 4 || order > 32) throw new Error(`iova books: order ${order} is not within 4..32`);
    this.#order = order;
    this.#root = new Leaf<T>(order);
  }

  /** Live entries. */
  get size(): number {
    return this.#size;
  }

  /** @internal Levels of the tree (1: the root is a leaf). */
  get height(): number {
    let h = 1;
    for (let c = this.#root; !(c instanceof Leaf); c = c.kids[0]) h++;
    return h;
  }

  /** Adds an interval; the caller has checked it overlaps nothing (throws if it does: a bug). */
  insert(item: T): void {
    const hit = this.insertFree(item);
    if (hit !== undefined) {
      const hex = (v: bigint) => `0x${v.toString(16)}`;
      throw new Error(`iova books: [${hex(item.iova)}, ${hex(item.iova + item.size)}) overlaps the live [${hex(hit.iova)}, ${hex(hit.iova + hit.size)})`);
    }
  }

  /**
   * Adds an interval unless it overlaps a live one, which it then returns
   * (and changes nothing): the overlap check and the insert in one descent.
   */
  insertFree(item: T): T | undefined {
    const start = item.iova;
    const size = item.size;
    if (typeof start !== 'bigint' || typeof size !== 'bigint' || start < 0n || size <= 0n) throw notInterval(item);
    const s = Number(start);
    let e = s + Number(size);
    let x = 0;
    // Below 2^53 the sum of the doubles is the end; above, no BigInt is spared.
    if (!(e < EXACT)) {
      const end = start + size;
      if (end > LIMIT) throw notInterval(item);
      e = Number(end);
      x = BigInt(s) === start && BigInt(e) === end ? 0 : 1;
    }
    const done = insertAt(this.#root, item, s, e, x, start);
    if (done === CLASH) {
      const hit = clash as T;
      clash = null;
      return hit;
    }
    if (done === SPLIT) {
      const root = new Inner<T>(this.#order);
      root.kids.push(this.#root, splitOff as Tree<T>);
      root.n = 2;
      recomputeInner(root);
      this.#root = root;
    }
    splitOff = null;
    this.#size++;
    this.#version++;
    return undefined;
  }

  /** Removes this very object; false if it is not live. */
  remove(item: T): boolean {
    const start = item.iova;
    if (typeof start !== 'bigint') return false;
    const done = removeAt(this.#root, item, Number(start), start);
    if (done === MISSING) return false;
    const root = this.#root;
    if (root instanceof Inner && root.n === 1) this.#root = root.kids[0];
    this.#size--;
    this.#version++;
    return true;
  }

  /** Whether this very object is live. */
  has(item: T): boolean {
    const start = item.iova;
    if (typeof start !== 'bigint') return false;
    const s = Number(start);
    let c = this.#root;
    while (!(c instanceof Leaf)) c = c.kids[routeStart(c, s, start)];
    for (let i = lowerStart(c, s, start); i < c.n && c.s[i] === s; i++) if (c.items[i] === item) return true;
    return false;
  }

  /** The lowest live interval intersecting [iova, iova + size), if any. */
  firstOverlap(iova: bigint, size: bigint): T | undefined {
    if (!(size > 0n) || !seekEnd(this.#root, iova, Number(iova))) return undefined;
    const l = atLeaf as Leaf<T>;
    const end = iova + size;
    return startsBelow(l, atIndex, Number(end), end) ? l.items[atIndex]! : undefined;
  }

  /** The live intervals intersecting [iova, iova + size), in IOVA order: O(log n + found). */
  inRange(iova: bigint, size: bigint): T[] {
    const out: T[] = [];
    if (!(size > 0n) || !seekEnd(this.#root, iova, Number(iova))) return out;
    const end = iova + size;
    const en = Number(end);
    for (let l: Leaf<T> | null = atLeaf as Leaf<T>, i = atIndex; l !== null; l = l.next, i = 0) {
      for (; i < l.n; i++) {
        if (!startsBelow(l, i, en, end)) return out;
        out.push(l.items[i]!);
      }
    }
    return out;
  }

  /**
   * The lowest start, a multiple of `alignment`, of `size` free bytes inside
   * one window (windows tried in the order given; end inclusive).
   *
   * Per window: O(log n) to reach the first gap at least `size` long. A gap
   * that long may still be too short once its start is aligned up (only if
   * it is shorter than size + alignment - 1); the search then goes on to the
   * next long enough gap: along the leaf, O(1) each, or down from the root
   * past leaves that have none, O(log n). So O((1 + m) log n), m the gaps
   * skipped that way. When every interval starts and ends on a multiple of
   * `alignment` (an IOMMU's mappings, searched at its page size) m = 0.
   */
  findFree(size: bigint, alignment: bigint, windows: readonly IovaWindow[]): bigint | undefined {
    if (!(size > 0n) || !(alignment > 0n)) {
      throw new Error(`iova books: findFree needs size > 0 and alignment > 0, got ${String(size)}, ${String(alignment)}`);
    }
    const need = Number(size);
    for (const w of windows) {
      const top = w.end + 1n;
      if (w.start >= top || top - w.start < size) continue;
      const at = this.#findIn(w.start, top, size, alignment, need);
      if (at !== undefined) return at;
    }
    return undefined;
  }

  /** Every live interval in IOVA order; changes during the walk are seen from the current position on. */
  *[Symbol.iterator](): IterableIterator<T> {
    let version = this.#version;
    let l: Leaf<T> | null = this.#firstLeaf();
    let i = 0;
    for (;;) {
      while (l !== null && i >= l.n) {
        l = l.next;
        i = 0;
      }
      if (l === null) return;
      const item = l.items[i++]!;
      yield item;
      if (version !== this.#version) {
        // Find the place again: the first interval starting above item.
        version = this.#version;
        const start = item.iova;
        const s = Number(start);
        let c = this.#root;
        while (!(c instanceof Leaf)) c = c.kids[routeStart(c, s, start)];
        l = c;
        i = upperStart(c, s, start);
      }
    }
  }

  clear(): void {
    this.#root = new Leaf<T>(this.#order);
    this.#size = 0;
    this.#version++;
  }

  /** @internal For tests: throws unless the tree is ordered, balanced, linked and summarised right. */
  audit(): void {
    const fail = (why: string): never => {
      throw new Error(`iova books: ${why}`);
    };
    const leaves: Leaf<T>[] = [];
    let depth = -1;
    const walk = (c: Tree<T>, d: number, root: boolean): void => {
      if (c instanceof Leaf) {
        if (depth === -1) depth = d;
        if (d !== depth) fail('leaves at different depths');
        if (!root && c.n < least(this.#order)) fail(`leaf of ${c.n}`);
        if (c.n < 32 && c.x >>> c.n !== 0) fail(`rounded flags ${c.x.toString(2)} beyond ${c.n} entries`);
        const [g, count] = [c.maxGap, c.maxCount];
        recomputeLeaf(c);
        if (g !== c.maxGap || count !== c.maxCount) fail(`leaf maxGap ${g} × ${count}, should be ${c.maxGap} × ${c.maxCount}`);
        for (let i = 0; i < c.n; i++) {
          const item = c.items[i]!;
          const end = item.iova + item.size;
          const x = BigInt(c.s[i]) === item.iova && BigInt(c.e[i]) === end ? 0 : 1;
          if (c.s[i] !== Number(item.iova) || c.e[i] !== Number(end) || x !== rounded(c, i)) fail(`entry ${i} of a leaf does not match its item`);
        }
        leaves.push(c);
        return;
      }
      if (c.n !== c.kids.length || c.n < (root ? 2 : least(this.#order)) || c.n > this.#order) fail(`inner node of ${c.n} (${c.kids.length})`);
      c.kids.forEach((k) => walk(k, d + 1, false));
      const saved = [c.lo, c.hi, c.gap, c.lx, c.hx].map((a) => a.slice(0, c.n).join());
      const g = c.maxGap;
      recomputeInner(c);
      const now = [c.lo, c.hi, c.gap, c.lx, c.hx].map((a) => a.slice(0, c.n).join());
      if (saved.join('|') !== now.join('|') || g !== c.maxGap) fail('inner summary out of date');
    };
    walk(this.#root, 0, true);
    let count = 0;
    let prev: T | null = null;
    leaves.forEach((l, k) => {
      if (l.prev !== (leaves[k - 1] ?? null) || l.next !== (leaves[k + 1] ?? null)) fail('leaf links');
      for (let i = 0; i < l.n; i++, count++) {
        const item = l.items[i]!;
        if (prev !== null && prev.iova + prev.size > item.iova) fail('out of order or overlapping');
        prev = item;
      }
      for (let i = l.n; i < this.#order; i++) if (l.items[i] !== null) fail('a stale item kept alive');
    });
    if (count !== this.#size) fail(`${count} entries, size says ${this.#size}`);
  }

  #firstLeaf(): Leaf<T> {
    let c = this.#root;
    while (!(c instanceof Leaf)) c = c.kids[0];
    return c;
  }

  /** findFree inside [lo, top), top - lo >= size. */
  #findIn(lo: bigint, top: bigint, size: bigint, alignment: bigint, need: number): bigint | undefined {
    const root = this.#root;
    if (!seekEnd(root, lo, Number(lo))) return fit(lo, top, size, alignment);
    let l = atLeaf as Leaf<T>;
    let i = atIndex;
    const first = startOf(l, i);
    if (first > lo) {
      const at = fit(lo, first < top ? first : top, size, alignment);
      if (at !== undefined) return at;
    }
    fitting(top, size, alignment);
    // The gaps above interval i of leaf l, lowest first: one by one inside a
    // leaf, along the leaf chain while the next leaf has a long enough gap,
    // and down from the root past leaves that have none.
    for (;;) {
      if (l.maxGap >= need) {
        for (let j = i + 1; j < l.n; j++) {
          if (leafGap(l, j) < need) continue;
          const at = tryGap(l, j - 1, l, j);
          if (at !== null) return at;
        }
      }
      const next = l.next;
      if (next === null) return tail(l);
      if (next.s[0] - l.e[l.n - 1] + ((l.x >>> (l.n - 1)) & 1 | next.x & 1 ? SLACK : 0) >= need) {
        const at = tryGap(l, l.n - 1, next, 0);
        if (at !== null) return at;
      }
      if (next.maxGap >= need) {
        l = next;
        i = 0;
        continue;
      }
      const last = next.n - 1;
      if (!gapFrom(root, next.s[last], startOf(next, last), need)) return tail(lastLeaf(root));
      l = atLeaf as Leaf<T>;
      i = atIndex;
      const at = i > 0 ? tryGap(l, i - 1, l, i) : tryGap(l.prev!, l.prev!.n - 1, l, 0);
      if (at !== null) return at;
    }
  }
}

// What findFree looks for, set once per window (tryGap reads it).
let fitTop = 0n;
let fitSize = 0n;
let fitAlignment = 1n;
let fitTopN = 0;
let fitSizeN = 0;
let fitAlignmentN = 1;
/** 1 / alignment: exact when the alignment is a power of two, else 0 (divide instead). */
let fitInverse = 0;
/** Size and alignment are exact doubles: a gap below 2^53 is checked without BigInt. */
let fitDoubles = false;

function fitting(top: bigint, size: bigint, alignment: bigint): void {
  fitTop = top;
  fitSize = size;
  fitAlignment = alignment;
  fitTopN = Number(top);
  fitSizeN = Number(size);
  fitAlignmentN = Number(alignment);
  fitInverse = (alignment & (alignment - 1n)) === 0n ? 1 / fitAlignmentN : 0;
  fitDoubles = fitSizeN < EXACT && fitAlignmentN < EXACT;
}

/**
 * Checks the gap between interval i of u and interval j of v, its successor.
 * Returns the aligned start if the request fits there, undefined if neither
 * this gap nor any later one can (it reaches the window's top), null to go on.
 */
function tryGap<T extends IovaInterval>(u: Leaf<T>, i: number, v: Leaf<T>, j: number): bigint | undefined | null {
  const vs = v.s[j];
  if (fitDoubles && vs < EXACT) {
    // Everything below 2^53 is exact, and a sum that rounds lands above vs anyway.
    const ue = u.e[i];
    if (ue >= fitTopN) return undefined;
    // ue % alignment, without the slow float modulo: below 2^53 the rounded
    // quotient never reaches the next integer, so this is exact.
    const rest = ue - Math.floor(fitInverse !== 0 ? ue * fitInverse : ue / fitAlignmentN) * fitAlignmentN;
    const at = rest === 0 ? ue : ue + (fitAlignmentN - rest);
    if (at + fitSizeN <= (vs < fitTopN ? vs : fitTopN)) return BigInt(at);
    return vs >= fitTopN ? undefined : null;
  }
  const from = endOf(u, i);
  if (from >= fitTop) return undefined;
  const to = startOf(v, j);
  const at = fit(from, to < fitTop ? to : fitTop, fitSize, fitAlignment);
  if (at !== undefined) return at;
  return to >= fitTop ? undefined : null;
}

/** The request in the space above the last interval of l, which has no successor. */
function tail<T extends IovaInterval>(l: Leaf<T>): bigint | undefined {
  const end = endOf(l, l.n - 1);
  return end < fitTop ? fit(end, fitTop, fitSize, fitAlignment) : undefined;
}

function lastLeaf<T>(c: Tree<T>): Leaf<T> {
  while (!(c instanceof Leaf)) c = c.kids[c.n - 1];
  return c;
}

function notInterval(item: IovaInterval): Error {
  return new Error(`iova books: not an IOVA interval: iova ${String(item.iova)}, size ${String(item.size)}`);
}

function alignUp(v: bigint, alignment: bigint): bigint {
  const rest = v % alignment;
  return rest === 0n ? v : v + (alignment - rest);
}

/** The lowest aligned start of `size` bytes in [from, limit), or undefined. */
function fit(from: bigint, limit: bigint, size: bigint, alignment: bigint): bigint | undefined {
  const at = alignUp(from, alignment);
  return at + size <= limit ? at : undefined;
}
