#!/usr/bin/env node
// The mapping books alone (no kernel, no lib/iommu.ts): what one map+unmap
// and one search for a free IOVA cost the bookkeeping at 1 to 65,535 live
// mappings (the kernel's default limit per container), IovaBooks against the
// sorted array lib/iommu.ts kept before.
//
//   npx tsc -p . && node scripts/bench/books.js [--rounds N] [--quick] [--json]
//
// Layout: one 4 KiB mapping every 8 KiB, so every other page is a hole.
//   pair        insert a mapping into a random hole, then remove it
//   findFree    2 pages at page alignment: no hole fits, the answer lies past
//               the last mapping (the case a VM manager placing RAM meets)
//   misaligned  1 page at 2-page alignment: every hole is long enough but
//               none is aligned, so both sides must look at each one (the
//               worst case of IovaBooks.findFree: O(n), as the array)
// Each round times a batch sized to take ~20 ms of CPU; the figure is the
// median of the rounds, in ns per operation.
'use strict';

const path = require('node:path');
const { IovaBooks } = require(path.join(__dirname, '..', '..', 'dist', 'lib', 'iova-books'));
const { SortedBooks } = require('./lib/sorted-books');
const { median } = require('./common');

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const rounds = Number(argv[argv.indexOf('--rounds') + 1]) || (quick ? 3 : 9);
const counts = [1, 1000, 10000, 65535];
const PAGE = 0x1000n;
const WINDOWS = [{ start: 0n, end: (1n << 48n) - 1n }];

class Mapping {
  constructor(iova, size) {
    this.iova = iova;
    this.size = size;
  }
  get end() {
    return this.iova + this.size;
  }
}

/** A seeded generator, so both sides see the same holes. */
function xorshift(seed) {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** n mappings at even pages, inserted in a scrambled order, and 1024 mappings for random odd pages. */
function fill(books, n) {
  const rand = xorshift(n);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  for (const i of order) books.insert(new Mapping(BigInt(i) * 2n * PAGE, PAGE));
  return Array.from({ length: 1024 }, () => new Mapping((BigInt(Math.floor(rand() * n)) * 2n + 1n) * PAGE, PAGE));
}

// CPU time, not wall time: the machines this runs on are shared, and a
// descheduled batch would otherwise count someone else's work.
function cpuNs() {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
}

/** A batch size for `op` that takes ~20 ms of CPU (which also warms it up). */
function calibrate(op) {
  let batch = 1;
  for (;;) {
    const t0 = cpuNs();
    for (let i = 0; i < batch; i++) op(i);
    if (cpuNs() - t0 > 20e6 || batch >= 1 << 22) return batch;
    batch *= 2;
  }
}

function cases(make, n) {
  const books = make();
  const extra = fill(books, n);
  const expect = BigInt(n) * 2n * PAGE - PAGE;
  const found = books.findFree(2n * PAGE, PAGE, WINDOWS);
  if (found !== expect) throw new Error(`findFree at ${n}: 0x${found?.toString(16)}, expected 0x${expect.toString(16)}`);
  return {
    pair: (i) => {
      const m = extra[i & 1023];
      books.insert(m);
      if (!books.remove(m)) throw new Error('remove missed');
    },
    findFree: () => books.findFree(2n * PAGE, PAGE, WINDOWS),
    misaligned: () => books.findFree(PAGE, 2n * PAGE, WINDOWS),
  };
}

// Every case once per round, rounds interleaved, so a stretch of heavy load
// on the machine spreads over all cases instead of landing on one.
const sides = { books: () => new IovaBooks(), array: () => new SortedBooks() };
const runs = [];
for (const n of counts) {
  for (const [side, make] of Object.entries(sides)) {
    for (const [op, fn] of Object.entries(cases(make, n))) runs.push({ n, side, op, fn, ns: [] });
  }
}
for (const r of runs) r.batch = calibrate(r.fn);
for (let round = 0; round < rounds; round++) {
  for (const r of runs) {
    const t0 = cpuNs();
    for (let i = 0; i < r.batch; i++) r.fn(i);
    r.ns.push((cpuNs() - t0) / r.batch);
  }
}
const ops = ['pair', 'findFree', 'misaligned'];
const at = (n, side, op) => median(runs.find((r) => r.n === n && r.side === side && r.op === op).ns);
const rows = counts.map((n) => ({
  n,
  ...Object.fromEntries(ops.flatMap((op) => Object.keys(sides).map((side) => [`${op}.${side}`, at(n, side, op)]))),
}));

if (argv.includes('--json')) {
  console.log(JSON.stringify({ node: process.version, rounds, unit: 'ns per operation', rows }, null, 2));
} else {
  const f = (ns) => (ns >= 10000 ? `${(ns / 1000).toFixed(0)} µs` : ns >= 1000 ? `${(ns / 1000).toFixed(1)} µs` : `${ns.toFixed(0)} ns`);
  const columns = ops.flatMap((op) => Object.keys(sides).map((side) => `${op}.${side}`));
  const line = (cells) => console.log(cells.map((c, i) => String(c).padStart(i === 0 ? 6 : 18)).join(''));
  console.log(`node ${process.version}, CPU time per operation, median of ${rounds} rounds`);
  line(['live', ...columns]);
  for (const row of rows) line([row.n, ...columns.map((c) => f(row[c]))]);
  const first = rows[0];
  const last = rows.at(-1);
  const ratio = (c) => `${c} ${(last[c] / first[c]).toFixed(1)}×`;
  console.log(`at ${last.n} live / at ${first.n}: ${columns.map(ratio).join(', ')}`);
}
