// The books of live DMA mappings: disjoint IOVA intervals in an AVL tree, so
// that map, unmap, the overlap check and the search for a free IOVA cost
// O(log n) at the kernel's 65,535 mappings per container, not O(n).
//
// Every node also keeps, for its subtree, the first and last interval and the
// largest gap between two consecutive intervals: findFree descends to the
// lowest gap that is long enough without visiting the others.
//
// Speed: BigInt arithmetic allocates, so the tree compares and subtracts
// doubles (Number(iova)) and uses the bigints only to break ties and to check
// a candidate exactly. Below 2^53, and for every multiple of 2 KiB below 2^64
// (so every page-aligned IOVA), the double is the IOVA itself. Otherwise it
// is rounded: order still holds (rounding is monotone, ties fall back to the
// bigints), and a gap carries SLACK so its bound is never below the real gap;
// a bound can then only let findFree look at one gap too many, never skip one.

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
 * Added to a gap whose ends are rounded: each rounding is at most 1 KiB off
 * below 2^64 (half a 2 KiB ulp), the subtraction another 1 KiB, the addition
 * of SLACK itself another 1 KiB; 4 KiB covers all four.
 */
const SLACK = 4096;

class Node<T> {
  left: Node<T> | null = null;
  right: Node<T> | null = null;
  height = 1;
  /** Largest bound of a gap between consecutive intervals of this subtree; -1: none. */
  maxGap = -1;
  first: Node<T>;
  last: Node<T>;

  constructor(
    readonly item: T,
    readonly start: bigint,
    readonly end: bigint,
    /** Number(start), Number(end). */
    readonly s: number,
    readonly e: number,
    /** 0 if s and e are exact, else SLACK. */
    readonly slack: number,
  ) {
    this.first = this;
    this.last = this;
  }
}

/** An upper bound of the free bytes between u and its successor v. */
function gapBound<T>(u: Node<T>, v: Node<T>): number {
  return v.s - u.e + (u.slack | v.slack);
}

function less<T>(a: Node<T>, b: Node<T>): boolean {
  return a.s < b.s || (a.s === b.s && a.start < b.start);
}

function height<T>(x: Node<T> | null): number {
  return x === null ? 0 : x.height;
}

function update<T>(x: Node<T>): void {
  const l = x.left;
  const r = x.right;
  let h = 1;
  let g = -1;
  if (l !== null) {
    h = l.height + 1;
    g = l.maxGap;
    const lg = gapBound(l.last, x);
    if (lg > g) g = lg;
    x.first = l.first;
  } else {
    x.first = x;
  }
  if (r !== null) {
    if (r.height >= h) h = r.height + 1;
    if (r.maxGap > g) g = r.maxGap;
    const rg = gapBound(x, r.first);
    if (rg > g) g = rg;
    x.last = r.last;
  } else {
    x.last = x;
  }
  x.height = h;
  x.maxGap = g;
}

function rotateRight<T>(x: Node<T>): Node<T> {
  const l = x.left!;
  x.left = l.right;
  l.right = x;
  update(x);
  update(l);
  return l;
}

function rotateLeft<T>(x: Node<T>): Node<T> {
  const r = x.right!;
  x.right = r.left;
  r.left = x;
  update(x);
  update(r);
  return r;
}

function rebalance<T>(x: Node<T>): Node<T> {
  const hl = height(x.left);
  const hr = height(x.right);
  if (hl > hr + 1) {
    const l = x.left!;
    if (height(l.left) < height(l.right)) x.left = rotateLeft(l);
    return rotateRight(x);
  }
  if (hr > hl + 1) {
    const r = x.right!;
    if (height(r.right) < height(r.left)) x.right = rotateRight(r);
    return rotateLeft(x);
  }
  update(x);
  return x;
}

/**
 * Inserts n below x. The search path passes n's predecessor and successor,
 * so checking every node on it finds any overlap, and throws before the
 * first assignment on the way back up: a refused insert changes nothing.
 */
function insertAt<T>(x: Node<T> | null, n: Node<T>): Node<T> {
  if (x === null) return n;
  if (less(n, x)) {
    // n.end > x.start
    if (n.e > x.s || (n.e === x.s && n.end > x.start)) throw overlapBug(n, x);
    x.left = insertAt(x.left, n);
  } else {
    // x.end > n.start (equal starts overlap too)
    if (x.e > n.s || (x.e === n.s && x.end > n.start)) throw overlapBug(n, x);
    x.right = insertAt(x.right, n);
  }
  return rebalance(x);
}

function overlapBug<T>(n: Node<T>, x: Node<T>): Error {
  return new Error(
    `iova books: [0x${n.start.toString(16)}, 0x${n.end.toString(16)}) overlaps the live [0x${x.start.toString(16)}, 0x${x.end.toString(16)})`,
  );
}

function removeMin<T>(x: Node<T>): Node<T> | null {
  if (x.left === null) return x.right;
  x.left = removeMin(x.left);
  return rebalance(x);
}

/** Removes `target`, a node of the subtree x. */
function removeAt<T>(x: Node<T>, target: Node<T>): Node<T> | null {
  if (x === target) {
    if (x.left === null) return x.right;
    if (x.right === null) return x.left;
    const m = x.right.first;
    m.right = removeMin(x.right);
    m.left = x.left;
    return rebalance(m);
  }
  if (less(target, x)) x.left = removeAt(x.left!, target);
  else x.right = removeAt(x.right!, target);
  return rebalance(x);
}

/** The first node whose end is above `p`. */
function firstEndingAbove<T>(x: Node<T> | null, p: bigint, pn: number): Node<T> | null {
  let best: Node<T> | null = null;
  while (x !== null) {
    if (x.e > pn || (x.e === pn && x.end > p)) {
      best = x;
      x = x.left;
    } else {
      x = x.right;
    }
  }
  return best;
}

// findFree's gap search hands back the gap's right node and leaves its left one here.
let gapLeft: Node<unknown> | null = null;

/** The lowest gap in x with a bound >= need; x.maxGap >= need, so there is one. */
function lowestGap<T>(x: Node<T>, need: number): Node<T> {
  for (;;) {
    const l = x.left;
    if (l !== null) {
      if (l.maxGap >= need) {
        x = l;
        continue;
      }
      if (gapBound(l.last, x) >= need) {
        gapLeft = l.last;
        return x;
      }
    }
    const r = x.right!;
    if (gapBound(x, r.first) >= need) {
      gapLeft = x;
      return r.first;
    }
    x = r;
  }
}

/**
 * The lowest gap in x whose left node is `from` or later, with a bound >= need.
 * One bounded path from the root plus at most one lowestGap, which cannot
 * fail: O(height).
 */
function lowestGapFrom<T>(x: Node<T> | null, from: Node<T>, need: number): Node<T> | null {
  while (x !== null && x.maxGap >= need && less(x, from)) x = x.right;
  if (x === null || x.maxGap < need) return null;
  const l = x.left;
  if (l !== null) {
    const v = lowestGapFrom(l, from, need);
    if (v !== null) return v;
    if (!less(l.last, from) && gapBound(l.last, x) >= need) {
      gapLeft = l.last;
      return x;
    }
  }
  const r = x.right;
  if (r !== null) {
    if (gapBound(x, r.first) >= need) {
      gapLeft = x;
      return r.first;
    }
    if (r.maxGap >= need) return lowestGap(r, need);
  }
  return null;
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

export class IovaBooks<T extends IovaInterval> {
  #root: Node<T> | null = null;
  #size = 0;
  /** Bumped by every change, so a running iterator knows to find its place again. */
  #version = 0;

  /** Live entries. */
  get size(): number {
    return this.#size;
  }

  /** @internal Levels of the tree: AVL keeps it under 1.44 log2(size + 2). */
  get height(): number {
    return height(this.#root);
  }

  /** Adds an interval; the caller has checked it overlaps nothing (throws if it does: a bug). */
  insert(item: T): void {
    const start = item.iova;
    const size = item.size;
    const end = typeof start === 'bigint' && typeof size === 'bigint' ? start + size : -1n;
    if (start < 0n || !(size > 0n) || end > LIMIT || end < 0n) {
      throw new Error(`iova books: not an IOVA interval: iova ${String(start)}, size ${String(size)}`);
    }
    const s = Number(start);
    const e = Number(end);
    const exact = e < EXACT || (BigInt(s) === start && BigInt(e) === end);
    this.#root = insertAt(this.#root, new Node(item, start, end, s, e, exact ? 0 : SLACK));
    this.#size++;
    this.#version++;
  }

  /** Removes this very object; false if it is not live. */
  remove(item: T): boolean {
    const node = this.#find(item);
    if (node === null) return false;
    this.#root = removeAt(this.#root!, node);
    node.left = node.right = null;
    this.#size--;
    this.#version++;
    return true;
  }

  /** Whether this very object is live. */
  has(item: T): boolean {
    return this.#find(item) !== null;
  }

  /** A live interval intersecting [iova, iova + size), if any. */
  firstOverlap(iova: bigint, size: bigint): T | undefined {
    if (!(size > 0n)) return undefined;
    const x = firstEndingAbove(this.#root, iova, Number(iova));
    if (x === null) return undefined;
    const end = iova + size;
    const en = Number(end);
    return x.s < en || (x.s === en && x.start < end) ? x.item : undefined;
  }

  /** The live intervals intersecting [iova, iova + size), in IOVA order. */
  inRange(iova: bigint, size: bigint): T[] {
    const out: T[] = [];
    if (!(size > 0n)) return out;
    const end = iova + size;
    collect(this.#root, iova, Number(iova), end, Number(end), out);
    return out;
  }

  /**
   * The lowest start, a multiple of `alignment`, of `size` free bytes inside
   * one window (windows tried in the order given; end inclusive).
   *
   * Per window: O(log n) to reach the first gap at least `size` long, and
   * another O(log n) for every such gap that still cannot hold `size` bytes
   * once its start is aligned up. When every interval starts and ends on a
   * multiple of `alignment` (an IOMMU's mappings, searched at its page size)
   * no gap fails that way: O(log n). A larger alignment can make it fail on
   * gaps shorter than size + alignment - 1; each is visited once.
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
    const stack: Node<T>[] = [];
    let version = this.#version;
    for (let x = this.#root; x !== null; x = x.left) stack.push(x);
    for (;;) {
      const x = stack.pop();
      if (x === undefined) return;
      for (let y = x.right; y !== null; y = y.left) stack.push(y);
      yield x.item;
      if (version !== this.#version) {
        version = this.#version;
        stack.length = 0;
        // The path to the first interval after x, nearest on top.
        for (let y = this.#root; y !== null; ) {
          if (less(x, y)) {
            stack.push(y);
            y = y.left;
          } else {
            y = y.right;
          }
        }
      }
    }
  }

  /** @internal For tests: throws unless the tree is ordered, AVL-balanced and every subtree summary is right. */
  audit(): void {
    let count = 0;
    const walk = (x: Node<T> | null): void => {
      if (x === null) return;
      walk(x.left);
      walk(x.right);
      count++;
      const { left: l, right: r } = x;
      const want = { height: x.height, maxGap: x.maxGap, first: x.first, last: x.last };
      update(x);
      const bad =
        (l !== null && !(l.last.end <= x.start && less(l.last, x))) ||
        (r !== null && !(x.end <= r.first.start && less(x, r.first))) ||
        Math.abs(height(l) - height(r)) > 1 ||
        want.height !== x.height ||
        want.maxGap !== x.maxGap ||
        want.first !== x.first ||
        want.last !== x.last;
      if (bad) throw new Error(`iova books: broken at [0x${x.start.toString(16)}, 0x${x.end.toString(16)})`);
    };
    walk(this.#root);
    if (count !== this.#size) throw new Error(`iova books: ${count} nodes, size says ${this.#size}`);
  }

  clear(): void {
    this.#root = null;
    this.#size = 0;
    this.#version++;
  }

  #find(item: T): Node<T> | null {
    const start = item.iova;
    if (typeof start !== 'bigint') return null;
    const s = Number(start);
    let x = this.#root;
    while (x !== null) {
      if (s < x.s || (s === x.s && start < x.start)) x = x.left;
      else if (s > x.s || start > x.start) x = x.right;
      else return x.item === item ? x : null;
    }
    return null;
  }

  /** findFree inside [lo, top), top - lo >= size. */
  #findIn(lo: bigint, top: bigint, size: bigint, alignment: bigint, need: number): bigint | undefined {
    const root = this.#root;
    const f = firstEndingAbove(root, lo, Number(lo));
    if (f === null) return fit(lo, top, size, alignment);
    if (f.start > lo) {
      const at = fit(lo, f.start < top ? f.start : top, size, alignment);
      if (at !== undefined) return at;
    }
    if (f.end >= top) return undefined;
    let from = f;
    for (;;) {
      const v = lowestGapFrom(root, from, need);
      if (v === null) {
        const last = root!.last;
        return last.end < top ? fit(last.end, top, size, alignment) : undefined;
      }
      const u = gapLeft as Node<T>;
      if (u.end >= top) return undefined;
      const at = fit(u.end, v.start < top ? v.start : top, size, alignment);
      if (at !== undefined || v.start >= top) return at;
      from = v;
    }
  }
}

/** Pushes the items of x intersecting [lo, hi) in order: O(height + found). */
function collect<T>(x: Node<T> | null, lo: bigint, lon: number, hi: bigint, hin: number, out: T[]): void {
  while (x !== null) {
    if (!(x.e > lon || (x.e === lon && x.end > lo))) {
      x = x.right;
    } else if (!(x.s < hin || (x.s === hin && x.start < hi))) {
      x = x.left;
    } else {
      collect(x.left, lo, lon, hi, hin, out);
      out.push(x.item);
      x = x.right;
    }
  }
}
