#!/usr/bin/env node
// The GUEST suite: the cases that need a real VFIO kernel and the edu
// device, in one boot of the x86_64 test guest (run.js starts it, under
// flock /tmp/vfio-guest.lock):
//
//   scripts/guest/run --topology single --out DIR -- node scripts/bench/guest.js [--rounds N] [--quick]
//
// Writes bench-guest.json into VFIO_GUEST_OUT. The group is exclusive, so
// every side of every case opens and closes its own container. Memory that
// both sides map is one memfd, handed to the C reference as its fd 3 and
// filled once (fallocate): zeroing a GiB per run would cost seconds under TCG.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { root, now, ref, best, suite, startThreadPool, median, listenerLatency, waitLatency } = require('./common');

const vfio = require(path.join(root, 'dist', 'lib'));
// The addon's own surface, for the rows that take lib/ out to see what is left.
const { native } = require(path.join(root, 'dist', 'lib', 'native'));

const group = Number(process.env.VFIO_TEST_GROUP);
const bdf = process.env.VFIO_TEST_BDF;
if (!bdf || !Number.isInteger(group)) {
  console.error('guest.js needs VFIO_TEST_GROUP and VFIO_TEST_BDF: run it through scripts/guest/run (npm run bench does)');
  process.exit(2);
}
const s = suite('guest', [...process.argv.slice(2), '--out', path.join(process.env.VFIO_GUEST_OUT ?? '.', 'bench-guest.json')]);
const MiB = 2 ** 20;
const GiB = 2 ** 30;
// edu registers (QEMU docs/specs/edu.rst)
const EDU = { IRQ_STATUS: 0x24, IRQ_RAISE: 0x60, IRQ_ACK: 0x64, DMA_SRC: 0x80, DMA_DST: 0x88, DMA_COUNT: 0x90, DMA_CMD: 0x98, BUFFER: 0x40000 };
const CMD = { START: 1, TO_RAM: 2, IRQ: 4 };

function openIommu() {
  const container = vfio.Container.open();
  const g = container.openGroup(group);
  return { container, group: g, iommu: container.setIommu() };
}

/** edu with bus mastering on, BAR0 mmapped, MSI enabled. */
function openEdu() {
  const d = openIommu();
  const device = d.group.openDevice(bdf);
  device.setBusMaster(true);
  const mmio = device.bar(0).mmap();
  device.msi.enable();
  const ack = () => {
    const pending = mmio.read32(EDU.IRQ_STATUS);
    if (pending) mmio.write32(EDU.IRQ_ACK, pending);
  };
  return { ...d, mmio, msi: device.msi, ack };
}

/** The addon alone: container, group and type1 through lib/native's surface, no lib/ objects. */
function openRaw() {
  const n = native();
  const container = n.openContainer('/dev/vfio/vfio');
  const g = n.openGroup(`/dev/vfio/${group}`);
  g.setContainer(container);
  container.setIommu(n.constants.VFIO_TYPE1v2_IOMMU);
  return {
    container,
    group: g,
    close() {
      g.unsetContainer();
      g.close();
      container.close();
    },
  };
}

function rawStatus(g, iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) if (!(g.getStatus() & 1)) throw new Error('the group is not viable');
  return Number(now() - t0) / iters;
}

function rawMapChunks(container, buffer, size, count) {
  const flags = native().constants.VFIO_DMA_MAP_FLAG_READ | native().constants.VFIO_DMA_MAP_FLAG_WRITE;
  const t0 = now();
  for (let i = 0; i < count; i++) container.mapDma(buffer, i * size, size, 0x40000000n + BigInt(i * size), flags);
  for (let i = 0; i < count; i++) container.unmapDma(0x40000000n + BigInt(i * size), BigInt(size), 0);
  return Number(now() - t0) / count;
}

/** An eventfd written by this process → the addon's uv_poll callback, no Irq, no EventEmitter. */
async function rawEventfdLatency(count) {
  const efd = native().createEventFd();
  let arrived = null;
  efd.start(() => arrived(now()));
  const ns = [];
  try {
    for (let i = 0; i < count; i++) {
      const p = new Promise((resolve) => (arrived = resolve));
      const t0 = now();
      efd.signal(1);
      ns.push(Number((await p) - t0));
    }
  } finally {
    efd.stop();
    efd.close();
  }
  return median(ns);
}

function status(g, iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) if (!g.status().viable) throw new Error('the group is not viable');
  return Number(now() - t0) / iters;
}

/** As ref.c's map_chunks: ns per chunk's map + unmap. */
function mapChunks(iommu, buffer, size, count) {
  const maps = new Array(count);
  const t0 = now();
  for (let i = 0; i < count; i++) maps[i] = iommu.map(buffer, { iova: 0x40000000n + BigInt(i * size), offset: i * size, size });
  for (let i = 0; i < count; i++) maps[i].unmap();
  return Number(now() - t0) / count;
}

async function eduDma(d, src, dst, bytes, cmd) {
  d.mmio.write32(EDU.DMA_SRC, src);
  d.mmio.write32(EDU.DMA_DST, dst);
  d.mmio.write32(EDU.DMA_COUNT, bytes);
  d.mmio.write32(EDU.DMA_CMD, CMD.START | CMD.IRQ | cmd);
  await d.msi.wait(0);
  d.ack();
}

/** As ref.c's case_dma: map, RAM → edu → RAM, compare, unmap; median ns. */
async function dmaRoundTrip(d, buffer, bytes, count) {
  const mem = buffer.bytes();
  const ns = [];
  for (let i = 0; i < count; i++) {
    for (let b = 0; b < bytes; b++) mem[b] = (b * 7 + i + 1) & 0xff;
    mem.fill(0, 2048, 2048 + bytes);
    const t0 = now();
    const mapping = d.iommu.map(buffer, { iova: 0x100000n });
    const at = Number(mapping.iova);
    await eduDma(d, at, EDU.BUFFER, bytes, 0);
    await eduDma(d, EDU.BUFFER, at + 2048, bytes, CMD.TO_RAM);
    const same = Buffer.compare(mem.subarray(0, bytes), mem.subarray(2048, 2048 + bytes)) === 0;
    mapping.unmap();
    ns.push(Number(now() - t0));
    if (!same) throw new Error('edu DMA: the bytes that came back differ');
  }
  return median(ns);
}

/** Opens what `body` needs and closes it again, whatever happens. */
async function within(open, body) {
  const d = open();
  try {
    return await body(d);
  } finally {
    d.container.close();
  }
}

/** A memfd both sides map, filled once by ref's fallocate. */
function sharedMemory(size, hugePageSize = 0) {
  const buffer = vfio.DmaBuffer.memfd(size, { name: 'bench', hugePageSize });
  const ns = ref('populate', 1, { fd: 3, size }, [buffer.fd]);
  s.log(`guest: ${size / MiB} MiB memfd (${hugePageSize ? '2 MiB' : '4 KiB'} pages) filled in ${(ns / 1e9).toFixed(1)} s`);
  return buffer;
}

/** MAP + UNMAP of `count` chunks of `size` bytes of `memory`, against C. */
function mapCase(id, title, memory, size, count, batches, rounds) {
  return s.run({
    id,
    title,
    rounds,
    c: (n) => ref('map', n, { group, size, count, batches, fd: 3 }, [memory.fd]),
    lib: () =>
      within(openIommu, (d) => {
        const buffer = vfio.DmaBuffer.fromFd(memory.fd, { size: size * count });
        try {
          return best(() => mapChunks(d.iommu, buffer, size, count), batches);
        } finally {
          buffer.close();
        }
      }),
    target: { ratio: 1.05 },
  });
}

function setHugePages(n) {
  try {
    fs.writeFileSync('/proc/sys/vm/nr_hugepages', String(n));
    return Number(fs.readFileSync('/proc/sys/vm/nr_hugepages', 'utf8'));
  } catch {
    return 0;
  }
}

// --- NVMe: the TypeScript driver (examples/nvme) against ref.c's C loop -------

const nvmeBdf = process.env.VFIO_GUEST_DEVICE_NVME;

/**
 * ns per 4 KiB read at `qd` in flight, polled (no interrupts): the driver's
 * read() promises, its queue drained in a loop that yields to their
 * callbacks (which submit the next read) whenever it took completions, as
 * ref.c's case_nvme reaps and resubmits. Starts and stops the controller
 * around it.
 */
async function nvmeReads(qd, total) {
  const { NvmeController } = require(path.join(root, 'dist', 'examples', 'nvme', 'controller'));
  const nvmeGroup = vfio.sysfs.iommuGroupOf(nvmeBdf);
  const container = vfio.Container.open();
  const buffer = vfio.DmaBuffer.allocate(32 * 4096);
  try {
    const g = container.openGroup(nvmeGroup);
    const iommu = container.setIommu();
    const device = g.openDevice(nvmeBdf);
    const nvme = await NvmeController.start(device, iommu, { ioQueues: 1, queueDepth: 64, interrupts: false });
    const data = iommu.map(buffer, { iova: 0x100000n });
    const q = nvme.io[0];
    const run = async (n) => {
      let submitted = 0;
      let done = 0;
      const next = () => {
        const i = submitted++;
        nvme.read((i % 2048) * 8, 8, data, (i % 32) * 4096).then(() => {
          done++;
          if (submitted < n) next();
        });
      };
      const t0 = now();
      while (submitted < qd && submitted < n) next();
      // Spin on the completion queue as ref.c does; yield only when a
      // completion came (or none is left), so its callback can submit the next.
      while (done < n) if (q.drain() > 0 || q.outstanding === 0) await null;
      return Number(now() - t0) / n;
    };
    await run((total >> 2) + 1);
    const ns = await run(total);
    await nvme.close();
    return ns;
  } finally {
    container.close();
    buffer.close();
  }
}

async function nvmeCases() {
  if (!nvmeBdf) throw new Error('guest.js needs VFIO_GUEST_DEVICE_NVME: run.js boots the guest with --device nvme,name=nvme');
  const nvmeGroup = vfio.sysfs.iommuGroupOf(nvmeBdf);
  for (const [qd, count, what] of [
    [1, s.quick ? 300 : 1000, 'QD1: ns per read, i.e. latency'],
    [32, s.quick ? 1000 : 4000, 'QD32: ns per read, i.e. 1 / IOPS'],
  ]) {
    await s.run({
      id: `guest.nvme.qd${qd}`,
      title: `NVMe 4 KiB reads, polled, ${what} (TS driver examples/nvme vs C)`,
      c: (n) => ref('nvme', n, { group: nvmeGroup, bdf: nvmeBdf, qd, count }),
      lib: () => nvmeReads(qd, count),
      target: { ratio: 1.2 },
    });
  }
}

async function main() {
  await startThreadPool();
  if (process.argv.includes('--only-nvme')) {
    await nvmeCases();
    s.finish({});
    return;
  }
  const iters = 1000;
  await s.run({
    id: 'guest.ioctl',
    title: 'cheap ioctl: group.status() (VFIO_GROUP_GET_STATUS)',
    c: (n) => ref('group-status', n, { group, iters, batches: s.batches }),
    lib: () => within(openIommu, (d) => best(() => status(d.group, iters), s.batches)),
    target: { ratio: 1.3 },
  });
  await s.run({
    id: 'guest.ioctl.addon',
    title: "the same ioctl through the addon's group.getStatus() alone (no lib/)",
    c: (n) => ref('group-status', n, { group, iters, batches: s.batches }),
    lib: () => {
      const raw = openRaw();
      try {
        return best(() => rawStatus(raw.group, iters), s.batches);
      } finally {
        raw.close();
      }
    },
  });

  const chunks = s.quick ? 16 : 64;
  const small = sharedMemory(chunks * 2 * MiB);
  await mapCase('guest.map.2m', `MAP + UNMAP 2 MiB × ${chunks}, per chunk`, small, 2 * MiB, chunks, 10);
  await s.run({
    id: 'guest.map.2m.addon',
    title: "the same chunks through the addon's mapDma/unmapDma alone (no lib/)",
    c: (n) => ref('map', n, { group, size: 2 * MiB, count: chunks, batches: 10, fd: 3 }, [small.fd]),
    lib: () => {
      const raw = openRaw();
      const buffer = native().mapFdBuffer(small.fd, 0, chunks * 2 * MiB);
      try {
        return best(() => rawMapChunks(raw.container, buffer, 2 * MiB, chunks), 10);
      } finally {
        buffer.close();
        raw.close();
      }
    },
  });
  small.close();

  // 1 GiB in 2 MiB pages first, while the guest's memory is still in one
  // piece; the pages go back before the 4 KiB case, which needs that memory.
  const big = s.quick ? 256 * MiB : GiB;
  const bigName = big === GiB ? '1 GiB' : `${big / MiB} MiB`;
  const wanted = big / (2 * MiB) + 8;
  const hugePages = setHugePages(wanted);
  if (hugePages >= wanted - 8) {
    const huge = sharedMemory(big, 2 * MiB);
    await mapCase('guest.map.1g-huge', `MAP + UNMAP ${bigName} in 2 MiB pages`, huge, big, 1, 1, 3);
    huge.close();
  } else {
    s.log(`guest: only ${hugePages} of ${wanted} huge pages: no 2 MiB-page case`);
  }
  setHugePages(0);
  const plain = sharedMemory(big);
  await mapCase('guest.map.1g', `MAP + UNMAP ${bigName} in 4 KiB pages`, plain, big, 1, 1, 3);
  plain.close();

  const count = s.quick ? 50 : 200;
  await s.run({
    id: 'guest.msi.listener',
    title: "edu raise-interrupt → MSI → 'interrupt' listener",
    c: (n) => ref('msi', n, { group, bdf, count }),
    lib: () =>
      within(openEdu, async (d) => {
        const raise = () => d.mmio.write32(EDU.IRQ_RAISE, 1);
        await listenerLatency(d.msi, raise, d.ack, 20);
        return listenerLatency(d.msi, raise, d.ack, count);
      }),
    target: { ratio: 2 },
  });
  await s.run({
    id: 'guest.msi.wait',
    title: 'edu raise-interrupt → MSI → `await irq.wait()` returns',
    c: (n) => ref('msi', n, { group, bdf, count }),
    lib: () =>
      within(openEdu, async (d) => {
        const raise = () => d.mmio.write32(EDU.IRQ_RAISE, 1);
        await waitLatency(d.msi, raise, d.ack, 20);
        return waitLatency(d.msi, raise, d.ack, count);
      }),
    target: { ratio: 2.2 },
  });
  await s.run({
    id: 'guest.eventfd.raw',
    title: "no device: eventfd written here → the addon's uv_poll callback, no lib/ (C: epoll_wait, read)",
    c: (n) => ref('eventfd-epoll', n, { count }),
    lib: async () => (await rawEventfdLatency(20), rawEventfdLatency(count)),
  });
  // edu completes each DMA from a 100 ms QEMU timer: the round trip is mostly two of those.
  const trips = s.quick ? 1 : 3;
  await s.run({
    id: 'guest.dma',
    title: 'edu DMA round trip (map 4 KiB, 1 KiB RAM → device → RAM with MSIs, compare, unmap)',
    c: (n) => ref('dma', n, { group, bdf, count: trips, bytes: 1024 }),
    lib: () =>
      within(openEdu, async (d) => {
        const buffer = vfio.DmaBuffer.allocate(4096);
        try {
          await dmaRoundTrip(d, buffer, 1024, 1);
          return await dmaRoundTrip(d, buffer, 1024, trips);
        } finally {
          d.iommu.unmapAll();
          buffer.close();
        }
      }),
    target: { ratio: 1.2 },
  });
  await nvmeCases();
  s.finish({ hugePages });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
