// Group before access: every missing step has its own code, found before
// the kernel is asked.

import assert from 'node:assert/strict';
import { Container, Group } from '../../lib';
import { throwsCode, useFakeKernel } from './fake/setup';

const EDU = '0000:00:03.0';

describe('group before access', () => {
  const fake = useFakeKernel([
    { id: 3, devices: [EDU] },
    { id: 5, devices: ['0000:01:00.0', '0000:01:00.1'], viable: false },
  ]);

  it('refuses a device of a group not attached to a container', () => {
    using group = Group.open(3);
    throwsCode(() => group.openDevice(EDU), 'ERR_VFIO_GROUP_NOT_ATTACHED', /group 3 is not attached.*container\.openGroup\(3\)/);
    assert.ok(!fake.k.calls.includes('ioctl(VFIO_GROUP_GET_DEVICE_FD)'));
  });

  it('refuses a device while the container has no IOMMU model', () => {
    using container = Container.open();
    const group = container.openGroup(3);
    throwsCode(() => group.openDevice(EDU), 'ERR_VFIO_IOMMU_NOT_SET', /setIommu/);
    assert.ok(!fake.k.calls.includes('ioctl(VFIO_GROUP_GET_DEVICE_FD)'));
  });

  it('refuses to attach a non-viable group before SET_CONTAINER', () => {
    using container = Container.open();
    throwsCode(() => container.openGroup(5, { sysfsRoot: '/nonexistent' }), 'ERR_VFIO_GROUP_NOT_VIABLE', /group 5 is not viable/);
    assert.ok(!fake.k.calls.includes('ioctl(VFIO_GROUP_SET_CONTAINER)'));
    // The failed attach closed the group: it can be opened again.
    Group.open(5).close();
  });

  it('refuses to set the IOMMU on a container without groups', () => {
    using container = Container.open();
    throwsCode(() => container.setIommu('type1v2'), 'ERR_VFIO_GROUP_NOT_ATTACHED');
    assert.ok(!fake.k.calls.includes('ioctl(VFIO_SET_IOMMU)'));
  });

  it('refuses an IOMMU model the kernel does not offer', () => {
    using container = Container.open();
    container.openGroup(3);
    throwsCode(() => container.setIommu('spapr-v2'), 'ERR_VFIO_IOMMU_UNSUPPORTED', /offers: type1v2, type1/);
  });

  it('refuses a second IOMMU model', () => {
    using container = Container.open();
    container.openGroup(3);
    container.setIommu();
    throwsCode(() => container.setIommu(), 'ERR_VFIO_IOMMU_ALREADY_SET');
  });

  it('picks type1v2 when no model is named', () => {
    using container = Container.open();
    container.openGroup(3);
    assert.equal(container.setIommu().kind, 'type1v2');
  });

  it('opens a device once every step is done', () => {
    using container = Container.open();
    const group = container.openGroup(3);
    container.setIommu();
    const device = group.openDevice(EDU);
    assert.equal(device.info.pci, true);
    assert.deepEqual(group.devices, [device]);
  });

  it('names the group members when the kernel does not know the device', () => {
    using container = Container.open();
    const group = container.openGroup(3);
    container.setIommu();
    const e = throwsCode(() => group.openDevice('0000:00:09.0'), 'ENODEV', /0000:00:09\.0 is not a device of group 3/);
    assert.equal((e as unknown as { syscall: string }).syscall, 'ioctl(VFIO_GROUP_GET_DEVICE_FD)');
  });

  it('lets the kernel answer a second open of a group with EBUSY, and says it is open here', () => {
    using first = Group.open(3);
    const e = throwsCode(() => Group.open(3), 'EBUSY', /already open in this process/);
    assert.equal((e as unknown as { errno: number }).errno, -16);
    assert.equal((e as unknown as { syscall: string }).syscall, 'open');
    assert.ok(first);
  });

  it('explains a missing group node', () => {
    throwsCode(() => Group.open(42), 'ENOENT', /bind a device of group 42 to vfio-pci/);
  });

  it('refuses bad group ids without a syscall', () => {
    throwsCode(() => Group.open(-1), 'ERR_OUT_OF_RANGE');
    throwsCode(() => Group.open(1.5), 'ERR_OUT_OF_RANGE');
    assert.deepEqual(fake.k.calls, []);
  });
});
