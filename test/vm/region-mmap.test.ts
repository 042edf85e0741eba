// A BAR mmap on the real kernel: a writable one is reached through views of
// the mapping (Atomics.load, plain stores), a read-only one through the
// addon. edu's registers tell whether an access had exactly its width.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Container, type Device } from '../../lib';
import { native } from '../../lib/native';
import { isEdu, testEnv } from './env';
import { errorOf, rawType1 } from './raw';

const IDENT = 0x00;
const LIVENESS = 0x04;
const DMA_SRC = 0x80; // 64-bit; edu ignores a 4-byte write at 0x84 and reads it as ~0

/** Lines of /proc/self/maps that map a VFIO device fd. */
function deviceMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('vfio-device')).length;
}

describe('BAR mmap on the real kernel', () => {
  let container: Container;
  let device: Device;
  before(() => {
    const env = testEnv();
    if (!isEdu(env.bdf)) throw new Error(`${env.bdf} is not QEMU's edu (1234:11e8): these tests drive edu registers`);
    container = Container.open();
    const group = container.openGroup(env.group);
    container.setIommu();
    device = group.openDevice(env.bdf);
  });
  after(() => container?.close());

  it('a writable mmap reads and writes the device registers: ident, and liveness read back inverted', () => {
    using map = device.bar(0).mmap();
    assert.equal(map.read32(IDENT), device.bar(0).read32(IDENT));
    for (const probe of [0, 0x12345678, 0xffffffff]) {
      map.write32(LIVENESS, probe);
      assert.equal(map.read32(LIVENESS), ~probe >>> 0);
    }
  });

  it('a 64-bit store and load through the mmap are one 8-byte access each (a split one would lose the high half)', () => {
    // edu's DMA source register: a 4-byte write at 0x80 sets all of it and
    // one at 0x84 is ignored; a 4-byte read at 0x84 gives ~0. (pread/pwrite
    // cannot referee: the 6.1 kernel splits an 8-byte one into two 4-byte.)
    using map = device.bar(0).mmap();
    using readOnly = device.bar(0).mmap({ writable: false });
    for (const value of [0x1_2345_6000n, 0xabc0_0000_0000_1000n]) {
      map.write64(DMA_SRC, value);
      assert.equal(map.read64(DMA_SRC), value, 'through the view');
      assert.equal(readOnly.read64(DMA_SRC), value, 'through the addon\'s volatile load');
    }
  });

  it('a read-only mmap reads through the addon and refuses stores with ERR_VFIO_REGION_ACCESS', () => {
    using map = device.bar(0).mmap({ writable: false });
    assert.equal(map.read32(IDENT), 0x010000ed);
    assert.throws(() => map.write32(LIVENESS, 1), { code: 'ERR_VFIO_REGION_ACCESS' });
  });
});

describe('BAR mmap on the real kernel, addon level', () => {
  it('close() detaches the ArrayBuffer and unmaps the BAR (addon level)', () => {
    const env = testEnv();
    const n = native();
    const raw = rawType1(env.group);
    try {
      const dev = raw.group.getDeviceFd(env.bdf);
      const info = dev.getRegionInfo(n.constants.VFIO_PCI_BAR0_REGION_INDEX);
      const before = deviceMappings();
      const map = dev.mmap(info.offset, Number(info.size), n.constants.PROT_READ | n.constants.PROT_WRITE);
      const ab = map.arrayBuffer();
      assert.equal(map.arrayBuffer(), ab, 'one ArrayBuffer per mapping');
      assert.equal(Atomics.load(new Uint32Array(ab), IDENT / 4), 0x010000ed);
      assert.equal(deviceMappings(), before + 1);
      map.close();
      assert.equal(ab.byteLength, 0, 'detached: views are zero-length, never dangling');
      assert.equal(deviceMappings(), before, 'munmapped at close, not at collection');
      assert.equal(errorOf(() => map.arrayBuffer())?.code, 'ERR_VFIO_CLOSED');

      const readOnly = dev.mmap(info.offset, Number(info.size), n.constants.PROT_READ);
      assert.equal(errorOf(() => readOnly.arrayBuffer())?.code, 'ERR_VFIO_REGION_ACCESS');
      readOnly.close();
      dev.close();
    } finally {
      raw.close();
    }
  });
});
