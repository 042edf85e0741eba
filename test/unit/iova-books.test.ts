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
function run(ops: Op[]): { books: IovaBooks<Item>; model: Model } {
  const books = new IovaBooks<Item>();
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
    if (books.size < 200 || books.size % 64 === 0) books.audit();
  }
  assert.deepEqual([...books], model.items);
  return { books, model };
}

describe('iova books (mapping bookkeeping)', () => {
  it('answers every query as a sorted array does, over random operations', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 200, size: "max" }), (ops) => void run(ops)), { numRuns: 300 });
  });

  it('stays equal to the sorted array over one long run of thousands of operations', () => {
    const ops = fc.sample(opArb, { numRuns: 6000, seed: 11 });
    const { books } = run(ops);
    assert.ok(books.size > 100, `the run should grow a real tree, got ${books.size}`);
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

  it('stays balanced when mappings come in IOVA order and leave from the front', () => {
    const b = new IovaBooks<Item>();
    const ms = Array.from({ length: 4096 }, (_, i) => item(BigInt(i) * PAGE, PAGE));
    ms.forEach((m) => b.insert(m));
    assert.ok(b.height <= 13, `4096 in order: AVL bound 13, got ${b.height}`);
    ms.slice(0, 3072).forEach((m) => b.remove(m));
    assert.ok(b.height <= 11, `1024 left: AVL bound 11, got ${b.height}`);
    b.audit();
  });

  it('holds the kernel default of 65,535 mappings and still answers exactly', () => {
    const b = new IovaBooks<Item>();
    const ms: Item[] = [];
    // One page every two pages, inserted out of order.
    for (let i = 0; i < 65535; i++) ms.push(item(BigInt((i * 40507) % 65535) * 2n * PAGE, PAGE));
    for (const m of ms) b.insert(m);
    assert.equal(b.size, 65535);
    assert.ok(b.height <= 23, `AVL height bound 1.44 log2(n + 2) = 23, got ${b.height}`);
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
