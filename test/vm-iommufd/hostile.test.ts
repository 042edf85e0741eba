// The iommufd surface called as a hostile caller would, on the real kernel:
// every junk argument is refused with a code (or accepted), none runs the
// caller's valueOf/toString/getters/traps, and a refusal leaves the books —
// mappings, attached and bound devices, KVM registrations — as they were.

import assert from 'node:assert/strict';
import { Device, DmaBuffer, IommuFd, Kvm } from '../../lib';
import { hostile, hostileObject, JUNK, show } from '../hostile-values';
import { testEnv } from '../vm/env';

describe('hostile arguments at the iommufd boundary (real kernel)', () => {
  const env = () => testEnv();

  function world() {
    const fd = IommuFd.open();
    const ioas = fd.allocIoas();
    const spare = fd.allocIoas();
    const device = fd.openDevice(env().bdf, { ioas });
    const buffer = DmaBuffer.allocate(0x4000);
    const mapping = ioas.map(buffer, { iova: 0x100000n, size: 0x1000 });
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    const kvmDev = vm.vfioDevice();
    const books = () => JSON.stringify({
      m: ioas.mappings.map((m) => `${m.iova}+${m.size}`),
      s: spare.mappings.length,
      d: ioas.devices.length,
      b: fd.devices.length,
      k: kvmDev.devices.length + kvmDev.groups.length,
      at: device.ioas === ioas,
    });
    const cleanup = () => {
      vm.close();
      kvm.close();
      fd.close();
      buffer.close();
    };
    return { fd, ioas, spare, device, buffer, mapping, kvmDev, books, cleanup };
  }

  const calls: [string, (w: ReturnType<typeof world>, a: unknown, b: unknown) => unknown][] = [
    ['IommuFd.open', (_w, a) => IommuFd.open(a as never)],
    ['Device.openCdev', (_w, a, b) => Device.openCdev(a as never, b as never)],
    ['iommufd.openDevice', (w, a, b) => w.fd.openDevice(a as never, b as never)],
    ['iommufd.openDevice(bdf, {ioas: junk})', (w, a) => w.fd.openDevice(env().bdf, { ioas: a as never })],
    ['device.bind', (w, a) => w.device.bind(a as never)],
    ['device.attach', (w, a) => w.device.attach(a as never)],
    ['ioas.map', (w, a, b) => w.ioas.map(a as never, b as never)],
    ['ioas.map(buffer, junk)', (w, a) => w.ioas.map(w.buffer, a as never)],
    ['ioas.map(buffer, {iova: junk})', (w, a) => w.ioas.map(w.buffer, { iova: a as never, offset: 0x1000, size: 0x1000 })],
    ['ioas.map(buffer, {size: junk})', (w, a) => w.ioas.map(w.buffer, { offset: 0x1000, size: a as never })],
    ['ioas.mapAsync(buffer, {offset: junk})', (w, a) => w.ioas.mapAsync(w.buffer, { offset: a as never, size: 0x1000 })],
    ['ioas.unmap', (w, a) => w.ioas.unmap(a as never)],
    ['ioas.unmap({iova: junk, size})', (w, a) => w.ioas.unmap({ iova: a as never, size: 0x1000n })],
    ['ioas.allowIovas', (w, a) => w.spare.allowIovas(a as never)],
    ['ioas.allowIovas([junk])', (w, a) => w.spare.allowIovas([a as never])],
    ['ioas.allowIovas([{start: junk, end}])', (w, a) => w.spare.allowIovas([{ start: a as never, end: 0xffffn }])],
    ['ioas.findFreeIova', (w, a, b) => w.ioas.findFreeIova(a as never, b as never)],
    ['kvmDev.add', (w, a) => w.kvmDev.add(a as never)],
    ['kvmDev.remove', (w, a) => w.kvmDev.remove(a as never)],
  ];

  for (const [name, call] of calls) {
    it(`${name}: junk refused with a code or accepted, nothing of the caller's run, a refusal changes nothing`, async () => {
      const w = world();
      try {
        for (const a of JUNK) {
          for (const b of [undefined, hostileObject, null]) {
            const before = w.books();
            hostile.touched = 0;
            let error: unknown;
            let result: unknown;
            try {
              result = call(w, a, b);
              if (result instanceof Promise) result = await result;
            } catch (e) {
              error = e;
            }
            const what = `${name}(${show(a)}, ${show(b)})`;
            assert.equal(hostile.touched, 0, `${what} ran the caller's valueOf/toString/getter/trap`);
            if (error !== undefined) {
              assert.ok(error instanceof Error, `${what} threw a non-Error`);
              assert.equal(typeof (error as { code?: unknown }).code, 'string', `${what} threw without a code: ${(error as Error).message}`);
              assert.equal(w.books(), before, `${what} was refused but changed the books`);
            } else if (result !== null && typeof result === 'object') {
              // Accepted: undo it (a mapping, an opened iommufd or device).
              const r = result as { unmap?: () => void; close?: () => void };
              if (typeof r.unmap === 'function') r.unmap();
              else if (typeof r.close === 'function') r.close();
            }
          }
        }
      } finally {
        w.cleanup();
      }
    });
  }
});
