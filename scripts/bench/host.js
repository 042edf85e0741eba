#!/usr/bin/env node
// The HOST suite (about a minute; run.js starts it): what needs no VFIO.
//
//   node scripts/bench/host.js [--rounds N] [--quick] [--out FILE]
//
// This host has no /dev/vfio (nor /dev/kvm), so most cases run the library
// over a no-op twin of the addon (setNativeBackend): every kernel call
// returns at once, and what is timed is the library and the arguments it
// builds. Where the twin does make a syscall, it is the real addon's:
// irq.trigger() writes the MSI's real eventfd (as VFIO_DEVICE_SET_IRQS with
// ACTION_TRIGGER would), and a BAR's mmap is a real page of RAM.
'use strict';

const path = require('node:path');
const { root, now, ref, best, suite, startThreadPool, listenerLatency, waitLatency } = require('./common');

const vfio = require(path.join(root, 'dist', 'lib'));
const { native, setNativeBackend } = require(path.join(root, 'dist', 'lib', 'native'));
const { IovaBooks } = require(path.join(root, 'dist', 'lib', 'iova-books'));

const real = native();
const s = suite('host');
const PAGE = 4096;

/** Just enough of the addon's surface for container → group → type1 → device; no books, no checks. */
function noopKernel() {
  const c = real.constants;
  let fds = 1000;
  const fd = () => ({ fd: fds++, close() { this.fd = -1; } });
  const twin = { constants: c, pageSize: real.pageSize, eventfds: [] };
  twin.getMemlockLimit = () => [-1n, -1n];
  twin.createEventFd = () => real.createEventFd();
  twin.allocDmaBuffer = (size, huge) => ({ size, pageSize: huge || real.pageSize, fd: -1, regularFile: false, seals: () => -1, arrayBuffer: () => new ArrayBuffer(0), close() {} });
  twin.openContainer = () => ({
    ...fd(),
    getApiVersion: () => c.VFIO_API_VERSION,
    // No VFIO_UNMAP_ALL: the twin keeps no books to answer one with.
    checkExtension: (ext) => (ext === c.VFIO_UNMAP_ALL ? 0 : 1),
    setIommu() {},
    type1GetInfo: () => ({ flags: 0, iovaPgsizes: 0x40201000n, iovaRanges: [{ start: 0n, end: (1n << 39n) - 1n }], dmaAvail: 65535, migration: null }),
    mapDma() {},
    unmapDma: (_iova, size) => size,
  });
  twin.openGroup = () => ({
    ...fd(),
    getStatus: () => c.VFIO_GROUP_FLAGS_VIABLE,
    setContainer() {},
    unsetContainer() {},
    getDeviceFd: () => ({
      ...fd(),
      getInfo: () => ({ flags: c.VFIO_DEVICE_FLAGS_PCI, numRegions: c.VFIO_PCI_NUM_REGIONS, numIrqs: c.VFIO_PCI_NUM_IRQS }),
      getRegionInfo: (index) => ({ index, flags: c.VFIO_REGION_INFO_FLAG_READ | c.VFIO_REGION_INFO_FLAG_WRITE | c.VFIO_REGION_INFO_FLAG_MMAP, size: BigInt(PAGE), offset: BigInt(index) << 40n, sparseMmap: null, msixMappable: false, type: null }),
      getIrqInfo: (index) => ({ index, flags: c.VFIO_IRQ_INFO_EVENTFD | c.VFIO_IRQ_INFO_NORESIZE, count: 1 }),
      setIrqsEventfds: (_index, _start, eventfds) => void (twin.eventfds = eventfds),
      setIrqsNone: (_index, start, count, action) => {
        if (action === c.VFIO_IRQ_SET_ACTION_TRIGGER) for (let i = start; i < start + count; i++) twin.eventfds[i].signal(1);
      },
      mmap: (_offset, size) => {
        const ram = real.allocDmaBuffer(size, 0);
        return { size, arrayBuffer: () => ram.arrayBuffer(), close: () => ram.close() };
      },
    }),
  });
  return twin;
}

const twin = noopKernel();

function openTwin() {
  const container = vfio.Container.open();
  container.openGroup(0);
  const iommu = container.setIommu();
  return { container, iommu, device: container.groups[0].openDevice('0000:00:00.0') };
}

// Each variant below has its own loop: no call site is shared between two
// variants, so none sees (and is deoptimised by) another's types.

function trigger(msi, iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) msi.trigger();
  return Number(now() - t0) / iters;
}

function signal(eventfd, iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) eventfd.signal(1);
  return Number(now() - t0) / iters;
}

function mapGiven(iommu, buffer, iova, offset, iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) iommu.map(buffer, { iova, offset, size: PAGE }).unmap();
  return Number(now() - t0) / iters;
}

function mapFree(iommu, buffer, offset, iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) iommu.map(buffer, { offset, size: PAGE }).unmap();
  return Number(now() - t0) / iters;
}

function booksPair(books, iova, iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) {
    const m = { iova, size: 4096n };
    if (books.insertFree(m) !== undefined) throw new Error('the hole is taken');
    books.remove(m);
  }
  return Number(now() - t0) / iters;
}

function allocClose(iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) vfio.DmaBuffer.allocate(PAGE).close();
  return Number(now() - t0) / iters;
}

function barRead(bar, iters) {
  let sink = 0;
  const t0 = now();
  for (let i = 0; i < iters; i++) sink += bar.read32((i & 255) << 2);
  const ns = Number(now() - t0) / iters;
  if (sink < 0) throw new Error('unreachable: keeps the loads used');
  return ns;
}

function barWrite(bar, iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) bar.write32((i & 255) << 2, i);
  return Number(now() - t0) / iters;
}

/** A side's run: the fastest of s.batches batches (common.js best()). */
const fastest = (batch) => () => best(batch, s.batches);

/** The smallest power of two of iterations whose batch takes ≥ 2 ms. */
function calibrate(fn) {
  let n = 8;
  while (n < 1 << 20 && fn(n) * n < 2e6) n *= 2;
  return n;
}

/**
 * map + unmap of one 4 KiB page while `live - 1` others are mapped: all
 * packed from IOVA 0 but for a hole in the middle, which both variants map
 * (lowest free IOVA = the hole).
 */
async function mapAtLive(live) {
  const { container, iommu } = openTwin();
  const buffer = vfio.DmaBuffer.allocate(live * PAGE);
  const hole = (live - 1) >> 1;
  const others = [];
  for (let i = 0; i < live; i++) if (i !== hole) others.push(iommu.map(buffer, { iova: BigInt(i * PAGE), offset: i * PAGE, size: PAGE }));
  const iova = BigInt(hole * PAGE);
  const offset = hole * PAGE;
  const probe = iommu.map(buffer, { offset, size: PAGE });
  if (probe.iova !== iova || iommu.mappingCount !== live) throw new Error(`setup: the lowest free IOVA is ${probe.iova}, not the hole ${iova}`);
  probe.unmap();
  const one = live === 1;
  const vs = (id) => (one ? { ns: 500 } : { vs: `host.map.${id}.1`, max: live === 65535 ? 1.5 : undefined });
  const given = calibrate((n) => mapGiven(iommu, buffer, iova, offset, n));
  await s.run({
    id: `host.map.given.${live}`,
    title: `map + unmap 4 KiB, iova given, ${live.toLocaleString('en')} live (no-op kernel)`,
    lib: fastest(() => mapGiven(iommu, buffer, iova, offset, given)),
    target: vs('given'),
  });
  const free = calibrate((n) => mapFree(iommu, buffer, offset, n));
  await s.run({
    id: `host.map.free.${live}`,
    title: `map + unmap 4 KiB, lowest free iova, ${live.toLocaleString('en')} live (no-op kernel)`,
    lib: fastest(() => mapFree(iommu, buffer, offset, free)),
    target: vs('free'),
  });
  for (let i = others.length - 1; i >= 0; i--) others[i].unmap(); // from the top: each unmap is then O(1)
  container.close();
  buffer.close();
  // What of that the books are: the same layout, IovaBooks alone (no lib/iommu.ts, no mapping objects).
  const books = new IovaBooks();
  for (let i = 0; i < live; i++) if (i !== hole) books.insert({ iova: BigInt(i * PAGE), size: BigInt(PAGE) });
  const pairs = calibrate((n) => booksPair(books, iova, n));
  await s.run({
    id: `host.books.${live}`,
    title: `of which the books alone: insert at the hole + remove, ${live.toLocaleString('en')} live`,
    lib: fastest(() => booksPair(books, iova, pairs)),
    target: one ? undefined : { vs: 'host.books.1' },
  });
}

async function main() {
  await startThreadPool();
  const iters = 2000; // per batch: a few ms
  const c = (name, params) => (n) => ref(name, n, { ...params, batches: s.batches });

  setNativeBackend(twin);
  const { container, device } = openTwin();
  const msi = device.msi;
  msi.enable();
  const [eventfd] = twin.eventfds;
  await s.run({
    id: 'host.syscall',
    title: 'cheap syscall: irq.trigger() → write(2) on the MSI eventfd (C: the write(2))',
    c: c('eventfd-write', { iters }),
    lib: fastest(() => trigger(msi, iters)),
    target: { ratio: 1.3 },
  });
  await s.run({
    id: 'host.syscall.addon',
    title: "the same write(2) through the addon's eventfd.signal() alone",
    c: c('eventfd-write', { iters }),
    lib: fastest(() => signal(eventfd, iters)),
  });
  const count = s.quick ? 200 : 2000;
  const raise = () => eventfd.signal(1);
  await s.run({
    id: 'host.irq.listener',
    title: "eventfd signalled → 'interrupt' listener (C: epoll_wait, read)",
    c: c('eventfd-epoll', { count }),
    lib: async () => (await listenerLatency(msi, raise, null, count), listenerLatency(msi, raise, null, count)),
    target: { ratio: 2 },
  });
  await s.run({
    id: 'host.irq.wait',
    title: 'eventfd signalled → `await irq.wait()` returns',
    c: c('eventfd-epoll', { count }),
    lib: async () => (await waitLatency(msi, raise, null, count), waitLatency(msi, raise, null, count)),
    target: { ratio: 2.2 },
  });
  const bar = device.bar(0).mmap();
  const barIters = 200000;
  await s.run({
    id: 'host.bar.read32',
    title: 'BAR-style read32 on a RegionMapping over a page of RAM (C: a volatile load)',
    c: c('ram-read', { iters: barIters }),
    lib: fastest(() => barRead(bar, barIters)),
    target: { overhead: true },
  });
  await s.run({
    id: 'host.bar.write32',
    title: 'BAR-style write32, the same (C: a volatile store)',
    c: c('ram-write', { iters: barIters }),
    lib: fastest(() => barWrite(bar, barIters)),
    target: { overhead: true },
  });
  container.close();

  for (const live of s.quick ? [1, 1000] : [1, 1000, 10000, 65535]) await mapAtLive(live);
  setNativeBackend(real);

  const allocs = 500;
  await s.run({
    id: 'host.dmabuf',
    title: 'DmaBuffer.allocate(4 KiB) + close() (C: mmap, madvise, munmap)',
    c: c('dmabuf', { iters: allocs }),
    lib: fastest(() => allocClose(allocs)),
  });
  s.finish();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
