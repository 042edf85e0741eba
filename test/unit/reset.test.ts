// Hot reset, release requests and peer-to-peer DMA: the rules, checked
// before the syscall against the fake kernel (test/vm/reset.test.ts shows
// what the real one does).

import assert from 'node:assert/strict';
import { Container, DmaBuffer, Group, type Device } from '../../lib';
import type { MockDevice } from '../../lib/testing';
import { C } from '../../lib/testing/kernel';
import { rejectsCode, throwsCode, useFakeKernel } from './fake/setup';

const A = '0000:00:03.0';
const PEER = '0000:02:00.0';
const HOT_RESET = 'ioctl(VFIO_DEVICE_PCI_HOT_RESET)';

function open(group: number, name: string): { container: Container; group: Group; device: Device } {
  const container = Container.open();
  const g = container.openGroup(group);
  container.setIommu();
  return { container, group: g, device: g.openDevice(name) };
}

describe('PCI hot reset', () => {
  const fake = useFakeKernel([
    { id: 3, devices: [A] },
    { id: 8, devices: [PEER] },
    { id: 9, devices: ['0000:02:00.1'] },
  ]);

  it('hotResetInfo() names the devices a bus reset hits and their groups', () => {
    fake.k.hotResetBus.set(PEER, [PEER, '0000:02:00.1']);
    using o = open(8, PEER).container;
    const d = o.groups[0].devices[0];
    assert.deepEqual(d.hotResetInfo(), [
      { address: PEER, group: 8 },
      { address: '0000:02:00.1', group: 9 },
    ]);
  });

  it('a device on the root bus has no hot reset: the kernel\'s ENODEV, with a hint', () => {
    const { container, device } = open(3, A);
    using _ = container;
    throwsCode(() => device.hotResetInfo(), 'ENODEV', /root bus/);
  });

  it('refuses before the ioctl when a group the reset hits is missing, naming it', () => {
    fake.k.hotResetBus.set(PEER, [PEER, '0000:02:00.1']);
    const { container, group, device } = open(8, PEER);
    using _ = container;
    fake.k.calls.length = 0;
    throwsCode(() => device.hotReset(), 'ERR_VFIO_RESET_GROUP_MISSING', /0000:02:00\.1 \(group 9\); pass the open Group object of group 9 too\. Nothing was reset/);
    throwsCode(() => device.hotReset([]), 'ERR_VFIO_RESET_GROUP_MISSING', /groups 8, 9 too/);
    assert.ok(!fake.k.calls.includes(HOT_RESET));
    using other = Group.open(9);
    device.hotReset([group, other]);
    assert.equal((fake.k.devices.at(-1) as MockDevice).hotResets, 1);
  });

  it('refuses closed groups and anything that is not a Group, before the ioctl', () => {
    fake.k.hotResetBus.set(PEER, [PEER]);
    const { container, group, device } = open(8, PEER);
    using _ = container;
    const other = Group.open(9);
    other.close();
    fake.k.calls.length = 0;
    throwsCode(() => device.hotReset([group, other]), 'ERR_VFIO_CLOSED', /group 9: it is closed/);
    throwsCode(() => device.hotReset([group, { id: 8 } as unknown as Group]), 'ERR_INVALID_ARG_TYPE', /groups\[1\]/);
    throwsCode(() => device.hotReset(null as unknown as Group[]), 'ERR_INVALID_ARG_TYPE');
    const getter = [group];
    Object.defineProperty(getter, 0, { get: () => group });
    throwsCode(() => device.hotReset(getter), 'ERR_INVALID_ARG_TYPE', /getter/);
    assert.deepEqual(fake.k.calls, []);
    container.close();
    throwsCode(() => device.hotReset([group]), 'ERR_VFIO_CLOSED');
    throwsCode(() => device.hotResetInfo(), 'ERR_VFIO_CLOSED');
  });
});

describe('release requests', () => {
  const fake = useFakeKernel([{ id: 3, devices: [A] }]);

  it("device.on('release-requested') wires the REQ interrupt and reports each request", async () => {
    const { container, device } = open(3, A);
    using _ = container;
    const raw = fake.k.devices.at(-1) as MockDevice;
    const seen: number[] = [];
    device.on('release-requested', (n) => seen.push(n));
    assert.equal(raw.irqs.get(C.VFIO_PCI_REQ_IRQ_INDEX)?.length, 1);
    const eventfd = fake.k.eventfds.at(-1)!;
    assert.equal(eventfd.referenced, false, 'a release watch does not keep the process alive');
    // A second listener reuses the wiring.
    const once = new Promise<number>((resolve) => device.once('release-requested', resolve));
    assert.equal(fake.k.eventfds.length, 1);
    raw.raise(C.VFIO_PCI_REQ_IRQ_INDEX);
    assert.equal(await once, 1);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [1]);
    device.close();
    assert.equal(eventfd.fd, -1, 'the eventfd closed with the device');
  });

  it('checks its arguments, and refuses on a closed device', () => {
    const { container, device } = open(3, A);
    throwsCode(() => device.on('release' as 'release-requested', () => {}), 'ERR_INVALID_ARG_VALUE');
    throwsCode(() => device.on('release-requested', null as unknown as () => void), 'ERR_INVALID_ARG_TYPE');
    assert.equal(fake.k.eventfds.length, 0, 'nothing was wired');
    container.close();
    throwsCode(() => device.on('release-requested', () => {}), 'ERR_VFIO_CLOSED');
  });
});

describe('peer-to-peer DMA through a BAR mmap', () => {
  const fake = useFakeKernel([
    { id: 3, devices: [A] },
    { id: 8, devices: [PEER] },
  ]);

  it('maps another device\'s BAR mmap in the IOMMU; the mmap and its device cannot close while mapped', () => {
    using container = Container.open();
    const ga = container.openGroup(3);
    const gp = container.openGroup(8);
    const iommu = container.setIommu();
    ga.openDevice(A);
    const peer = gp.openDevice(PEER);
    const bar = peer.bar(0).mmap();
    const m = iommu.map(bar, { iova: 0x1000000n, size: 0x1000 });
    assert.equal(m.buffer, bar);
    assert.deepEqual(bar.users, [m]);
    assert.equal(fake.k.containers[0].mappings.length, 1);
    fake.k.calls.length = 0;
    throwsCode(() => bar.close(), 'ERR_VFIO_BUFFER_IN_USE', /DMA mapping at iova 0x1000000/);
    throwsCode(() => peer.close(), 'ERR_VFIO_BUFFER_IN_USE');
    // Group 8 leaves, group 3 stays: the mapping would outlive the BAR mmap.
    throwsCode(() => gp.close(), 'ERR_VFIO_BUFFER_IN_USE');
    assert.deepEqual(fake.k.calls, [], 'refused before anything closed');
    assert.equal(bar.read32(0), 0x010000ed);
    m.unmap();
    bar.close();
    assert.equal(bar.closed, true);
  });

  it('closing the container takes the peer mapping and the BAR mmap with it', () => {
    const container = Container.open();
    container.openGroup(3);
    const gp = container.openGroup(8);
    const iommu = container.setIommu();
    const bar = gp.openDevice(PEER).bar(0).mmap();
    iommu.map(bar, { iova: 0x1000000n });
    container.close();
    assert.equal(bar.closed, true);
    assert.equal(fake.k.containers[0].mappings.length, 0);
  });

  it("a peer in another container holds its device open until that container's mapping goes", () => {
    const a = open(3, A);
    const p = open(8, PEER);
    const bar = p.device.bar(0).mmap();
    a.container.iommu!.map(bar, { iova: 0x1000000n });
    throwsCode(() => p.container.close(), 'ERR_VFIO_BUFFER_IN_USE');
    assert.equal(p.device.closed, false);
    a.container.close();
    p.container.close();
    assert.equal(bar.closed, true);
  });

  it('refuses a device-writable mapping of a read-only mmap, and checks the range, before the ioctl', () => {
    // The peer's container closes last: its BAR mmap is mapped in a's.
    const p = open(8, PEER);
    using _ = p.container;
    const a = open(3, A);
    using __ = a.container;
    const ro = p.device.bar(0).mmap({ writable: false, size: 0x1000 });
    const iommu = a.container.iommu!;
    fake.k.calls.length = 0;
    throwsCode(() => iommu.map(ro, { iova: 0x1000000n }), 'ERR_VFIO_REGION_ACCESS', /read-only/);
    throwsCode(() => iommu.map(ro, { iova: 0x1000000n, size: 0x2000, writable: false }), 'ERR_VFIO_BUFFER_RANGE');
    throwsCode(() => iommu.map({ size: 0x1000 } as unknown as DmaBuffer), 'ERR_INVALID_ARG_TYPE', /DmaBuffer or a RegionMapping/);
    assert.deepEqual(fake.k.calls, []);
    iommu.map(ro, { iova: 0x1000000n, writable: false });
    throwsCode(() => ro.close(), 'ERR_VFIO_BUFFER_IN_USE');
  });

  it('mapAsync() maps a BAR mmap too', async () => {
    // The peer's container closes last: its BAR mmap is mapped in a's.
    const p = open(8, PEER);
    using _ = p.container;
    const a = open(3, A);
    using __ = a.container;
    const bar = p.device.bar(0).mmap();
    const m = await a.container.iommu!.mapAsync(bar, { iova: 0x1000000n });
    assert.equal(m.buffer, bar);
    throwsCode(() => bar.close(), 'ERR_VFIO_BUFFER_IN_USE');
    const closed = p.device.bar(0).mmap();
    closed.close();
    await rejectsCode(a.container.iommu!.mapAsync(closed, { iova: 0x2000000n }), 'ERR_VFIO_CLOSED');
  });
});

describe('peer-to-peer DMA on sPAPR', () => {
  const fake = useFakeKernel([
    { id: 3, devices: [A] },
    { id: 8, devices: [PEER] },
  ]);

  it('is refused: the TCE IOMMU maps only DmaBuffers', () => {
    fake.k.iommuFamily = 'spapr';
    const container = Container.open();
    using _ = container;
    container.openGroup(3);
    const gp = container.openGroup(8);
    const iommu = container.setIommu('spapr-v2');
    const bar = gp.openDevice(PEER).bar(0).mmap();
    fake.k.calls.length = 0;
    throwsCode(() => iommu.map(bar, { iova: 0n }), 'ERR_VFIO_UNSUPPORTED', /maps only DmaBuffers/);
    assert.deepEqual(fake.k.calls, []);
  });
});
