#!/usr/bin/env node
// The VFIO cases, in one boot of the test guest (run.js starts it):
//
//   scripts/guest/run --topology single -- node scripts/bench/guest.js [--quick] [--rounds N] [--big-rounds N] [--only PREFIX]
//
// --only PREFIX runs just the cases whose id starts with it (run.js boots a
// 2-vCPU guest for the event-loop lag cases alone). A case run on more than
// one vCPU says so in its id and title, beside the 1-vCPU ones.
//
// Needs VFIO_TEST_GROUP / VFIO_TEST_BDF (the edu device, bound to vfio-pci)
// and writes bench-guest.json into VFIO_GUEST_OUT (or --out FILE). Runs as
// root: it reserves the 2 MiB huge pages for the 1 GiB case itself, and
// gives them back before the 4 KiB-page cases, which need that memory.
//
// Memory that both sides map comes from one memfd the harness owns and
// hands to the C reference as its fd 3 (JS: DmaBuffer.fromFd): the same
// pages for both, filled once (fallocate) instead of zeroed per batch, which
// under TCG would cost 5-10 s per GiB.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { runRef, loadCalib } = require('./lib/ref');
const js = require('./lib/js-cases');
const { session, runMain } = require('./lib/session');

const s = session('guest', process.env.VFIO_GUEST_OUT ? path.join(process.env.VFIO_GUEST_OUT, 'bench-guest.json') : null);
const group = Number(process.env.VFIO_TEST_GROUP);
const bdf = process.env.VFIO_TEST_BDF;
if (!bdf || !Number.isInteger(group)) {
  console.error('guest.js needs VFIO_TEST_GROUP and VFIO_TEST_BDF: run it through scripts/guest/run (npm run bench does)');
  process.exit(2);
}

{
  const i = process.argv.indexOf('--only');
  const only = i >= 0 ? process.argv[i + 1] : null;
  const vcpus = os.cpus().length;
  const runOne = s.run;
  s.run = async (def) => {
    if (only && !def.id.startsWith(only)) return null;
    return runOne(vcpus > 1 ? { ...def, id: `${def.id}.smp${vcpus}`, title: `${def.title}, ${vcpus} vCPUs` } : def);
  };
}

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const HUGE = 2 * MiB;
const consts = runRef('consts');

/**
 * A case run by the C reference (`refCase`) and by `jsFn` for each JS
 * variant, with the same parameters. `memory`: a shared memfd (both map it).
 */
function both(def, refCase, jsFn, params, variants, memory = null) {
  const fds = memory ? [memory.fd] : [];
  const cParams = { group, bdf, ...params, ...(memory ? { fd: 3 } : {}) };
  const jsParams = { group, bdf, consts, ...params, ...(memory ? { fd: memory.fd } : {}) };
  return {
    params: memory ? { ...params, memory: memory.what } : params,
    ...def,
    sides: [{ name: 'c', run: () => runRef(refCase, cParams, { fds }).metrics }, ...variants.map((v) => ({ name: v, run: () => jsFn(v, jsParams) }))],
  };
}

/** MAP_DMA + UNMAP_DMA of `count` chunks of `size` bytes, per chunk. */
function mapDef(id, title, params, variants, memory) {
  return both({ id, title, targets: { pair: 1.05 }, show: ['pair', 'map', 'unmap'] }, 'map', js.map, params, variants, memory);
}

/** A memfd both sides map, filled once by ref's fallocate; close() it when done. */
function sharedMemory(size, hugePageSize) {
  const buffer = js.vfio.DmaBuffer.memfd(size, { name: 'bench', hugePageSize });
  const t = runRef('populate', { fd: 3, size }, { fds: [buffer.fd] }).metrics.fallocate[0];
  const what = `memfd, ${hugePageSize ? '2 MiB huge' : '4 KiB'} pages`;
  s.log(`  ${what}, ${size / MiB} MiB, filled in ${(t / 1e9).toFixed(1)} s`);
  return { fd: buffer.fd, what, close: () => buffer.close() };
}

async function withMemory(size, hugePageSize, body) {
  const memory = sharedMemory(size, hugePageSize);
  try {
    await body(memory);
  } finally {
    memory.close();
  }
}

/** Per-GiB cost of each growth step, from the raw map@/unmap@ times. */
function perGiB(metrics) {
  const out = {};
  for (const [k, v] of Object.entries(metrics)) {
    const m = /^map@(\d+)M$/.exec(k);
    if (m) out[`map+unmap per GiB @${m[1]} MiB`] = v.map((t, i) => (t + metrics[`unmap@${m[1]}M`][i]) / (Number(m[1]) / 1024));
  }
  return out;
}

function setHugePages(n) {
  try {
    fs.writeFileSync('/proc/sys/vm/nr_hugepages', String(n));
    return Number(fs.readFileSync('/proc/sys/vm/nr_hugepages', 'utf8'));
  } catch (e) {
    s.log(`bench: cannot set nr_hugepages=${n}: ${e.message}`);
    return 0;
  }
}

/** The kernel's preemption model (PREEMPT_DYNAMIC, through debugfs): read it, or set it; null if unavailable. */
const PREEMPT = '/sys/kernel/debug/sched/preempt';
function preemptMode(set) {
  try {
    if (!fs.existsSync(PREEMPT)) spawnSync('mount', ['-t', 'debugfs', 'debugfs', '/sys/kernel/debug']);
    if (set) fs.writeFileSync(PREEMPT, set);
    return /\((\w+)\)/.exec(fs.readFileSync(PREEMPT, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * Event-loop lag while mapAsync pins `size` bytes, against the C
 * reference's pool thread + 1 ms sleep loop doing the same.
 */
function lagDef(id, title, params, memory, rounds, notes = []) {
  return both(
    {
      id,
      title,
      rounds,
      show: [
        'mapAsync: max timer lag',
        'unmapAsync: max timer lag',
        'map (sync): max timer lag',
        'mapAsync: duration',
        'map (sync): duration',
        'idle: max timer lag',
        'idle: CPU per timer tick',
      ],
      absoluteTargets: { 'mapAsync: max timer lag': 5e6 },
      notes: [
        'JS: a 1 ms setInterval while iommu.mapAsync() pins on the libuv pool; C: a 1 ms nanosleep loop while a pool thread, woken through a condition variable as libuv does, does the MAP_DMA. Lag = longest gap between two wake-ups minus 1 ms, the clock running before the hand-over; the target is judged on the worst JS round.',
        ...notes,
      ],
    },
    'lag',
    js.lag,
    params,
    ['lib'],
    memory,
  );
}

runMain(async () => {
  const calls = [...(js.ioctlPackage() ? ['ioctl'] : []), ...(loadCalib() ? ['napi'] : [])];
  const view = loadCalib() ? ['view'] : [];
  const iters = s.quick ? 2000 : 10000;

  await s.calibration(iters);
  await s.run(
    both(
      {
        id: 'guest.ioctl.group-status',
        title: 'VFIO_GROUP_GET_STATUS round trip',
        targets: { op: 1.3 },
        informative: ['ioctl', 'napi'],
        notes: calls.includes('ioctl') ? [] : ['the npm ioctl package is not installed (scripts/bench/node_modules): no ioctl row'],
      },
      'group-status',
      js.groupStatus,
      { iters },
      ['lib', 'addon', ...calls],
    ),
  );
  for (const mode of ['mmap-read', 'mmap-write', 'pread', 'pwrite']) {
    const mmap = mode.startsWith('mmap');
    await s.run(
      both(
        {
          id: `guest.bar.${mode}`,
          title: `BAR0 32-bit ${mode.endsWith('read') ? 'read' : 'write'} through ${mmap ? 'the mmap' : mode + '(2)'}`,
          targets: { op: 2 },
          informative: ['view'],
          notes: mmap ? ['view: a bare Uint32Array over the BAR (calib.c), Atomics.load / plain store: the floor for lib, which uses the same views plus its checks'] : [],
        },
        'bar',
        js.bar,
        { mode, iters: s.quick ? 2000 : 20000 },
        ['lib', 'addon', ...(mmap ? view : [])],
      ),
    );
  }
  await s.run(
    both(
      {
        id: 'guest.irq.latency',
        title: 'MSI latency: edu raise-interrupt write → eventfd → handler',
        targets: { latency: 2 },
        notes: ['C: epoll_wait on the eventfd; callback: an Irq "interrupt" listener; wait: await irq.wait()'],
      },
      'irq',
      js.irq,
      { count: s.quick ? 50 : 200 },
      ['callback', 'wait'],
    ),
  );
  await s.run(
    both(
      {
        id: 'guest.dma.edu-roundtrip',
        title: 'edu DMA round trip (map, 1 KiB RAM→device→RAM with MSIs, verify, unmap)',
        targets: { roundtrip: 1.2 },
        show: ['roundtrip', 'driver'],
        notes: ['edu completes a DMA from a 100 ms QEMU timer: the round trip is two of those; "driver" is the time minus both waits for the device'],
      },
      'dma',
      js.dma,
      { count: s.quick ? 1 : 3, bytes: 1024 },
      ['lib'],
    ),
  );

  // Many small maps: 4 KiB × N (lib/'s bookkeeping grows with N), 2 MiB × 64.
  const chunks2m = s.quick ? 16 : 64;
  await withMemory(chunks2m * 2 * MiB, 0, async (memory) => {
    for (const count of s.quick ? [64, 256] : [256, 1024]) {
      await s.run(mapDef(`guest.dma.map-4k-x${count}`, `MAP_DMA + UNMAP_DMA, 4 KiB × ${count} (per chunk)`, { size: 4096, count, passes: 3 }, ['lib', 'addon'], memory));
    }
    await s.run(mapDef('guest.dma.map-2m', `MAP_DMA + UNMAP_DMA, 2 MiB × ${chunks2m} (per chunk)`, { size: 2 * MiB, count: chunks2m, passes: 2 }, ['lib', 'addon'], memory));
  });

  // 1 GiB in 2 MiB pages, while the memory for them is still in one piece.
  const bigSize = s.quick ? 256 * MiB : GiB;
  const big = `${bigSize / MiB} MiB`;
  const wantPages = bigSize / HUGE + 8;
  const gotPages = setHugePages(wantPages);
  const hugePages = { requested: wantPages, reserved: gotPages, used: gotPages >= bigSize / HUGE };
  s.log(`bench: ${gotPages} of ${wantPages} huge pages of 2 MiB reserved`);
  if (hugePages.used) {
    await withMemory(bigSize, HUGE, async (memory) => {
      await s.run(mapDef('guest.dma.map-1g-huge', `MAP_DMA + UNMAP_DMA of ${big} in 2 MiB pages`, { size: bigSize, count: 1, passes: 2 }, ['lib'], memory));
      await s.run(lagDef('guest.lag.map-1g-huge', `event-loop lag while mapAsync pins ${big} (2 MiB pages)`, { size: bigSize }, memory, s.bigRounds));
    });
  }
  setHugePages(0);

  // 1 GiB in 4 KiB pages: the same map, the growth from 64 MiB, the lag.
  const preempt = { default: preemptMode() };
  await withMemory(bigSize, 0, async (memory) => {
    const sizes = s.quick ? '64,128,256' : '64,128,256,512,1024';
    await s.run(mapDef('guest.dma.map-1g-4k', `MAP_DMA + UNMAP_DMA of ${big} in 4 KiB pages`, { size: bigSize, count: 1, passes: 2 }, ['lib'], memory));
    await s.run(
      both(
        {
          id: 'guest.dma.growth',
          title: 'MAP_DMA + UNMAP_DMA cost per GiB, 64 MiB → 1 GiB (4 KiB pages)',
          derive: perGiB,
          targets: Object.fromEntries(sizes.split(',').map((m) => [`map+unmap per GiB @${m} MiB`, 1.05])),
        },
        'growth',
        js.growth,
        { sizes },
        ['lib'],
        memory,
      ),
    );
    const lag4k = (id, title, rounds, notes) => lagDef(id, title, { size: bigSize }, memory, rounds, notes);
    await s.run(lag4k('guest.lag.map-1g-4k', `event-loop lag while mapAsync pins ${big} (4 KiB pages)`, s.bigRounds, [`kernel preemption: ${preempt.default ?? 'unknown'}`]));
    // The same with the guest kernel preemptible everywhere: how much of the
    // lag is its voluntary preemption on one vCPU.
    if (preempt.default && preempt.default !== 'full' && preemptMode('full') === 'full') {
      preempt.diagnostic = 'full';
      try {
        await s.run(
          lag4k('guest.lag.map-1g-4k-preempt-full', 'the same, guest kernel switched to preempt=full (diagnostic)', Math.min(3, s.bigRounds), [
            'diagnostic: not the default kernel configuration; shows how much of the lag is the guest kernel not preempting the pinning thread',
          ]),
        );
      } finally {
        preemptMode(preempt.default);
      }
    }
  });

  // Fresh anonymous memory: the pin faults in and zeroes every page, the
  // multi-second pin a VM manager sees for new guest RAM.
  if (!s.quick) {
    await s.run(lagDef('guest.lag.map-1g-fresh', `event-loop lag while mapAsync pins ${big} of fresh anonymous memory (the pin faults it in)`, { size: bigSize, fresh: 1 }, null, 1, [
      'memory: anonymous, untouched before the map, fresh for each side and mode',
    ]));
  }

  s.env.preempt = preempt;
  s.finish({ hugePages });
});
