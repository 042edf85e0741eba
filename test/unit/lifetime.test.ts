// Ownership is a tree: closing a parent closes its children in the order the
// kernel needs, use after close throws, nothing is freed while it can be DMA'd.

import assert from 'node:assert/strict';
import { Container, DmaBuffer, Group } from '../../lib';
import { throwsCode, EDU, openEdu, useFakeKernel } from './fake/setup';


describe('lifetime', () => {
  const fake = useFakeKernel([
    { id: 3, devices: [EDU] },
    { id: 4, devices: ['0000:00:04.0'] },
  ]);

  const setup = openEdu;

  it('closes devices, then mappings, then the group, then the container', () => {
    const { container, iommu, device, buffer } = setup();
    const bar = device.bar(0).mmap();
    device.msi.enable();
    iommu.map(buffer, { iova: 0x10000n });
    fake.k.calls.length = 0;
    container.close();
    const order = fake.k.calls.filter((c) => /SET_IRQS|UNMAP_DMA|UNSET_CONTAINER/.test(c));
    assert.deepEqual(order, ['ioctl(VFIO_DEVICE_SET_IRQS)', 'ioctl(VFIO_IOMMU_UNMAP_DMA)', 'ioctl(VFIO_GROUP_UNSET_CONTAINER)']);
    assert.ok(device.closed && bar.closed && container.closed);
    assert.equal(fake.k.containers[0].mappings.length, 0);
    assert.equal(fake.k.eventfds[0].fd, -1, 'the MSI eventfd is closed');
    buffer.close();
  });

  it('throws ERR_VFIO_CLOSED on any use after close, on parents and children', () => {
    const { container, group, iommu, device, buffer } = setup();
    container.close();
    throwsCode(() => container.checkExtension(1), 'ERR_VFIO_CLOSED', /container .* is closed/);
    throwsCode(() => group.status(), 'ERR_VFIO_CLOSED', /group 3 is closed/);
    throwsCode(() => device.bar(0).read32(0), 'ERR_VFIO_CLOSED', /device 0000:00:03\.0 is closed/);
    throwsCode(() => iommu.map(buffer, { iova: 0n }), 'ERR_VFIO_CLOSED');
    buffer.close();
    throwsCode(() => buffer.arrayBuffer, 'ERR_VFIO_CLOSED');
  });

  it('close() is idempotent and `using` closes', () => {
    let outer: Container;
    {
      using c = Container.open();
      outer = c;
    }
    assert.ok(outer.closed);
    outer.close();
    assert.equal(fake.k.containers[0].fd, -1);
  });

  it('refuses to free a mapped buffer and leaves it usable', () => {
    const { container, iommu, buffer } = setup();
    const m = iommu.map(buffer, { iova: 0x10000n });
    throwsCode(() => buffer.close(), 'ERR_VFIO_BUFFER_IN_USE', /DMA mapping at iova 0x10000.*unmap it first/);
    assert.equal(buffer.closed, false);
    buffer.bytes()[0] = 7;
    m.unmap();
    buffer.close();
    assert.ok(buffer.closed);
    container.close();
  });

  it('detaches the buffer memory on close so views cannot dangle', () => {
    const buffer = DmaBuffer.allocate(4096);
    const view = buffer.bytes();
    buffer.close();
    assert.equal(view.byteLength, 0);
  });

  it('unmaps everything before the last group leaves the container', () => {
    const { container, group, iommu, device, buffer } = setup();
    const m = iommu.map(buffer, { iova: 0x10000n });
    group.detach();
    assert.ok(device.closed, 'devices close before the group leaves');
    assert.ok(m.closed, 'the kernel drops the IOMMU with the last group, so do we');
    assert.equal(container.iommu, null);
    buffer.close();
    container.close();
    assert.equal(group.closed, false, 'a detached group is the caller\'s again');
    group.close();
  });

  it('keeps the IOMMU while another group stays attached', () => {
    const { container, iommu, buffer } = setup();
    const other = container.openGroup(4);
    const m = iommu.map(buffer, { iova: 0x10000n });
    other.close();
    assert.equal(m.closed, false);
    assert.equal(container.iommu, iommu);
    container.close();
    buffer.close();
  });

  it('lets a closed group be opened again', () => {
    const g = Group.open(3);
    g.close();
    Group.open(3).close();
    assert.equal(fake.k.groups.get(3)?.open, false);
  });
});
