// Devices opened by their cdev on the built kernel: nothing before bind and
// attach (each missing step with its own code, next to what the kernel
// answers), detach and re-attach to another IOAS with DMA through each, the
// group and the cdev excluding each other, and every close order.

import assert from 'node:assert/strict';
import { Container, Device, DmaBuffer, IommuFd } from '../../lib';
import { cdevPath } from '../../lib/device';
import { native } from '../../lib/native';
import { Edu } from '../../examples/edu/edu';
import { testEnv, type TestEnv } from '../vm/env';
import { errorOf } from '../vm/raw';

describe('device cdevs on the real kernel', () => {
  let env: TestEnv;
  before(() => {
    env = testEnv();
  });

  it('names the cdev sysfs gives the device: /dev/vfio/devices/vfioN', () => {
    assert.match(cdevPath(env.bdf), /^\/dev\/vfio\/devices\/vfio\d+$/);
    using d = Device.openCdev(env.bdf);
    assert.equal(d.cdev, cdevPath(env.bdf));
    assert.equal(d.group, null);
  });

  it('refuses every access before bind (ERR_VFIO_DEVICE_NOT_BOUND); the kernel answers EINVAL', () => {
    using d = Device.openCdev(env.bdf);
    assert.throws(() => d.info, { code: 'ERR_VFIO_DEVICE_NOT_BOUND', message: /device\.bind\(iommufd\)/ });
    assert.throws(() => d.bar(0), { code: 'ERR_VFIO_DEVICE_NOT_BOUND' });
    assert.throws(() => d.msi, { code: 'ERR_VFIO_DEVICE_NOT_BOUND' });
    assert.throws(() => d.reset(), { code: 'ERR_VFIO_DEVICE_NOT_BOUND' });
    using fd = IommuFd.open();
    assert.throws(() => d.attach(fd.allocIoas()), { code: 'ERR_VFIO_DEVICE_NOT_BOUND' });
    const raw = native().openDeviceCdev(cdevPath(env.bdf));
    try {
      // d holds the device open, unbound; a second open of the cdev gets its own fd.
      assert.equal(errorOf(() => raw.getInfo())?.code, 'EINVAL');
    } finally {
      raw.close();
    }
  });

  it('refuses access while bound but unattached (ERR_VFIO_DEVICE_NOT_ATTACHED); the kernel would answer', () => {
    using fd = IommuFd.open();
    using d = Device.openCdev(env.bdf);
    d.bind(fd);
    assert.deepEqual(fd.devices, [d]);
    assert.throws(() => d.bar(0), { code: 'ERR_VFIO_DEVICE_NOT_ATTACHED', message: /device\.attach\(ioas\)/ });
    assert.throws(() => d.info, { code: 'ERR_VFIO_DEVICE_NOT_ATTACHED' });
    assert.throws(() => d.bind(fd), { code: 'ERR_VFIO_ORDER' });
    const ioas = fd.allocIoas();
    d.attach(ioas);
    assert.deepEqual(ioas.devices, [d]);
    assert.equal(d.info.pci, true);
  });

  it('the kernel itself: GET_INFO answers after bind, before any attach (our rule is stricter: DMA is blocked then)', () => {
    const n = native();
    const fd = n.openIommufd('/dev/iommu');
    const dev = n.openDeviceCdev(cdevPath(env.bdf));
    try {
      assert.equal(typeof dev.bindIommufd(fd), 'number');
      assert.ok(dev.getInfo().numRegions > 0);
    } finally {
      dev.close();
      fd.close();
    }
  });

  it('detaches and re-attaches to another IOAS: DMA goes through the one attached, bytes checked each time', async () => {
    using fd = IommuFd.open();
    const a = fd.allocIoas();
    const b = fd.allocIoas();
    using d = fd.openDevice(env.bdf, { ioas: a });
    const edu = new Edu(d);
    using src = DmaBuffer.allocate(4096);
    using dstA = DmaBuffer.allocate(4096);
    using dstB = DmaBuffer.allocate(4096);
    src.bytes().fill(0xa5);
    dstA.bytes().fill(0);
    dstB.bytes().fill(0);
    // The same IOVAs in both spaces, different memory behind them.
    const ma = [a.map(src, { iova: 0x100000n }), a.map(dstA, { iova: 0x200000n })];
    const mb = [b.map(src, { iova: 0x100000n }), b.map(dstB, { iova: 0x200000n })];
    await edu.toDevice(0x100000n, 256);
    await edu.toRam(0x200000n, 256);
    assert.ok(dstA.bytes(0, 256).every((v) => v === 0xa5));
    assert.ok(dstB.bytes(0, 256).every((v) => v === 0));
    d.attach(b);
    assert.equal(d.ioas, b);
    assert.deepEqual(a.devices, []);
    assert.deepEqual(b.devices, [d]);
    await edu.toRam(0x200000n, 256);
    assert.ok(dstB.bytes(0, 256).every((v) => v === 0xa5), 'the DMA went through IOAS b');
    d.detach();
    assert.equal(d.ioas, null);
    assert.throws(() => d.bar(0), { code: 'ERR_VFIO_DEVICE_NOT_ATTACHED' });
    d.attach(a);
    assert.ok(d.bar(0).read32(0) === 0x010000ed);
    [...ma, ...mb].forEach((m) => m.unmap());
  });

  it('a device open through its group does not bind by its cdev (EBUSY), and its group does not open while a cdev is open (EBUSY)', () => {
    {
      using container = Container.open();
      const group = container.openGroup(env.group);
      container.setIommu();
      group.openDevice(env.bdf);
      using d = Device.openCdev(env.bdf);
      using fd = IommuFd.open();
      assert.throws(() => d.bind(fd), { code: 'EBUSY' });
      assert.deepEqual(fd.devices, []);
    }
    {
      using fd = IommuFd.open();
      using d = fd.openDevice(env.bdf, { ioas: fd.allocIoas() });
      assert.ok(d.bar(0));
      using container = Container.open();
      // The kernel refuses the group itself while a device of it is open by its cdev.
      assert.throws(() => container.openGroup(env.group), { code: 'EBUSY', message: /open by its cdev/ });
      assert.deepEqual(container.groups, []);
    }
  });

  it('a device from a group does not bind to an iommufd (ERR_VFIO_UNSUPPORTED, no ioctl)', () => {
    using container = Container.open();
    const group = container.openGroup(env.group);
    container.setIommu();
    const d = group.openDevice(env.bdf);
    using fd = IommuFd.open();
    assert.throws(() => d.bind(fd), { code: 'ERR_VFIO_UNSUPPORTED' });
  });

  it('closing the iommufd closes its devices (interrupts, BAR mmaps, fds) and IOAS, in teardown order', async () => {
    const fd = IommuFd.open();
    const ioas = fd.allocIoas();
    const d = fd.openDevice(env.bdf, { ioas });
    const edu = new Edu(d);
    using buf = DmaBuffer.allocate(4096);
    ioas.map(buf, { iova: 0x100000n });
    assert.equal(await edu.raiseInterrupt(0x1), 1, 'an MSI arrived');
    fd.close();
    assert.ok(d.closed && ioas.closed && fd.closed);
    assert.equal(ioas.mappings.length, 0);
    buf.close(); // the mapping went with the IOAS
    // The device is free again: it opens and binds anew.
    using fd2 = IommuFd.open();
    using d2 = fd2.openDevice(env.bdf, { ioas: fd2.allocIoas() });
    assert.equal(d2.bar(0).read32(0), 0x010000ed);
  });

  it('closes device, IOAS, buffer and iommufd in every order: the kernel lets the device open again each time', () => {
    const parts = ['device', 'ioas', 'buffer', 'iommufd'] as const;
    const orders: (typeof parts)[number][][] = [];
    const permute = (rest: (typeof parts)[number][], done: (typeof parts)[number][]) => {
      if (rest.length === 0) orders.push(done);
      rest.forEach((p, i) => permute([...rest.slice(0, i), ...rest.slice(i + 1)], [...done, p]));
    };
    permute([...parts], []);
    for (const order of orders) {
      const fd = IommuFd.open();
      const ioas = fd.allocIoas();
      const d = fd.openDevice(env.bdf, { ioas });
      const buf = DmaBuffer.allocate(4096);
      const m = ioas.map(buf, { iova: 0x100000n });
      const close = { device: () => d.close(), ioas: () => ioas.destroy(), buffer: () => buf.close(), iommufd: () => fd.close() };
      for (const part of order) {
        try {
          close[part]();
        } catch (e) {
          // Refusals only, and each changed nothing.
          const code = (e as { code?: string }).code;
          assert.ok(code === 'ERR_VFIO_BUSY' || code === 'ERR_VFIO_BUFFER_IN_USE', `${order.join(' → ')}: ${part}: ${String(e)}`);
        }
      }
      // Whatever was refused goes now, in the order that works.
      d.close();
      if (!m.closed) m.unmap();
      ioas.destroy();
      buf.close();
      fd.close();
      assert.ok(d.closed && ioas.closed && buf.closed && fd.closed, order.join(' → '));
    }
    using fd = IommuFd.open();
    using d = fd.openDevice(env.bdf, { ioas: fd.allocIoas() });
    assert.equal(d.bar(0).read32(0), 0x010000ed);
  });
});
