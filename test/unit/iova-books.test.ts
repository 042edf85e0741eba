// The mapping books: every answer equals that of a plain sorted array (the
// books lib/iommu.ts kept before), over random operations that cross the
// places where doubles stop being exact (2^53, odd IOVAs near 2^64) and up
// to the last byte below 2^64.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IovaBooks, type IovaInterval, type IovaWindow } from '../../lib/iova-books';

const TOP = 1n << 64n;
const PAGE = 0x1000n;

class Item implements IovaInterval {
  constructor(
    readonly iova: bigint,
    readonly size: bigint,
  ) {}
  get end(): bigint {
    return this.iova + this.size;
  }
}

const item = (iova: bigint, size: bigint) => new Item(iova, size);
const win = (start: bigint, end: bigint): IovaWindow => ({ start, end });

function alignUp(v: bigint, a: bigint): bigint {
  return ((v + a - 1n) / a) * a;
}

/** The reference: a sorted array, every query a linear scan. */
class Model {
  readonly items: Item[] = [];

  overlaps(iova: bigint, size: bigint): Item[] {
    return this.items.filter((m) => m.iova < iova + size && iova < m.end);
  }
  insert(m: Item): void {
    this.items.push(m);
    this.items.sort((a, b) => (a.iova < b.iova ? -1 : 1));
  }
  remove(m: Item): boolean {
    const i = this.items.indexOf(m);
    if (i >= 0) this.items.splice(i, 1);
    return i >= 0;
  }
  findFree(size: bigint, alignment: bigint, windows: IovaWindow[]): bigint | undefined {
    for (const { start, end } of windows) {
      let at = alignUp(start, alignment);
      for (const m of this.items) {
        if (m.end <= at) continue;
        if (m.iova >= at + size) break;
        at = alignUp(m.end, alignment);
      }
      if (at + size - 1n <= end) return at;
    }
    return undefined;
  }
}

// Places where the arithmetic changes: small, 2^32, around 2^53 (doubles stop
// holding every integer), the sPAPR 64-bit window at 2^59, the top of 2^64.
const zones = [0n, 1n << 32n, (1n << 53n) - 0x80000n, 1n << 59n, TOP - 0x100000n];
const zone = fc.constantFrom(...zones);
// 0x7ff and 1 make IOVAs above 2^53 that no double holds.
const unit = fc.constantFrom(1n, 0x7ffn, 0x800n, PAGE);
const alignment = fc.constantFrom(1n, 2n, 3n, 0x800n, PAGE, 0x3000n, 0x10000n, 1n << 40n);

const span = fc.record({ zone, unit, off: fc.integer({ min: 0, max: 255 }), len: fc.integer({ min: 1, max: 24 }) }).map(({ zone, unit, off, len }) => {
  const iova = zone + BigInt(off) * unit;
  let size = BigInt(len) * unit;
  if (iova + size > TOP) size = TOP - iova;
  return { iova, size };
});

const windowArb = fc.record({ zone, unit, off: fc.integer({ min: 0, max: 64 }), len: fc.bigInt({ min: 1n, max: 0x200000n }) }).map(({ zone, unit, off, len }) => {
  const start = zone + BigInt(off) * unit;
  const end = start + len - 1n;
  return win(start, end < TOP ? end : TOP - 1n);
});

type Op =
  | { op: 'insert'; iova: bigint; size: bigint }
  | { op: 'remove'; pick: number; stranger: boolean }
  | { op: 'overlap'; iova: bigint; size: bigint }
  | { op: 'findFree'; size: bigint; alignment: bigint; windows: IovaWindow[] };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: span.map((s) => ({ op: 'insert' as const, ...s })) },
  { weight: 2, arbitrary: fc.record({ pick: fc.nat(), stranger: fc.boolean() }).map((r) => ({ op: 'remove' as const, ...r })) },
  { weight: 2, arbitrary: span.map((s) => ({ op: 'overlap' as const, ...s })) },
  {
    weight: 2,
    arbitrary: fc
      .record({ len: fc.integer({ min: 1, max: 12 }), unit, alignment, windows: fc.array(windowArb, { minLength: 1, maxLength: 3 }) })
      .map(({ len, unit, alignment, windows }) => ({ op: 'findFree' as const, size: BigInt(len) * unit, alignment, windows })),
  },
);

/** Runs ops on both, comparing every answer; returns the books for more checks. */
function run(ops: Op[], order?: number): { books: IovaBooks<Item>; model: Model } {
  const books = new IovaBooks<Item>(order);
  const model = new Model();
  for (const o of ops) {
    switch (o.op) {
      case 'insert': {
        const m = item(o.iova, o.size);
        if (model.overlaps(o.iova, o.size).length > 0) {
          assert.throws(() => books.insert(m), /overlaps/);
        } else {
          books.insert(m);
          model.insert(m);
        }
        break;
      }
      case 'remove': {
        const live = model.items;
        const target = live.length === 0 ? item(0n, 1n) : live[o.pick % live.length];
        // An equal interval that is not the live object is not removed.
        const victim = o.stranger ? item(target.iova, target.size) : target;
        assert.equal(books.has(victim), !o.stranger && live.length > 0);
        assert.equal(books.remove(victim), model.remove(victim));
        assert.equal(books.has(victim), false);
        break;
      }
      case 'overlap': {
        const hits = model.overlaps(o.iova, o.size);
        assert.equal(books.firstOverlap(o.iova, o.size), hits[0]);
        assert.deepEqual(books.inRange(o.iova, o.size), hits);
        break;
      }
      case 'findFree':
        assert.equal(books.findFree(o.size, o.alignment, o.windows), model.findFree(o.size, o.alignment, o.windows), `findFree ${o.size} aligned ${o.alignment}`);
        break;
    }
    assert.equal(books.size, model.items.length);
    if (books.size < 40 || books.size % 16 === 0) books.audit();
  }
  assert.deepEqual([...books], model.items);
  return { books, model };
}

describe('iova books (mapping bookkeeping)', () => {
  // Order 4 (nodes of 4) reaches every split, borrow and merge, and a tree
  // several levels deep, with a few dozen intervals; 32 is the default.
  it('answers every query as a sorted array does, over random operations', () => {
    fc.assert(
      fc.property(fc.constantFrom(4, 5, 32), fc.array(opArb, { minLength: 1, maxLength: 200, size: 'max' }), (order, ops) => void run(ops, order)),
      { numRuns: 300 },
    );
  });

  for (const order of [4, 32]) {
    it(`stays equal to the sorted array over one long run of thousands of operations (order ${order})`, () => {
      const ops = fc.sample(opArb, { numRuns: 6000, seed: 11 });
      const { books } = run(ops, order);
      assert.ok(books.size > 100, `the run should grow a real tree, got ${books.size}`);
    });
  }

  it('grows through every split and shrinks through every merge back to empty', () => {
    const books = new IovaBooks<Item>(4);
    const model = new Model();
    const rand = fc.sample(fc.integer({ min: 0, max: 2 ** 30 }), { numRuns: 20000, seed: 7 });
    let r = 0;
    const next = () => rand[r++ % rand.length];
    const ms = Array.from({ length: 1500 }, (_, i) => item(BigInt(i) * 3n * PAGE, BigInt(1 + (i % 2)) * PAGE));
    const shuffle = (a: Item[]) => {
      for (let i = a.length - 1; i > 0; i--) {
        const j = next() % (i + 1);
        [a[i], a[j]] = [a[j], a[i]];
      }
      return a;
    };
    let tallest = 0;
    const check = (step: number) => {
      const probe = BigInt(next() % 4600) * PAGE;
      assert.deepEqual(books.inRange(probe, 4n * PAGE), model.overlaps(probe, 4n * PAGE));
      assert.equal(books.findFree(PAGE, PAGE, [win(probe, TOP - 1n)]), model.findFree(PAGE, PAGE, [win(probe, TOP - 1n)]));
      assert.equal(books.findFree(2n * PAGE, 2n * PAGE, [win(probe, TOP - 1n)]), model.findFree(2n * PAGE, 2n * PAGE, [win(probe, TOP - 1n)]));
      if (step % 97 === 0) books.audit();
    };
    shuffle([...ms]).forEach((m, i) => {
      books.insert(m);
      model.insert(m);
      tallest = Math.max(tallest, books.height);
      check(i);
    });
    assert.ok(tallest >= 6, `order 4 with 1500 intervals should be deep, got ${tallest}`);
    assert.deepEqual([...books], ms);
    shuffle([...ms]).forEach((m, i) => {
      assert.equal(books.remove(m), true);
      model.remove(m);
      check(i);
    });
    books.audit();
    assert.equal(books.size, 0);
    assert.equal(books.height, 1);
  });

  describe('edge cases', () => {
    it('empty: nothing live, the whole window is free', () => {
      const b = new IovaBooks<Item>();
      assert.equal(b.size, 0);
      assert.deepEqual([...b], []);
      assert.equal(b.firstOverlap(0n, TOP), undefined);
      assert.deepEqual(b.inRange(0n, TOP), []);
      assert.equal(b.remove(item(0n, 1n)), false);
      assert.equal(b.findFree(PAGE, PAGE, [win(1n, TOP - 1n)]), PAGE);
      assert.equal(b.findFree(TOP, 1n, [win(0n, TOP - 1n)]), 0n, 'all of 2^64 fits in the full window');
    });

    it('one item: found by any range that touches it, skipped by findFree', () => {
      const b = new IovaBooks<Item>();
      const m = item(0x10000n, 0x2000n);
      b.insert(m);
      assert.equal(b.firstOverlap(0x11fffn, 1n), m);
      assert.equal(b.firstOverlap(0x12000n, 1n), undefined);
      assert.equal(b.firstOverlap(0xf000n, 0x1000n), undefined);
      assert.deepEqual(b.inRange(0n, 0x10001n), [m]);
      assert.equal(b.findFree(0x1000n, PAGE, [win(0x10000n, 0x20000n)]), 0x12000n);
      assert.equal(b.findFree(0x10000n, PAGE, [win(0n, 0x1ffffn)]), 0n);
      assert.equal(b.findFree(0x10001n, PAGE, [win(0n, 0x1ffffn)]), undefined);
    });

    it('adjacent items do not overlap; a range ending where one starts misses it', () => {
      const b = new IovaBooks<Item>();
      const a = item(0x1000n, 0x1000n);
      const c = item(0x2000n, 0x1000n);
      b.insert(c);
      b.insert(a);
      assert.deepEqual([...b], [a, c]);
      assert.deepEqual(b.inRange(0x1fffn, 2n), [a, c]);
      assert.deepEqual(b.inRange(0x2000n, 0x1000n), [c]);
      assert.equal(b.findFree(1n, 1n, [win(0x1000n, 0x2fffn)]), undefined);
      assert.equal(b.findFree(1n, 1n, [win(0x1000n, 0x3000n)]), 0x3000n);
    });

    it('an overlapping insert throws and changes nothing', () => {
      const b = new IovaBooks<Item>();
      const a = item(0x1000n, 0x1000n);
      b.insert(a);
      for (const bad of [item(0x1000n, 1n), item(0x1fffn, 1n), item(0n, 0x1001n), item(0n, TOP)]) {
        assert.throws(() => b.insert(bad), /overlaps/);
      }
      assert.throws(() => b.insert(item(0n, 0n)), /not an IOVA interval/);
      assert.throws(() => b.insert(item(TOP - 1n, 2n)), /not an IOVA interval/);
      assert.deepEqual([...b], [a]);
    });

    it('an item may end exactly at 2^64', () => {
      const b = new IovaBooks<Item>();
      const last = item(TOP - PAGE, PAGE);
      const odd = item(TOP - PAGE - 3n, 3n); // no double holds its ends
      b.insert(last);
      b.insert(odd);
      assert.deepEqual([...b], [odd, last]);
      assert.equal(b.firstOverlap(TOP - 1n, 1n), last);
      assert.equal(b.firstOverlap(TOP - PAGE - 1n, 1n), odd);
      assert.equal(b.findFree(1n, 1n, [win(TOP - PAGE - 3n, TOP - 1n)]), undefined);
      assert.equal(b.findFree(1n, 1n, [win(TOP - 2n * PAGE, TOP - 1n)]), TOP - 2n * PAGE);
      assert.equal(b.findFree(PAGE, PAGE, [win(TOP - 2n * PAGE, TOP - 1n)]), undefined, 'the page below holds the odd item');
      assert.equal(b.remove(last), true);
      assert.equal(b.findFree(PAGE, PAGE, [win(TOP - 2n * PAGE, TOP - 1n)]), TOP - PAGE);
    });

    it('a window end is inclusive', () => {
      const b = new IovaBooks<Item>();
      assert.equal(b.findFree(PAGE, PAGE, [win(0n, 0xfffn)]), 0n);
      assert.equal(b.findFree(PAGE, PAGE, [win(0n, 0xffen)]), undefined);
      assert.equal(b.findFree(PAGE, PAGE, [win(TOP - PAGE, TOP - 1n)]), TOP - PAGE);
    });

    it('windows are tried in the order given, an empty window skipped', () => {
      const b = new IovaBooks<Item>();
      b.insert(item(0x10000n, 0x1000n));
      assert.equal(b.findFree(PAGE, PAGE, [win(0x10n, 0x5n), win(0x10000n, 0x11fffn), win(0n, 0xffffn)]), 0x11000n);
    });

    it('skips gaps that are long enough but not once their start is aligned', () => {
      const b = new IovaBooks<Item>();
      // Gaps of 0x3000 starting 0x1000 past a 0x4000 boundary: 0x3000 bytes fit, 0x4000-aligned they do not.
      for (let i = 0n; i < 100n; i++) b.insert(item(i * 0x4000n, 0x1000n));
      assert.equal(b.findFree(0x3000n, 0x1000n, [win(0n, TOP - 1n)]), 0x1000n);
      assert.equal(b.findFree(0x3000n, 0x4000n, [win(0n, TOP - 1n)]), 100n * 0x4000n);
      b.remove([...b][50]);
      assert.equal(b.findFree(0x3000n, 0x4000n, [win(0n, TOP - 1n)]), 50n * 0x4000n);
    });

    it('intervals whose doubles are equal stay apart and in order', () => {
      const b = new IovaBooks<Item>();
      const base = TOP - 0x10000n; // ulp 2048 here: these four round to at most two doubles
      const ms = [item(base + 1n, 1n), item(base + 3n, 5n), item(base, 1n), item(base + 2n, 1n)];
      for (const m of ms) b.insert(m);
      assert.deepEqual([...b], [ms[2], ms[0], ms[3], ms[1]]);
      assert.equal(b.findFree(1n, 1n, [win(base, TOP - 1n)]), base + 8n);
      assert.equal(b.findFree(0x800n, 0x800n, [win(base, TOP - 1n)]), base + 0x800n);
      assert.throws(() => b.insert(item(base + 7n, 1n)), /overlaps/);
      assert.equal(b.firstOverlap(base + 7n, 1n), ms[1]);
    });

    it('an iteration sees removals made during it (the way unmapAll walks the books)', () => {
      const b = new IovaBooks<Item>();
      const ms = Array.from({ length: 50 }, (_, i) => item(BigInt(i) * PAGE, PAGE));
      ms.forEach((m) => b.insert(m));
      const seen: Item[] = [];
      for (const m of b) {
        seen.push(m);
        b.remove(m);
        const ahead = ms[ms.indexOf(m) + 2];
        if (ahead && b.has(ahead)) b.remove(ahead); // removed ahead of the walk: never visited
      }
      assert.deepEqual(
        seen,
        ms.filter((_, i) => i % 4 < 2),
      );
      assert.equal(b.size, 0);
    });

    it('clear forgets everything', () => {
      const b = new IovaBooks<Item>();
      const m = item(0n, PAGE);
      b.insert(m);
      b.clear();
      assert.equal(b.size, 0);
      assert.equal(b.has(m), false);
      assert.deepEqual([...b], []);
      b.insert(m);
      assert.deepEqual([...b], [m]);
    });
  });

  it('keeps the rounded-interval flags right through full leaves, splits, borrows and merges', () => {
    const books = new IovaBooks<Item>();
    const model = new Model();
    const base = TOP - 0x100000n;
    // Every third byte: none of these is a double, all share a few doubles.
    const ms = Array.from({ length: 300 }, (_, i) => item(base + BigInt(i) * 3n, BigInt(1 + (i % 2))));
    const order = fc.sample(fc.nat(), { numRuns: 600, seed: 3 });
    const shuffled = ms.map((m, i) => [order[i], m] as const).sort((a, b) => a[0] - b[0]).map(([, m]) => m);
    const check = () => {
      books.audit();
      for (const size of [1n, 2n, 3n]) {
        assert.equal(books.findFree(size, 1n, [win(base, TOP - 1n)]), model.findFree(size, 1n, [win(base, TOP - 1n)]));
      }
    };
    shuffled.forEach((m, i) => {
      books.insert(m);
      model.insert(m);
      if (i % 10 === 0) check();
    });
    assert.deepEqual([...books], ms);
    shuffled.forEach((m, i) => {
      if (i % 3 === 0) return;
      books.remove(m);
      model.remove(m);
      if (i % 10 === 0) check();
    });
    check();
    assert.deepEqual([...books], model.items);
  });

  // Near 2^64 a double is 2 KiB wide: X is one, X - 5 and X + 1023 round to X.
  // Every layout puts the node boundaries somewhere else around X.
  const X = TOP - 0x100000n;
  const layouts = () =>
    Array.from({ length: 12 }, (_, shift) => {
      const b = new IovaBooks<Item>(4);
      for (let i = 0; i < shift; i++) b.insert(item(X - 0x80000n + BigInt(i) * PAGE, 0x800n));
      for (let i = 0; i < 8; i++) b.insert(item(X + BigInt(i) * PAGE, 0x800n));
      return b;
    });

  it('walks long runs of gaps too short once aligned, along leaves and past leaves without gaps', () => {
    for (const order of [4, 32]) {
      const books = new IovaBooks<Item>(order);
      const model = new Model();
      // Runs of 50 one-page intervals packed tight, then 50 with a one-page hole after each.
      let at = 0n;
      for (let i = 0; i < 1000; i++) {
        const m = item(at, PAGE);
        books.insert(m);
        model.insert(m);
        at += Math.floor(i / 50) % 2 ? 2n * PAGE : PAGE;
      }
      const ask = (size: bigint, alignment: bigint, start = 0n) => {
        const w = [win(start, TOP - 1n)];
        assert.equal(books.findFree(size, alignment, w), model.findFree(size, alignment, w), `order ${order}: ${size} at ${alignment} from ${start}`);
      };
      const probes = () => {
        for (const [size, alignment] of [[PAGE, PAGE], [PAGE, 2n * PAGE], [PAGE, 3n * PAGE], [2n * PAGE, PAGE], [0x800n, 0x800n]]) {
          ask(size, alignment);
          ask(size, alignment, 700n * PAGE + 1n);
        }
      };
      probes();
      for (const i of [990, 900, 620, 615, 70, 3]) {
        const m = model.items[i];
        books.remove(m);
        model.remove(m);
        probes();
      }
      books.audit();
    }
  });

  it('a rounded start just below an exact one sorts before it, wherever the node boundaries fall', () => {
    for (const b of layouts()) {
      const k = item(X - 5n, 2n);
      assert.throws(() => b.insert(item(X - 5n, 6n)), /overlaps/);
      b.insert(k);
      b.audit();
      assert.equal(b.has(k), true);
      assert.equal(b.firstOverlap(X - 4n, 1n), k);
      assert.equal(b.firstOverlap(X - 3n, 3n), undefined);
      assert.deepEqual(b.inRange(X - 5n, 6n), [k, b.firstOverlap(X, 1n)]);
      assert.equal(b.findFree(1n, 1n, [win(X - 5n, TOP - 1n)]), X - 3n);
      assert.throws(() => b.insert(item(X - 4n, 1n)), /overlaps/);
      assert.equal(b.remove(k), true);
      b.audit();
    }
  });

  it('a gap that rounding hides (an exact end, a rounded start 1023 bytes on) is still found', () => {
    const end7 = X + 7n * PAGE + 0x800n;
    for (let shift = 0; shift < 12; shift++) {
      // Built in order, so that in some layout the rounded interval opens a leaf.
      const b = new IovaBooks<Item>(4);
      for (let i = 0; i < shift; i++) b.insert(item(X - 0x80000n + BigInt(i) * PAGE, 0x800n));
      for (let i = 0; i < 8; i++) b.insert(item(X + BigInt(i) * PAGE, 0x800n));
      b.insert(item(end7 + 1023n, 0x400n));
      for (let i = 8; i < 12; i++) b.insert(item(X + BigInt(i) * PAGE, 0x800n));
      b.audit();
      assert.equal(b.findFree(1000n, 1n, [win(X + 7n * PAGE, TOP - 1n)]), end7, `layout ${shift}`);
      assert.equal(b.findFree(1024n, 1n, [win(X + 7n * PAGE, TOP - 1n)]), X + 8n * PAGE + 0x800n, 'not in 1023 bytes, nor in the 1 byte after');
    }
  });

  it('a gap that rounding hides is found past a run of leaves without any gap', () => {
    for (let shift = 0; shift < 12; shift++) {
      // Packed tight: no gap anywhere but the hidden 1023 bytes, wherever it falls among the leaves.
      const b = new IovaBooks<Item>(4);
      const base = X - 0x40000n;
      let at = base;
      for (let i = 0; i < 40 + shift; i++, at += 0x800n) b.insert(item(at, 0x800n));
      const hidden = at;
      b.insert(item(at + 1023n, 0x800n - 1023n));
      at += 0x800n;
      for (let i = 0; i < 40; i++, at += 0x800n) b.insert(item(at, 0x800n));
      b.audit();
      assert.equal(b.findFree(1000n, 1n, [win(base, TOP - 1n)]), hidden, `layout ${shift}`);
      assert.equal(b.findFree(1024n, 1n, [win(base, TOP - 1n)]), at);
    }
  });

  it('an interval overlapping a rounded neighbour in the leaf before is refused', () => {
    for (let shift = 0; shift < 12; shift++) {
      const b = new IovaBooks<Item>(4);
      for (let i = 0; i < shift; i++) b.insert(item(X - 0x80000n + BigInt(i) * PAGE, 0x800n));
      b.insert(item(X - 3000n, 2996n)); // ends at X - 4, which rounds to X
      for (let i = 0; i < 8; i++) b.insert(item(X + BigInt(i) * PAGE, 0x800n));
      assert.throws(() => b.insert(item(X - 5n, 2n)), /overlaps/, `layout ${shift}`);
      const k = item(X - 4n, 2n);
      b.insert(k);
      b.audit();
      assert.equal(b.firstOverlap(X - 5n, 2n)!.iova, X - 3000n);
      assert.deepEqual(b.inRange(X - 4n, 5n), [k, b.firstOverlap(X, 1n)]);
    }
  });

  it('the leftmost leaf borrows from a full neighbour whose last interval is rounded', () => {
    // In order: the first leaf splits at 33 into 16 + 17, the second fills to 32
    // (bit 31 of its flags set); emptying the first below 8 makes it borrow.
    const b = new IovaBooks<Item>();
    const ms = Array.from({ length: 48 }, (_, i) => item(X + BigInt(i) * 3n, 1n));
    ms.forEach((m) => b.insert(m));
    ms.slice(0, 9).forEach((m) => b.remove(m));
    b.audit();
    assert.deepEqual([...b], ms.slice(9));
  });

  it('stays shallow when mappings come in IOVA order and leave from the front', () => {
    const b = new IovaBooks<Item>();
    const ms = Array.from({ length: 4096 }, (_, i) => item(BigInt(i) * PAGE, PAGE));
    ms.forEach((m) => b.insert(m));
    assert.equal(b.height, 3, '4096 in order: leaves half full, 256 of them under 16 inner nodes under the root');
    b.audit();
    ms.slice(0, 4000).forEach((m) => b.remove(m));
    assert.ok(b.height <= 2, `96 left: ${b.height} levels`);
    b.audit();
  });

  it('holds the kernel default of 65,535 mappings and still answers exactly', () => {
    const b = new IovaBooks<Item>();
    const ms: Item[] = [];
    // One page every two pages, inserted out of order.
    for (let i = 0; i < 65535; i++) ms.push(item(BigInt((i * 40507) % 65535) * 2n * PAGE, PAGE));
    for (const m of ms) b.insert(m);
    assert.equal(b.size, 65535);
    assert.equal(b.height, 4, 'order 32, 65,535 intervals: 4 levels');
    b.audit();
    const top = 65535n * 2n * PAGE;
    assert.equal(b.findFree(2n * PAGE, PAGE, [win(0n, TOP - 1n)]), top - PAGE);
    assert.equal(b.findFree(PAGE, PAGE, [win(0n, TOP - 1n)]), PAGE);
    const mid = ms.find((m) => m.iova === 30000n * 2n * PAGE)!;
    const next = ms.find((m) => m.iova === 30001n * 2n * PAGE)!;
    b.remove(mid);
    b.remove(next);
    assert.equal(b.findFree(2n * PAGE, PAGE, [win(0n, TOP - 1n)]), 30000n * 2n * PAGE - PAGE);
    assert.equal(b.findFree(4n * PAGE, 4n * PAGE, [win(0n, TOP - 1n)]), 30000n * 2n * PAGE);
    assert.deepEqual(b.inRange(29999n * 2n * PAGE, 7n * PAGE), [ms.find((m) => m.iova === 29999n * 2n * PAGE), ms.find((m) => m.iova === 30002n * 2n * PAGE)]);
    const all = [...b];
    assert.equal(all.length, 65533);
    assert.ok(all.every((m, i) => i === 0 || all[i - 1].iova < m.iova));
  });
});
