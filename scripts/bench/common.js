// What host.js and guest.js share: the C reference, the thread count it
// matches, and the rounds every case runs in.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const out = path.join(__dirname, 'out');
const refBinary = path.join(out, 'ref');
const now = process.hrtime.bigint;

/** This process's threads (main, libuv's pool, V8's workers...): what the C reference is given. */
function threads() {
  return fs.readdirSync('/proc/self/task').length;
}

/** libuv starts its pool on first use; a Node program that does any async I/O has it running. */
function startThreadPool() {
  return fs.promises.stat(__filename);
}

/** Runs `ref CASE threads=N key=value...`; `fds` become the child's fd 3, 4...; returns its ns. */
function ref(name, threadCount, params = {}, fds = []) {
  const argv = [name, `threads=${threadCount}`, ...Object.entries(params).map(([k, v]) => `${k}=${v}`)];
  const r = spawnSync(refBinary, argv, { stdio: ['ignore', 'pipe', 'inherit', ...fds], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ref ${argv.join(' ')} failed (status ${r.status}, signal ${r.signal})`);
  return Number(r.stdout);
}

/**
 * One untimed batch, then the fastest of `batches` (ns per operation), as
 * ref.c does: others share this machine, and a batch that was preempted
 * says nothing about the code.
 */
function best(batch, batches) {
  batch();
  let min = Infinity;
  for (let b = 0; b < batches; b++) min = Math.min(min, batch());
  return min;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * `rounds` rounds of every side (each run returns ns), the order reversed
 * every other round so a drift of the machine hits all sides alike.
 * Returns { side: { median, min, max } }.
 */
async function measure(sides, rounds, log) {
  const names = Object.keys(sides);
  const got = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const n of r % 2 ? [...names].reverse() : names) got[n].push(await sides[n]());
    log?.(`  round ${r + 1}/${rounds}: ${names.map((n) => `${n} ${fmt(got[n][r])}`).join(', ')}`);
  }
  return Object.fromEntries(names.map((n) => [n, { median: median(got[n]), min: Math.min(...got[n]), max: Math.max(...got[n]) }]));
}

/** A suite's run: its cases, each with C sides (`c`: N threads, `c1`: 1 thread) and a `lib` side. */
function suite(where, argv = process.argv.slice(2)) {
  const flag = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
  const quick = argv.includes('--quick');
  const s = {
    rounds: Number(flag('--rounds', quick ? 2 : 5)),
    batches: Number(flag('--batches', quick ? 3 : 10)),
    quick,
    file: flag('--out', null),
    rows: [],
    env: { date: new Date().toISOString(), kernel: os.release(), cpu: os.cpus()[0]?.model ?? '?', cpus: os.cpus().length, node: process.version },
    log: (line) => console.error(line),
    /** One case; `c(threads)` runs the C reference, `lib()` the JS side. */
    async run({ id, title, c, lib, target, rounds = s.rounds }) {
      s.log(`${where}: ${title}`);
      // V8 needs some 100 ms of a loop to settle its tiers; C needs nothing.
      for (const t0 = Date.now(); Date.now() - t0 < 300; ) await lib();
      const n = threads();
      const sides = c ? { c: () => c(n), c1: () => c(1), lib } : { lib };
      const row = { id, title, threads: n, target, ...(await measure(sides, rounds, s.log)) };
      s.rows.push(row);
      return row;
    },
    finish(extra = {}) {
      const result = { where, ...s.env, ...extra, rounds: s.rounds, batches: s.batches, rows: s.rows };
      const text = JSON.stringify(result, null, 1) + '\n';
      if (s.file) fs.writeFileSync(s.file, text);
      else process.stdout.write(text);
    },
  };
  return s;
}

/**
 * Interrupt latency, in two variants with a loop each: `raise()` makes one
 * (and `ack()`, untimed, lets the device raise the next); median ns until an
 * 'interrupt' listener runs, or until `await irq.wait()` returns.
 */
async function listenerLatency(irq, raise, ack, count) {
  let arrived = null;
  const listener = () => arrived(now());
  irq.on('interrupt', listener);
  const ns = [];
  for (let i = 0; i < count; i++) {
    const p = new Promise((resolve) => (arrived = resolve));
    const t0 = now();
    raise();
    ns.push(Number((await p) - t0));
    ack?.();
  }
  irq.off('interrupt', listener);
  return median(ns);
}

async function waitLatency(irq, raise, ack, count) {
  const ns = [];
  for (let i = 0; i < count; i++) {
    const t0 = now();
    raise();
    await irq.wait(0);
    ns.push(Number(now() - t0));
    ack?.();
  }
  return median(ns);
}

/** 1234 → '1.23 µs'. */
function fmt(ns) {
  if (!Number.isFinite(ns)) return '–';
  if (ns >= 1e9) return `${(ns / 1e9).toPrecision(3)} s`;
  if (ns >= 1e6) return `${(ns / 1e6).toPrecision(3)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toPrecision(3)} µs`;
  return `${ns.toPrecision(3)} ns`;
}

module.exports = { root, out, refBinary, now, threads, startThreadPool, ref, best, median, measure, suite, listenerLatency, waitLatency, fmt };
