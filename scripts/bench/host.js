#!/usr/bin/env node
// The cases that need no VFIO, on the host itself (run.js starts it):
//
//   node scripts/bench/host.js [--quick] [--rounds N] [--out FILE]
//
// The real CPU's view of the costs the guest's emulated one exaggerates:
// a cheap ioctl (KVM_CHECK_EXTENSION), lib/'s own bookkeeping per map (lib/
// over a do-nothing backend), and the interrupt path's user-space half.
'use strict';

const fs = require('node:fs');
const { runRef, loadCalib } = require('./lib/ref');
const js = require('./lib/js-cases');
const { session, runMain } = require('./lib/session');

const s = session('host');

runMain(async () => {
  const consts = runRef('consts');
  const iters = s.quick ? 20000 : 100000;
  await s.calibration(iters);

  if (fs.existsSync('/dev/kvm')) {
    const variants = ['lib', 'addon', ...(js.ioctlPackage() ? ['ioctl'] : []), ...(loadCalib() ? ['napi'] : [])];
    await s.run({
      id: 'host.ioctl.kvm-check-extension',
      title: 'KVM_CHECK_EXTENSION round trip on /dev/kvm',
      params: { iters, capability: 'KVM_CAP_DEVICE_CTRL' },
      targets: { op: 1.3 },
      informative: ['ioctl', 'napi'],
      sides: [
        { name: 'c', run: () => runRef('kvm-ext', { iters }).metrics },
        ...variants.map((v) => ({ name: v, run: () => js.kvmExt(v, { iters, consts }) })),
      ],
    });
  } else {
    s.log('bench: no /dev/kvm on this host: no KVM_CHECK_EXTENSION case');
  }

  const counts = s.quick ? [64, 256] : [256, 1024, 4096];
  await s.run({
    id: 'host.lib.map-bookkeeping',
    title: "lib/'s own work per 4 KiB map + unmap, kernel replaced by a no-op (null-kernel.js)",
    params: { counts: counts.join(',') },
    show: [],
    notes: ['JS only: the loop of the guest map cases with lib/ over a backend whose calls return at once; N chunks = N live mappings at the end of the map phase'],
    sides: [
      {
        name: 'calib',
        run: () => Object.fromEntries(counts.map((count) => [`map + unmap, ${count} chunks`, js.libMapOverhead('lib', { count }).pair])),
      },
    ],
  });

  const count = s.quick ? 200 : 2000;
  await s.run({
    id: 'host.irq.eventfd',
    title: 'eventfd signalled → handler: the user-space half of the interrupt path',
    params: { count },
    targets: { latency: 2 },
    informative: ['addon', 'callback', 'wait'],
    notes: [
      'C: write(eventfd) then epoll_wait; addon: the uv_poll watch Irq is built on, bare callback; callback / wait: an Irq of lib/ over null-kernel.js whose MSI eventfd is signalled by the loop (as the kernel would), an "interrupt" listener / await irq.wait()',
    ],
    sides: [
      { name: 'c', run: () => runRef('eventfd', { count }).metrics },
      { name: 'addon', run: () => js.eventfd('addon', { count }) },
      { name: 'callback', run: () => js.libIrq('callback', { count }) },
      { name: 'wait', run: () => js.libIrq('wait', { count }) },
    ],
  });

  s.finish();
});
