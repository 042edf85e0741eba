// Teardown is a transaction: a close happens completely or is refused with
// nothing changed; a kernel failure halfway leaves the books equal to the
// kernel's and the object open for a retry; a context the kernel drops takes
// its objects with it; and the safety net reaches every object it should.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Container, DmaBuffer, Group } from '../../lib';
import { collectUntil, gc, leakWarnings } from '../fixtures/gc';
import { rejectsCode, throwsCode, EDU, openEdu, useFakeKernel } from './fake/setup';


describe('teardown', () => {
  const fake = useFakeKernel([
    { id: 3, devices: [EDU] },
    { id: 4, devices: ['0000:00:04.0'] },
  ]);

  const setup = openEdu;

  describe('a refused close changes nothing', () => {
    it('group.close() while a mapAsync of its IOMMU is in flight: ERR_VFIO_BUSY, group, devices and books as before', async () => {
      const { container, group, iommu, device, buffer } = setup();
      const pending = iommu.mapAsync(buffer, { iova: 0x10000n });
      const callsBefore = fake.k.calls.length;
      throwsCode(() => group.close(), 'ERR_VFIO_BUSY', /Nothing was changed/);
      assert.equal(fake.k.calls.length, callsBefore, 'no syscall');
      assert.equal(group.closed, false);
      assert.equal(device.closed, false);
      assert.deepEqual(container.groups, [group]);
      const m = await pending;
      assert.equal(fake.k.containers[0].mappings.length, 1, 'the map landed in a live context');
      assert.deepEqual(iommu.mappings, [m]);
      container.close();
      assert.ok(m.closed && group.closed && device.closed);
      buffer.close();
    });

    it('container.close() while a mapAsync is in flight: ERR_VFIO_BUSY, nothing closed', async () => {
      const { container, iommu, device, buffer } = setup();
      const pending = iommu.mapAsync(buffer, { iova: 0x10000n });
      throwsCode(() => container.close(), 'ERR_VFIO_BUSY');
      assert.equal(device.closed, false);
      assert.equal(container.closed, false);
      await pending;
      container.close();
      buffer.close();
    });
  });

  describe('a kernel failure halfway: books equal to the kernel, open for a retry', () => {
    it('container.close() stopped by EIO from UNMAP_DMA: devices closed, mappings live, container open; close() again finishes', () => {
      const { container, group, iommu, device, buffer } = setup();
      const m = iommu.map(buffer, { iova: 0x10000n });
      fake.k.failNext.set('ioctl(VFIO_IOMMU_UNMAP_DMA)', 'EIO');
      const e = throwsCode(() => container.close(), 'EIO', /done before it failed: closed device 0000:00:03\.0; container .* is still open: call close\(\) again/);
      assert.equal((e as unknown as { syscall: string }).syscall, 'ioctl(VFIO_IOMMU_UNMAP_DMA)');
      assert.equal(device.closed, true, 'step 1 happened and is recorded');
      assert.equal(container.closed, false);
      assert.equal(group.closed, false);
      assert.equal(m.closed, false);
      assert.deepEqual(iommu.mappings, [m]);
      assert.equal(fake.k.containers[0].mappings.length, 1, 'the kernel still has it too');
      throwsCode(() => buffer.close(), 'ERR_VFIO_BUFFER_IN_USE');
      container.close();
      assert.ok(container.closed && group.closed && m.closed);
      assert.equal(fake.k.containers[0].fd, -1);
      buffer.close();
    });

    it('a failed DmaMapping.unmap() leaves the mapping live, in the books and pinning its buffer', () => {
      const { container, iommu, buffer } = setup();
      const m = iommu.map(buffer, { iova: 0x10000n });
      fake.k.failNext.set('ioctl(VFIO_IOMMU_UNMAP_DMA)', 'EIO');
      throwsCode(() => m.unmap(), 'EIO');
      assert.equal(m.closed, false);
      assert.deepEqual(iommu.mappings, [m]);
      throwsCode(() => buffer.close(), 'ERR_VFIO_BUFFER_IN_USE');
      m.unmap();
      assert.equal(m.closed, true);
      container.close();
      buffer.close();
    });

    it('group.close() stopped by UNSET_CONTAINER: the group stays attached and open', () => {
      const { container, group, device, buffer } = setup();
      const other = container.openGroup(4);
      fake.k.failNext.set('ioctl(VFIO_GROUP_UNSET_CONTAINER)', 'EIO');
      throwsCode(() => other.close(), 'EIO', /group 4 is still open/);
      assert.equal(other.closed, false);
      assert.deepEqual(container.groups, [group, other]);
      other.close();
      assert.deepEqual(container.groups, [group]);
      assert.equal(device.closed, false, 'another group\'s device is untouched');
      container.close();
      buffer.close();
    });
  });

  describe('the IOMMU context goes with the last group, and so does its Iommu', () => {
    it('after the last group detaches the old Iommu refuses everything with ERR_VFIO_CLOSED, and a new one maps the same IOVA', () => {
      const { container, group, iommu, buffer } = setup();
      iommu.map(buffer, { iova: 0x10000n });
      group.detach();
      assert.equal(iommu.closed, true);
      assert.equal(container.iommu, null);
      throwsCode(() => iommu.map(buffer, { iova: 0x10000n }), 'ERR_VFIO_CLOSED', /last group left the container/);
      throwsCode(() => iommu.unmapAll(), 'ERR_VFIO_CLOSED');
      throwsCode(() => iommu.findFreeIova(4096n), 'ERR_VFIO_CLOSED');
      group.attach(container);
      const fresh = container.setIommu();
      throwsCode(() => iommu.map(buffer, { iova: 0x10000n }), 'ERR_VFIO_CLOSED', undefined);
      const m = fresh.map(buffer, { iova: 0x10000n });
      assert.deepEqual(fresh.mappings, [m]);
      assert.equal(fake.k.containers[0].mappings.length, 1);
      container.close();
      buffer.close();
    });

    it('an Iommu of a closed container is closed too', () => {
      const { container, iommu, buffer } = setup();
      container.close();
      assert.equal(iommu.closed, true);
      throwsCode(() => iommu.map(buffer), 'ERR_VFIO_CLOSED');
      buffer.close();
    });
  });

  describe('the safety net reaches everything', () => {
    it('a dropped container with a group, a device, a BAR mmap and enabled MSI is collected and every fd closed', async () => {
      const warnings = leakWarnings();
      try {
        (() => {
          const container = Container.open();
          const group = container.openGroup(3);
          container.setIommu();
          const device = group.openDevice(EDU);
          device.bar(0).mmap();
          device.msi.enable();
        })();
        const k = fake.k;
        await collectUntil(() => k.containers[0].fd === -1 && k.groups.get(3)?.open === false && k.eventfds.every((e) => e.fd === -1));
        assert.equal(k.containers[0].fd, -1, 'container fd');
        assert.equal(k.groups.get(3)?.open, false, 'group fd');
        assert.equal(k.groups.get(3)?.openDevices, 0, 'device fd');
        assert.ok(k.eventfds.length === 1 && k.eventfds[0].fd === -1, 'MSI eventfd');
        Group.open(3).close(); // not EBUSY: the group really went
        assert.ok(warnings.list.some((w) => /^group 3 was garbage-collected/.test(w)), warnings.list.join('\n'));
        assert.ok(warnings.list.some((w) => /^device 0000:00:03\.0 was garbage-collected/.test(w)));
      } finally {
        warnings.stop();
      }
    });

    it('an object whose construction failed gives no leak warning later', async () => {
      const warnings = leakWarnings();
      try {
        const container = Container.open();
        const group = container.openGroup(3);
        container.setIommu();
        fake.k.failNext.set('ioctl(VFIO_DEVICE_GET_INFO)', 'EIO');
        throwsCode(() => group.openDevice(EDU), 'EIO');
        assert.equal(fake.k.groups.get(3)?.openDevices, 0, 'the device fd was closed at once');
        for (let i = 0; i < 10; i++) {
          gc();
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.deepEqual(warnings.list, []);
        container.close();
      } finally {
        warnings.stop();
      }
    });
  });

  describe('Irq.wait() and a closing device', () => {
    it('a wait parked when the device closes rejects with ERR_VFIO_CLOSED', async () => {
      const { container, device } = setup();
      device.msi.enable();
      const waiting = device.msi.wait(0);
      device.close();
      await rejectsCode(waiting, 'ERR_VFIO_CLOSED');
      container.close();
    });

    it('a wait with a timeout parked when the device closes rejects with ERR_VFIO_CLOSED, not a timeout', async () => {
      const { container, device } = setup();
      device.msi.enable();
      const waiting = device.msi.wait(0, 5000);
      container.close();
      await rejectsCode(waiting, 'ERR_VFIO_CLOSED');
    });

    it('wait() after close is ERR_VFIO_CLOSED; on an index never enabled ERR_VFIO_ORDER', async () => {
      const { container, device } = setup();
      await rejectsCode(device.msi.wait(0, 100), 'ERR_VFIO_ORDER');
      const msi = device.msi;
      msi.enable();
      device.close();
      await rejectsCode(msi.wait(0, 500), 'ERR_VFIO_CLOSED');
      container.close();
    });

    it('a wait resolves with the count of the next interrupt on its vector', async () => {
      const { container, device } = setup();
      device.msi.enable();
      const waiting = device.msi.wait(0, 5000);
      device.msi.trigger();
      assert.ok((await waiting) >= 1);
      container.close();
    });

    it('a script that awaits wait() on a closed device fails with ERR_VFIO_CLOSED instead of exiting 0 mid-await', () => {
      const root = path.resolve(__dirname, '..', '..');
      const script = `
        const { setNativeBackend } = require('./lib/native');
        const { MockKernel } = require('./lib/testing');
        setNativeBackend(new MockKernel([{ id: 3, devices: ['${EDU}'] }]));
        const { Container } = require('./lib');
        (async () => {
          const c = Container.open(); const g = c.openGroup(3); c.setIommu();
          const d = g.openDevice('${EDU}');
          d.msi.enable(); d.close();
          await d.msi.wait(0, 500);
          console.log('not reached');
        })();`;
      const r = spawnSync(process.execPath, ['-e', script], { cwd: path.join(root), encoding: 'utf8' });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /ERR_VFIO_CLOSED/);
      assert.doesNotMatch(r.stdout, /not reached/);
    });
  });
});
