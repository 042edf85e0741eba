#!/usr/bin/env node
// What one call into the addon costs, next to the least a Node-API call can
// cost on this machine, and next to the addon of another revision:
//
//   node scripts/bench/native-calls.js [--rounds 31] [--scale 1] [--old-rev REV | --old ADDON.node]
//                                      [--cache DIR] [--json FILE]
//
// Sides of each case, timed in interleaved rounds (medians, ns per call):
//   floor  a plain Node-API function in C, fn(fd, ...): no object, no checks
//          (built here with cc against Node's headers, into --cache, by
//          default the temp folder)
//   old    the addon of --old-rev (git archive + node-gyp, kept in --cache)
//          or --old, with lib/errors.ts of --old-rev for rethrow
//   new    this tree's build/Release/vfio.node and dist/lib/errors.js
//   proto  the new addon's prototype method (the receiver unwrapped per call)
// Cases need nothing but Linux: an eventfd (read(2) that finds nothing,
// write(2) that succeeds), a call with no syscall, the registry look-up an
// argument takes (DmaBuffer.size runs exactly that check), a failing ioctl
// (a container opened on /dev/null answers ENOTTY) with and without lib/'s
// rethrow(), and the creation of objects. In the test guest
// (VFIO_TEST_GROUP set) a real VFIO_IOMMU_MAP_DMA + UNMAP_DMA pair is added:
//
//   flock /tmp/vfio-guest.lock scripts/guest/run --topology single --out DIR -- \
//     node scripts/bench/native-calls.js --cache DIR --old-rev REV
//
// (build the old addon on the host first, with the same --cache DIR).
'use strict';

const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const Module = require('node:module');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const rounds = Number(opt('--rounds', 31));
const scale = Number(opt('--scale', 1));
const cache = path.resolve(opt('--cache', os.tmpdir()));
const now = process.hrtime.bigint;

// --- the sides ----------------------------------------------------------

const FLOOR_C = String.raw`
#define NAPI_VERSION 8
#include <errno.h>
#include <linux/vfio.h>
#include <node_api.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int32_t int_arg(napi_env env, napi_callback_info info, size_t i) {
	size_t argc = 2;
	napi_value argv[2];
	int32_t v = -1;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (i < argc) napi_get_value_int32(env, argv[i], &v);
	return v;
}

static napi_value number(napi_env env, double v) {
	napi_value out;
	napi_create_double(env, v, &out);
	return out;
}

static napi_value noop(napi_env env, napi_callback_info info) {
	(void)int_arg(env, info, 0);
	return NULL;
}

static napi_value read_counter(napi_env env, napi_callback_info info) {
	uint64_t count = 0;
	if (read(int_arg(env, info, 0), &count, sizeof count) < 0) {
		if (errno == EAGAIN) return number(env, 0);
		napi_throw_error(env, NULL, "read");
		return NULL;
	}
	return number(env, (double)count);
}

static napi_value signal_counter(napi_env env, napi_callback_info info) {
	uint64_t value = (uint64_t)int_arg(env, info, 1);
	if (write(int_arg(env, info, 0), &value, sizeof value) < 0) napi_throw_error(env, NULL, "write");
	return NULL;
}

static void *page;

static napi_value map_dma(napi_env env, napi_callback_info info) {
	struct vfio_iommu_type1_dma_map map = {.argsz = sizeof map, .flags = 3, .size = 4096};
	if (page == NULL) page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map.vaddr = (uintptr_t)page;
	map.iova = (uint64_t)int_arg(env, info, 1);
	if (ioctl(int_arg(env, info, 0), VFIO_IOMMU_MAP_DMA, &map) < 0) napi_throw_error(env, NULL, "MAP_DMA");
	return NULL;
}

static napi_value unmap_dma(napi_env env, napi_callback_info info) {
	struct vfio_iommu_type1_dma_unmap unmap = {.argsz = sizeof unmap, .size = 4096};
	unmap.iova = (uint64_t)int_arg(env, info, 1);
	if (ioctl(int_arg(env, info, 0), VFIO_IOMMU_UNMAP_DMA, &unmap) < 0) napi_throw_error(env, NULL, "UNMAP_DMA");
	return number(env, (double)unmap.size);
}

static napi_value init(napi_env env, napi_value exports) {
	napi_property_descriptor props[] = {
		{"noop", NULL, noop, NULL, NULL, NULL, napi_default, NULL},
		{"read", NULL, read_counter, NULL, NULL, NULL, napi_default, NULL},
		{"signal", NULL, signal_counter, NULL, NULL, NULL, napi_default, NULL},
		{"mapDma", NULL, map_dma, NULL, NULL, NULL, napi_default, NULL},
		{"unmapDma", NULL, unmap_dma, NULL, NULL, NULL, napi_default, NULL},
	};
	napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
`;

function nodeHeaders() {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
    path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ];
  const found = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
  if (!found) throw new Error(`no node_api.h in ${candidates.join(' or ')}`);
  return found;
}

function buildFloor() {
  const hash = crypto.createHash('sha1').update(FLOOR_C).update(process.versions.node).digest('hex').slice(0, 12);
  const dir = path.join(cache, `vfio-bench-floor-${hash}`);
  const binary = path.join(dir, 'floor.node');
  if (!fs.existsSync(binary)) {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'floor.c'), FLOOR_C);
    const cc = process.env.CC || 'cc';
    const r = spawnSync(cc, ['-O2', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=floor', '-I', nodeHeaders(), '-o', binary, path.join(dir, 'floor.c')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`${cc} floor.c failed`);
  }
  return require(binary);
}

/** The addon and lib/errors.ts of another revision, built once into the temp folder. */
function buildOld(rev) {
  const sha = spawnSync('git', ['-C', root, 'rev-parse', '--short=12', rev], { encoding: 'utf8' }).stdout.trim();
  if (!sha) throw new Error(`--old-rev ${rev}: no such revision`);
  const dir = path.join(cache, `vfio-bench-old-${sha}`);
  const binary = path.join(dir, 'build', 'Release', 'vfio.node');
  if (!fs.existsSync(binary)) {
    console.error(`bench: building the addon of ${rev} (${sha}) in ${dir}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const archive = spawnSync('git', ['-C', root, 'archive', sha, 'native', 'binding.gyp', 'package.json'], { maxBuffer: 1 << 28 });
    if (archive.status !== 0) throw new Error('git archive failed');
    const untar = spawnSync('tar', ['-x', '-C', dir], { input: archive.stdout });
    if (untar.status !== 0) throw new Error('tar failed');
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    const gyp = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    // The headers of the running node (npm passes its nodedir setting the same way).
    const nodedir = process.env.npm_config_nodedir || path.resolve(nodeHeaders(), '..', '..');
    const r = spawnSync(process.execPath, [gyp, 'rebuild', '-j', '2', `--nodedir=${nodedir}`], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`node-gyp rebuild of ${sha} failed`);
  }
  const errorsTs = spawnSync('git', ['-C', root, 'show', `${sha}:lib/errors.ts`], { encoding: 'utf8' }).stdout;
  return { addon: require(binary), errors: errorsTs ? compileTs(errorsTs, path.join(dir, 'errors.js')) : null, label: `${rev} (${sha})` };
}

function compileTs(source, filename) {
  const ts = require(path.join(root, 'node_modules', 'typescript'));
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
  const m = new Module(filename, module);
  m.filename = filename;
  m.paths = Module._nodeModulePaths(root);
  m._compile(js, filename);
  return m.exports;
}

const floor = buildFloor();
const fresh = {
  addon: require(path.join(root, 'build', 'Release', 'vfio.node')),
  errors: require(path.join(root, 'dist', 'lib', 'errors.js')),
  label: 'this tree',
};
let old = null;
if (opt('--old-rev')) old = buildOld(opt('--old-rev'));
else if (opt('--old')) old = { addon: require(path.resolve(opt('--old'))), errors: null, label: opt('--old') };

// --- timing ---------------------------------------------------------------

/** ns per call of `iters` calls of `call` (the sink keeps the calls from being optimised away). */
function timed(iters, call) {
  let sink = 0;
  const t0 = now();
  for (let i = 0; i < iters; i++) sink += call(i) ? 1 : 0;
  const ns = Number(now() - t0) / iters;
  return sink < 0 ? NaN : ns;
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function quartiles(values) {
  const s = [...values].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.round((s.length - 1) * q))];
  return [at(0.25), at(0.75)];
}

/**
 * One case: sides are { name, setup() → { call, done? } }, run in turn in
 * every round (setup and done untimed), `iters` calls each.
 */
const results = [];
function run(title, iters, sides, note) {
  iters = Math.max(1, Math.round(iters * scale));
  const live = sides;
  const times = new Map(live.map((s) => [s.name, []]));
  for (let r = -1; r < rounds; r++) {
    for (const side of live) {
      const { call, done } = side.setup();
      try {
        const ns = timed(iters, call);
        if (r >= 0) times.get(side.name).push(ns);
      } finally {
        done?.();
      }
    }
  }
  const row = { title, iters, note, sides: live.map((s) => ({ name: s.name, median: median(times.get(s.name)), iqr: quartiles(times.get(s.name)) })) };
  results.push(row);
  print(row);
}

function print(row) {
  console.log(`\n${row.title}  (${row.iters} calls × ${rounds} rounds)`);
  if (row.note) console.log(`  ${row.note}`);
  const base = row.sides.find((s) => s.name === 'floor');
  for (const s of row.sides) {
    const delta = base && s !== base ? `  (${s.median - base.median >= 0 ? '+' : ''}${(s.median - base.median).toFixed(0)} over floor)` : '';
    console.log(`  ${s.name.padEnd(7)} ${s.median.toFixed(1).padStart(9)} ns   [${s.iqr[0].toFixed(0)}–${s.iqr[1].toFixed(0)}]${delta}`);
  }
}

const addons = [['old', old], ['new', fresh]].filter(([, a]) => a);
// Objects whose fd a floor side uses: a collected one would close it.
const kept = [];
const keep = (o) => (kept.push(o), o);

// --- cases ----------------------------------------------------------------

console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu?'} ×${os.cpus().length}; load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log(`old: ${old ? old.label : '(none: pass --old-rev REV)'}; new: ${fresh.label}`);

{
  const fd = keep(fresh.addon.createEventFd()).fd;
  const sides = [{ name: 'floor', setup: () => ({ call: () => floor.read(fd) }) }];
  for (const [name, a] of addons) {
    const efd = a.addon.createEventFd();
    sides.push({ name, setup: () => ({ call: () => efd.read() }) });
    if (name === 'new') {
      const read = Object.getPrototypeOf(efd).read;
      sides.push({ name: 'proto', setup: () => ({ call: () => read.call(efd) }) });
    }
  }
  run('EventFd.read(): read(2) of an empty non-blocking eventfd (EAGAIN, returns 0)', 100000, sides);
}

{
  const sides = [];
  const fd = keep(fresh.addon.createEventFd()).fd;
  sides.push({ name: 'floor', setup: () => ({ call: () => floor.signal(fd, 1) }) });
  for (const [name, a] of addons) {
    const efd = a.addon.createEventFd();
    sides.push({ name, setup: () => ({ call: () => efd.signal(1) }) });
  }
  run('EventFd.signal(1): a successful write(2)', 100000, sides);
}

{
  const sides = [{ name: 'floor', setup: () => ({ call: () => floor.noop(3) }) }];
  for (const [name, a] of addons) {
    const efd = a.addon.createEventFd();
    sides.push({ name, setup: () => ({ call: () => efd.unref() }) });
    if (name === 'new') {
      const unref = Object.getPrototypeOf(efd).unref;
      sides.push({ name: 'proto', setup: () => ({ call: () => unref.call(efd) }) });
    }
  }
  run('EventFd.unref(): a method with no syscall (dispatch alone)', 1000000, sides);
}

{
  const sides = [{ name: 'floor', setup: () => ({ call: () => floor.noop(3) }) }];
  for (const [name, a] of addons) {
    const buffer = a.addon.allocDmaBuffer(4096, 0);
    sides.push({ name, setup: () => ({ call: () => buffer.size }) });
  }
  run(
    'DmaBuffer.size: the look-up of an argument object (what mapDma does for its buffer)',
    1000000,
    sides,
    'old: napi_check_object_type_tag + napi_unwrap; new: the object found last, recognised by an identity check',
  );
}

{
  const sides = [{ name: 'floor', setup: () => ({ call: (i) => floor.noop(i & 1) }) }];
  for (const [name, a] of addons) {
    const buffers = [a.addon.allocDmaBuffer(4096, 0), a.addon.allocDmaBuffer(8192, 0)];
    sides.push({ name, setup: () => ({ call: (i) => buffers[i & 1].size }) });
  }
  run(
    'DmaBuffer.size on two buffers in turn: the look-up when the argument is not the one found last',
    1000000,
    sides,
    'new: napi_unwrap + registry entry of the same class + identity check',
  );
}

for (const withLib of [false, true]) {
  const sides = [];
  for (const [name, a] of addons) {
    if (withLib && !a.errors) continue;
    const c = a.addon.openContainer('/dev/null');
    const { rethrow } = a.errors ?? {};
    const call = withLib
      ? () => {
          try {
            try {
              c.getApiVersion();
            } catch (e) {
              rethrow(e, 'querying VFIO container /dev/null');
            }
          } catch (e) {
            return e.code === 'ENOTTY';
          }
        }
      : () => {
          try {
            c.getApiVersion();
          } catch (e) {
            return e.code === 'ENOTTY';
          }
        };
    sides.push({ name, setup: () => ({ call }) });
  }
  run(
    withLib ? "a failing ioctl through lib's rethrow(), caught" : 'a failing ioctl (ENOTTY from /dev/null), native error caught',
    2000,
    sides,
  );
}

{
  const kinds = [
    ['openContainer(/dev/null) + close', (a) => a.openContainer('/dev/null')],
    ['createEventFd + close', (a) => a.createEventFd()],
    ['allocDmaBuffer(4096) + close', (a) => a.allocDmaBuffer(4096, 0)],
  ];
  for (const [title, make] of kinds) {
    const sides = [];
    for (const [name, a] of addons) {
      sides.push({
        name,
        setup: () => ({
          call: () => {
            const o = make(a.addon);
            o.close();
            return o;
          },
        }),
      });
    }
    run(`creation: ${title}`, 2000, sides);
  }
}

// In the test guest: a real map + unmap pair of one 4 KiB page.
const group = process.env.VFIO_TEST_GROUP;
if (group) {
  const setup = (a) => {
    const container = a.openContainer('/dev/vfio/vfio');
    const g = a.openGroup(`/dev/vfio/${group}`);
    g.setContainer(container);
    container.setIommu(a.constants.VFIO_TYPE1v2_IOMMU);
    const buffer = a.allocDmaBuffer(4096, 0);
    const done = () => {
      buffer.close();
      g.unsetContainer();
      g.close();
      container.close();
    };
    return { container, buffer, done };
  };
  const iova = 1 << 20;
  const sides = [
    {
      name: 'floor',
      setup: () => {
        const s = setup(fresh.addon);
        const fd = s.container.fd;
        return { call: () => (floor.mapDma(fd, iova), floor.unmapDma(fd, iova)), done: s.done };
      },
    },
  ];
  for (const [name, a] of addons) {
    sides.push({
      name,
      setup: () => {
        const s = setup(a.addon);
        const io = BigInt(iova);
        return { call: () => (s.container.mapDma(s.buffer, 0, 4096, io, 3), s.container.unmapDma(io, 4096n, 0)), done: s.done };
      },
    });
  }
  run('VFIO_IOMMU_MAP_DMA + UNMAP_DMA of 4 KiB (type1v2, the guest kernel)', 2000, sides);
}

const out = opt('--json');
if (out) fs.writeFileSync(out, JSON.stringify({ node: process.version, rounds, old: old?.label ?? null, results }, null, 2));
