// Legacy INTx and device reset on the real kernel: what vfio-pci does with
// a level-triggered line (it masks it on each interrupt until we unmask).

import assert from 'node:assert/strict';
import { Container, type Device } from '../../lib';
import { isEdu, testEnv } from './env';
import { errorOf, rawType1 } from './raw';

const IRQ_RAISE = 0x60;
const IRQ_ACK = 0x64;

describe('INTx and reset on the real kernel', () => {
  let container: Container;
  let device: Device;

  beforeEach(() => {
    const env = testEnv();
    if (!isEdu(env.bdf)) throw new Error(`${env.bdf} is not QEMU's edu: these tests drive edu's interrupt registers`);
    container = Container.open();
    const group = container.openGroup(env.group);
    container.setIommu();
    device = group.openDevice(env.bdf);
  });
  afterEach(() => container.close());

  it('delivers INTx, automasked until unmask(), and again after it', async () => {
    const bar = device.bar(0).mmap();
    const intx = device.intx;
    assert.ok(intx.maskable && intx.automasked, 'vfio-pci reports INTx maskable and automasked');
    intx.enable();
    const first = intx.wait(0, 5000);
    bar.write32(IRQ_RAISE, 0x1);
    assert.equal(await first, 1);
    bar.write32(IRQ_ACK, 0x1); // the device lowers its line
    intx.unmask();
    const second = intx.wait(0, 5000);
    bar.write32(IRQ_RAISE, 0x2);
    assert.equal(await second, 1);
    bar.write32(IRQ_ACK, 0x2);
    intx.unmask();
    assert.equal(intx.total(0), 2);
  });

  it('holds a masked INTx back and delivers it on unmask', async () => {
    const bar = device.bar(0).mmap();
    const intx = device.intx;
    intx.enable();
    intx.mask();
    bar.write32(IRQ_RAISE, 0x4);
    await assert.rejects(intx.wait(0, 300), { code: 'ERR_VFIO_TIMEOUT' });
    const arrived = intx.wait(0, 5000);
    intx.unmask();
    assert.equal(await arrived, 1, 'the pending level interrupt fires once unmasked');
    bar.write32(IRQ_ACK, 0x4);
    intx.unmask();
  });

  it('disables an index and stops delivering', async () => {
    const bar = device.bar(0).mmap();
    const msi = device.msi;
    msi.enable();
    msi.disable();
    assert.equal(msi.enabled, 0);
    bar.write32(IRQ_RAISE, 0x8);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(msi.total(0), 0);
    bar.write32(IRQ_ACK, 0x8);
  });

  it('resets the device when the kernel offers a reset, refuses plainly when not', () => {
    if (device.info.resettable) {
      device.reset();
      assert.equal(device.bar(0).read32(0), 0x010000ed, 'the device answers after reset');
      return;
    }
    assert.throws(() => device.reset(), { code: 'ERR_VFIO_UNSUPPORTED', message: /does not support VFIO_DEVICE_RESET/ });
    // The kernel agrees: below the rule, VFIO_DEVICE_RESET fails.
    const { group, bdf } = { group: testEnv().group, bdf: testEnv().bdf };
    container.close();
    const raw = rawType1(group);
    try {
      const dev = raw.group.getDeviceFd(bdf);
      const e = errorOf(() => dev.reset());
      dev.close();
      assert.ok(e && (e.errno ?? 0) < 0, 'the kernel refuses the reset');
      assert.equal(e!.syscall, 'ioctl(VFIO_DEVICE_RESET)');
    } finally {
      raw.close();
    }
  });
});
