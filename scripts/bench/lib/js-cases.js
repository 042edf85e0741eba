// The JS side of every case: the same operations, sizes and passes as
// ref.c, through the package's public API ('lib'), through the addon's typed
// surface directly ('addon', what lib/ adds shows as the difference), and
// through the generic npm `ioctl` package where it can express the call.
// Every function does its own untimed setup, an untimed warm-up pass, the
// timed pass, and closes everything (the group is exclusive: the C reference
// opens it next). Returns { metric: [ns...] } shaped like ref.c's output.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..', '..');
const vfio = require(path.join(root, 'dist', 'lib'));
const { native, setNativeBackend } = require(path.join(root, 'dist', 'lib', 'native'));
const { rawType1 } = require(path.join(root, 'dist', 'test', 'vm', 'raw'));
const { nullKernel } = require('./null-kernel');
const { loadCalib } = require('./ref');
const { measureLag, sleep } = require('./lag');

const now = process.hrtime.bigint;
const since = (t0) => Number(now() - t0);

/** The npm `ioctl` package, installed under scripts/bench (optional). */
function ioctlPackage() {
  try {
    return require(path.join(root, 'scripts', 'bench', 'node_modules', 'ioctl'));
  } catch {
    return null;
  }
}

// edu registers (QEMU docs/specs/edu.rst)
const EDU = {
  IDENT: 0x00,
  LIVENESS: 0x04,
  IRQ_STATUS: 0x24,
  IRQ_RAISE: 0x60,
  IRQ_ACK: 0x64,
  DMA_SRC: 0x80,
  DMA_DST: 0x88,
  DMA_COUNT: 0x90,
  DMA_CMD: 0x98,
  CMD_START: 0x1,
  CMD_TO_RAM: 0x2,
  CMD_IRQ: 0x4,
  BUFFER: 0x40000,
};

/** Two passes of `iters` calls; the second is timed. ns per call. */
function timedLoop(iters, call) {
  let sink = 0;
  let op = 0;
  for (let pass = 0; pass < 2; pass++) {
    const t0 = now();
    for (let i = 0; i < iters; i++) sink += call(i);
    op = since(t0) / iters;
  }
  return { op, sink };
}

// --- cheap ioctls ---------------------------------------------------------

/** KVM_CHECK_EXTENSION(KVM_CAP_DEVICE_CTRL) on /dev/kvm. */
function kvmExt(variant, { iters, consts }) {
  const cap = vfio.constants().KVM_CAP_DEVICE_CTRL;
  let call;
  let done;
  if (variant === 'lib') {
    const kvm = vfio.Kvm.open();
    call = () => kvm.checkExtension(cap);
    done = () => kvm.close();
  } else if (variant === 'addon') {
    const kvm = native().openKvm('/dev/kvm');
    call = () => kvm.checkExtension(cap);
    done = () => kvm.close();
  } else if (variant === 'ioctl') {
    const ioctl = ioctlPackage();
    const fd = fs.openSync('/dev/kvm', 'r+');
    call = () => ioctl(fd, consts.KVM_CHECK_EXTENSION, cap);
    done = () => fs.closeSync(fd);
  } else if (variant === 'napi') {
    const calib = loadCalib();
    const fd = fs.openSync('/dev/kvm', 'r+');
    call = () => calib.ioctlInt(fd, consts.KVM_CHECK_EXTENSION, cap);
    done = () => fs.closeSync(fd);
  } else {
    throw new Error(`kvm-ext: no variant ${variant}`);
  }
  try {
    const { op, sink } = timedLoop(iters, call);
    if (sink === 0) throw new Error('KVM_CAP_DEVICE_CTRL reported 0');
    return { op: [op] };
  } finally {
    done();
  }
}

/** VFIO_GROUP_GET_STATUS on a freshly opened group. */
function groupStatus(variant, { group, iters, consts }) {
  let call;
  let done;
  if (variant === 'lib') {
    const g = vfio.Group.open(group);
    call = () => (g.status().viable ? 1 : 0);
    done = () => g.close();
  } else if (variant === 'addon') {
    const g = native().openGroup(`/dev/vfio/${group}`);
    call = () => g.getStatus() & 1;
    done = () => g.close();
  } else if (variant === 'ioctl') {
    const ioctl = ioctlPackage();
    const fd = fs.openSync(`/dev/vfio/${group}`, 'r+');
    const status = Buffer.alloc(consts.sizeof_vfio_group_status);
    call = () => {
      status.writeUInt32LE(status.length, 0); // argsz
      status.writeUInt32LE(0, 4); // flags
      ioctl(fd, consts.VFIO_GROUP_GET_STATUS, status);
      return status.readUInt32LE(4) & 1;
    };
    done = () => fs.closeSync(fd);
  } else if (variant === 'napi') {
    const calib = loadCalib();
    const fd = fs.openSync(`/dev/vfio/${group}`, 'r+');
    call = () => calib.groupStatus(fd) & 1;
    done = () => fs.closeSync(fd);
  } else {
    throw new Error(`group-status: no variant ${variant}`);
  }
  try {
    const { op, sink } = timedLoop(iters, call);
    if (sink !== 2 * iters) throw new Error('the group is not viable');
    return { op: [op] };
  } finally {
    done();
  }
}

/**
 * What a call costs before it does anything (JS only, ns per call): a bare
 * Node-API function, the type-tag check + unwrap every method of our addon
 * does on `this` (node-addon-api + native/wrap.h), and our addon's cheapest
 * method (the `fd` getter of an eventfd).
 */
function calibration(_variant, { iters }) {
  const calib = loadCalib();
  const out = {};
  if (calib) {
    out['Node-API call, empty'] = [timedLoop(iters, () => (calib.noop(), 0)).op];
    const tagged = calib.tagged;
    out['Node-API type-tag check + unwrap'] = [timedLoop(iters, () => (tagged.check() ? 1 : 0)).op];
    out['Node-API type-tag check alone'] = [timedLoop(iters, () => (tagged.checkTag() ? 1 : 0)).op];
    out['Node-API unwrap alone'] = [timedLoop(iters, () => (tagged.unwrap() ? 1 : 0)).op];
  }
  out['lib: native() (lib/native.ts)'] = [timedLoop(iters, () => (native() ? 1 : 0)).op];
  const e = native().createEventFd();
  try {
    out['addon: eventfd.fd getter'] = [timedLoop(iters, () => e.fd).op];
    out['addon: eventfd.read() (EAGAIN)'] = [timedLoop(iters, () => e.read()).op];
  } finally {
    e.close();
  }
  return out;
}

// --- DMA mapping ------------------------------------------------------------

/** Container + group + type1 IOMMU through the public API. */
function openLib(group) {
  const container = vfio.Container.open();
  try {
    const g = container.openGroup(group);
    const iommu = container.setIommu();
    return { container, group: g, iommu };
  } catch (e) {
    container.close();
    throw e;
  }
}

/** The same through the addon alone (test/vm/raw.ts, as compiled into dist/). */
function openAddon(group) {
  return { n: native(), ...rawType1(group) };
}

/**
 * `count` chunks of `size` bytes, each mapped at its own IOVA, then each
 * unmapped; ns per chunk. Memory: anonymous (`huge` page size or 0) or the
 * shared memfd `fd`, exactly as ref.c's get_buffer().
 */
function map(variant, { group, size, count, huge = 0, fd = -1, iova = 0x40000000, passes = 1 }) {
  const total = size * count;
  const base = BigInt(iova);
  const out = { map: [], unmap: [], pair: [] };
  const record = (tMap, tUnmap) => {
    out.map.push(tMap / count);
    out.unmap.push(tUnmap / count);
    out.pair.push((tMap + tUnmap) / count);
  };
  if (variant === 'lib') {
    const { container, iommu } = openLib(group);
    const buffer =
      fd >= 0 ? vfio.DmaBuffer.fromFd(fd, { size: total }) : vfio.DmaBuffer.allocate(total, huge ? { hugePageSize: huge } : {});
    try {
      const maps = new Array(count);
      for (let pass = 0; pass <= passes; pass++) {
        const t0 = now();
        for (let i = 0; i < count; i++) maps[i] = iommu.map(buffer, { iova: base + BigInt(i * size), offset: i * size, size });
        const t1 = now();
        for (let i = 0; i < count; i++) maps[i].unmap();
        const t2 = now();
        if (pass > 0) record(Number(t1 - t0), Number(t2 - t1));
      }
    } finally {
      container.close();
      buffer.close();
    }
  } else if (variant === 'addon') {
    const a = openAddon(group);
    const buffer = fd >= 0 ? a.n.mapFdBuffer(fd, 0, total) : a.n.allocDmaBuffer(total, huge);
    const flags = a.n.constants.VFIO_DMA_MAP_FLAG_READ | a.n.constants.VFIO_DMA_MAP_FLAG_WRITE;
    const bigSize = BigInt(size);
    try {
      for (let pass = 0; pass <= passes; pass++) {
        const t0 = now();
        for (let i = 0; i < count; i++) a.container.mapDma(buffer, i * size, size, base + BigInt(i * size), flags);
        const t1 = now();
        for (let i = 0; i < count; i++) {
          if (a.container.unmapDma(base + BigInt(i * size), bigSize, 0) !== bigSize) throw new Error('UNMAP_DMA unmapped a different size');
        }
        const t2 = now();
        if (pass > 0) record(Number(t1 - t0), Number(t2 - t1));
      }
    } finally {
      buffer.close();
      a.close();
    }
  } else {
    throw new Error(`map: no variant ${variant}`);
  }
  return out;
}

/**
 * lib/'s own cost per map + unmap, on any host: the same loop as map(), with
 * lib/ over a backend that does nothing (null-kernel.js). ns per chunk.
 */
function libMapOverhead(_variant, { count, size = 4096, iova = 0x40000000 }) {
  const real = native();
  setNativeBackend(nullKernel(real));
  try {
    const { container, iommu } = openLib(0);
    const buffer = vfio.DmaBuffer.allocate(size * count);
    const base = BigInt(iova);
    const maps = new Array(count);
    const out = { map: [], unmap: [], pair: [] };
    try {
      for (let pass = 0; pass < 2; pass++) {
        const t0 = now();
        for (let i = 0; i < count; i++) maps[i] = iommu.map(buffer, { iova: base + BigInt(i * size), offset: i * size, size });
        const t1 = now();
        for (let i = 0; i < count; i++) maps[i].unmap();
        const t2 = now();
        if (pass === 1) {
          out.map.push(Number(t1 - t0) / count);
          out.unmap.push(Number(t2 - t1) / count);
          out.pair.push(Number(t2 - t0) / count);
        }
      }
    } finally {
      container.close();
      buffer.close();
    }
    return out;
  } finally {
    setNativeBackend(real);
  }
}

/** One buffer of the largest size; map [0, s) and unmap it for each s (MiB). */
function growth(variant, { group, sizes, huge = 0, fd = -1, iova = 0x40000000 }) {
  if (variant !== 'lib') throw new Error(`growth: no variant ${variant}`);
  const mib = sizes.split(',').map(Number);
  const max = Math.max(...mib) * 2 ** 20;
  const { container, iommu } = openLib(group);
  const buffer = fd >= 0 ? vfio.DmaBuffer.fromFd(fd, { size: max }) : vfio.DmaBuffer.allocate(max, huge ? { hugePageSize: huge } : {});
  const out = {};
  try {
    iommu.map(buffer, { iova: BigInt(iova), size: max }).unmap(); // warm-up: every page in
    for (const m of mib) {
      const t0 = now();
      const mapping = iommu.map(buffer, { iova: BigInt(iova), size: m * 2 ** 20 });
      const t1 = now();
      mapping.unmap();
      const t2 = now();
      out[`map@${m}M`] = [Number(t1 - t0)];
      out[`unmap@${m}M`] = [Number(t2 - t1)];
    }
  } finally {
    container.close();
    buffer.close();
  }
  return out;
}

/**
 * Event-loop lag under a 1 ms setInterval (lib/lag.js) while mapAsync pins
 * `size` bytes, and while unmapAsync lets them go, against the sync map();
 * as ref.c's case_lag. `fresh`: no warm-up, the pin faults the pages in.
 */
async function lag(variant, { group, size, huge = 0, fd = -1, fresh = 0, iova = 0x40000000 }) {
  if (variant !== 'lib') throw new Error(`lag: no variant ${variant}`);
  const at = BigInt(iova);
  const idle = await measureLag(() => sleep(300));
  const out = { 'idle: max timer lag': [idle.lag], 'idle: CPU per timer tick': [idle.cpuPerTick] };
  for (const sync of [false, true]) {
    const { container, iommu } = openLib(group);
    const buffer = fd >= 0 ? vfio.DmaBuffer.fromFd(fd, { size }) : vfio.DmaBuffer.allocate(size, huge ? { hugePageSize: huge } : {});
    try {
      if (!fresh) iommu.map(buffer, { iova: at }).unmap();
      let mapping;
      if (sync) {
        const m = await measureLag(() => {
          mapping = iommu.map(buffer, { iova: at });
        });
        out['map (sync): max timer lag'] = [m.lag];
        out['map (sync): duration'] = [m.duration];
        mapping.unmap();
      } else {
        const m = await measureLag(async () => {
          mapping = await iommu.mapAsync(buffer, { iova: at });
        });
        out['mapAsync: max timer lag'] = [m.lag];
        out['mapAsync: duration'] = [m.duration];
        out['unmapAsync: max timer lag'] = [(await measureLag(() => mapping.unmapAsync())).lag];
      }
    } finally {
      container.close();
      buffer.close();
    }
  }
  return out;
}

// --- device: registers, interrupts, DMA ----------------------------------------

/** The edu device through the public API, bus mastering on, BAR0 mmapped. */
function openDevice(group, bdf) {
  const lib = openLib(group);
  try {
    const device = lib.group.openDevice(bdf);
    device.setBusMaster(true);
    const bar = device.bar(0);
    return { ...lib, device, bar, mmio: bar.mmap() };
  } catch (e) {
    lib.container.close();
    throw e;
  }
}

/** BAR0 register access: mode mmap-read | mmap-write | pread | pwrite. */
function bar(variant, { group, bdf, mode, iters }) {
  let call;
  let check;
  let done;
  if (variant === 'lib') {
    const d = openDevice(group, bdf);
    const { bar: region, mmio } = d;
    call = {
      'mmap-read': () => mmio.read32(EDU.IDENT),
      'mmap-write': (i) => (mmio.write32(EDU.LIVENESS, i), 0),
      pread: () => region.read32(EDU.IDENT),
      pwrite: (i) => (region.write32(EDU.LIVENESS, i), 0),
    }[mode];
    check = () => mmio.read32(EDU.LIVENESS);
    done = () => d.container.close();
  } else if (variant === 'addon') {
    const a = openAddon(group);
    const device = a.group.getDeviceFd(bdf);
    const info = device.getRegionInfo(a.n.constants.VFIO_PCI_BAR0_REGION_INDEX);
    const cfg = device.getRegionInfo(a.n.constants.VFIO_PCI_CONFIG_REGION_INDEX);
    device.write(cfg.offset + 4n, 2, device.read(cfg.offset + 4n, 2) | 0x4);
    const mmio = device.mmap(info.offset, Number(info.size), a.n.constants.PROT_READ | a.n.constants.PROT_WRITE);
    const identAt = info.offset + BigInt(EDU.IDENT);
    const livenessAt = info.offset + BigInt(EDU.LIVENESS);
    call = {
      'mmap-read': () => mmio.read(EDU.IDENT, 4),
      'mmap-write': (i) => (mmio.write(EDU.LIVENESS, 4, i), 0),
      pread: () => device.read(identAt, 4),
      pwrite: (i) => (device.write(livenessAt, 4, i), 0),
    }[mode];
    check = () => mmio.read(EDU.LIVENESS, 4);
    done = () => {
      mmio.close();
      device.close();
      a.close();
    };
  } else if (variant === 'view') {
    // Design option, measured with calib.c: the BAR as a typed array, one
    // Atomics.load (never elided, exact width) or plain store per access.
    const a = openAddon(group);
    const device = a.group.getDeviceFd(bdf);
    const info = device.getRegionInfo(a.n.constants.VFIO_PCI_BAR0_REGION_INDEX);
    const calib = loadCalib();
    const ab = calib.mmapBuffer(device.fd, Number(info.offset), Number(info.size));
    const u32 = new Uint32Array(ab);
    call = {
      'mmap-read': () => Atomics.load(u32, EDU.IDENT >> 2),
      'mmap-write': (i) => ((u32[EDU.LIVENESS >> 2] = i), 0),
    }[mode];
    check = () => Atomics.load(u32, EDU.LIVENESS >> 2);
    done = () => {
      calib.munmapBuffer(ab);
      device.close();
      a.close();
    };
  } else {
    throw new Error(`bar: no variant ${variant}`);
  }
  if (!call) throw new Error(`bar: no mode ${mode}`);
  try {
    const { op, sink } = timedLoop(iters, call);
    if (mode.endsWith('read') && sink !== 2 * iters * 0x010000ed) throw new Error('unexpected ident reads');
    if (mode.endsWith('write') && check() !== ~(iters - 1) >>> 0) throw new Error('liveness did not read back the inverse');
    return { op: [op] };
  } finally {
    done();
  }
}

/**
 * The user-space half of the interrupt path on any host: eventfd.signal(1)
 * → the addon's uv_poll watch → the JS callback (what Irq builds on).
 */
async function eventfd(variant, { count }) {
  if (variant !== 'addon') throw new Error(`eventfd: no variant ${variant}`);
  const e = native().createEventFd();
  let arrived = null;
  e.start(() => arrived?.(now()));
  const latency = [];
  try {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < count; i++) {
        const p = new Promise((resolve) => (arrived = resolve));
        const t0 = now();
        e.signal(1);
        const t1 = await p;
        if (pass === 1) latency.push(Number(t1 - t0));
      }
    }
  } finally {
    e.close();
  }
  return { latency };
}

/**
 * Times `count` interrupts after `warmup` untimed ones: raise() makes one,
 * the Irq delivers it to an 'interrupt' listener ('callback') or to
 * `await irq.wait()` ('wait'); after() runs untimed (the device's ack).
 */
async function timeInterrupts(msi, variant, { count, warmup, raise, after = () => {} }) {
  let arrived = null;
  if (variant === 'callback') msi.on('interrupt', () => arrived?.(now()));
  else if (variant !== 'wait') throw new Error(`irq: no variant ${variant}`);
  const latency = [];
  for (let i = 0; i < warmup + count; i++) {
    let t0;
    let t1;
    if (variant === 'callback') {
      const p = new Promise((resolve) => (arrived = resolve));
      t0 = now();
      raise();
      t1 = await p;
    } else {
      t0 = now();
      raise();
      await msi.wait(0);
      t1 = now();
    }
    after();
    if (i >= warmup) latency.push(Number(t1 - t0));
  }
  return latency;
}

/**
 * The interrupt path through lib/ on any host: lib/ over null-kernel.js, so
 * Irq's eventfd is a real one the test signals itself (as the kernel's MSI
 * handler would). 'callback': an 'interrupt' listener; 'wait': await irq.wait().
 */
async function libIrq(variant, { count }) {
  const real = native();
  const kernel = nullKernel(real);
  setNativeBackend(kernel);
  let latency;
  try {
    const { container, group } = openLib(0);
    try {
      const msi = group.openDevice('0000:00:00.0').msi;
      msi.enable();
      const [eventfd] = kernel.irqEventfds;
      latency = await timeInterrupts(msi, variant, { count, warmup: count, raise: () => eventfd.signal(1) });
    } finally {
      container.close();
    }
  } finally {
    setNativeBackend(real);
  }
  return { latency };
}

function ack(mmio) {
  const pending = mmio.read32(EDU.IRQ_STATUS);
  if (pending) mmio.write32(EDU.IRQ_ACK, pending);
  return pending;
}

/**
 * Interrupt latency: write edu's raise-interrupt register, take the MSI in
 * JS. 'callback': an 'interrupt' listener notes the time; 'wait': the time
 * after `await irq.wait()` returns.
 */
async function irq(variant, { group, bdf, count }) {
  const d = openDevice(group, bdf);
  const { mmio } = d;
  const msi = d.device.msi;
  msi.enable();
  let latency;
  try {
    const raise = () => mmio.write32(EDU.IRQ_RAISE, 1);
    latency = await timeInterrupts(msi, variant, { count, warmup: Math.min(count, 20), raise, after: () => ack(mmio) });
  } finally {
    d.container.close();
  }
  return { latency };
}

/**
 * edu DMA round trip, as ref.c's case_dma: map a 4 KiB buffer, `bytes`
 * RAM→device, MSI, device→RAM into the second half, MSI, compare, unmap.
 * 'driver' leaves out the two waits from starting a DMA to its interrupt.
 */
async function dma(variant, { group, bdf, count, bytes, iova = 0x100000 }) {
  if (variant !== 'lib') throw new Error(`dma: no variant ${variant}`);
  const d = openDevice(group, bdf);
  const { mmio, iommu } = d;
  const msi = d.device.msi;
  msi.enable();
  const buffer = vfio.DmaBuffer.allocate(4096);
  const mem = buffer.bytes();
  const roundtrip = [];
  const driver = [];
  try {
    for (let pass = 0; pass < 2; pass++) {
      const n = pass === 0 ? 1 : count;
      for (let i = 0; i < n; i++) {
        for (let b = 0; b < bytes; b++) mem[b] = (b * 7 + i + 1) & 0xff;
        mem.fill(0, 2048, 2048 + bytes);
        const t0 = now();
        const mapping = iommu.map(buffer, { iova: BigInt(iova) });
        const at = Number(mapping.iova);
        mmio.write32(EDU.DMA_SRC, at);
        mmio.write32(EDU.DMA_DST, EDU.BUFFER);
        mmio.write32(EDU.DMA_COUNT, bytes);
        mmio.write32(EDU.DMA_CMD, EDU.CMD_START | EDU.CMD_IRQ);
        const w0 = now();
        await msi.wait(0);
        const w1 = now();
        ack(mmio);
        mmio.write32(EDU.DMA_SRC, EDU.BUFFER);
        mmio.write32(EDU.DMA_DST, at + 2048);
        mmio.write32(EDU.DMA_COUNT, bytes);
        mmio.write32(EDU.DMA_CMD, EDU.CMD_START | EDU.CMD_TO_RAM | EDU.CMD_IRQ);
        const w2 = now();
        await msi.wait(0);
        const w3 = now();
        ack(mmio);
        const same = Buffer.compare(Buffer.from(mem.buffer, 0, bytes), Buffer.from(mem.buffer, 2048, bytes)) === 0;
        mapping.unmap();
        const t1 = now();
        if (!same) throw new Error('DMA round trip: the bytes that came back differ');
        if (pass === 1) {
          roundtrip.push(Number(t1 - t0));
          driver.push(Number(t1 - t0 - (w1 - w0) - (w3 - w2)));
        }
      }
    }
  } finally {
    d.container.close();
    buffer.close();
  }
  return { roundtrip, driver };
}

module.exports = { calibration, kvmExt, groupStatus, map, libMapOverhead, growth, lag, bar, eventfd, libIrq, irq, dma, ioctlPackage, openLib, vfio, native };
