// Resets, release requests and peer-to-peer DMA on the real kernel, with
// edu C: the guest's edu alone below a PCIe root port, where a secondary bus
// reset hits only it (edu A sits on the root bus: no reset method at all).
//
// What a reset shows on edu: QEMU's edu has no reset handler of its own, so
// its registers survive; the PCI core's part of the reset is what changes.
// edu raises INTx (MSI off) and PCI_STATUS bit 3 (Interrupt Status) goes up;
// the reset deasserts the line and clears the bit, while edu's own interrupt
// status register still says 1. The kernel restores the saved config space
// afterwards (the command register comes back as it was).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { Container, DmaBuffer, Group, type Device } from '../../lib';
import { native } from '../../lib/native';
import { Edu } from '../../examples/edu/edu';
import { fdCount, requireRootPort, testEnv, type TestEnv } from './env';
import { errorOf, rawType1 } from './raw';

const LIVENESS = 0x04;
const IRQ_STATUS = 0x24;
const IRQ_RAISE = 0x60;
const IRQ_ACK = 0x64;
const DMA_SRC = 0x80;
const PCI_COMMAND = 0x04;
const PCI_STATUS = 0x06;
const STATUS_INTX = 0x08;

/** Registers and config-space words a reset may or may not change, as evidence. */
function state(d: Device): { liveness: number; irqStatus: number; command: number; status: number } {
  const bar = d.bar(0);
  return { liveness: bar.read32(LIVENESS), irqStatus: bar.read32(IRQ_STATUS), command: d.config.read16(PCI_COMMAND), status: d.config.read16(PCI_STATUS) };
}

/** edu raises INTx (MSI is off), so PCI_STATUS bit 3 goes up. */
function raiseIntx(d: Device): void {
  d.bar(0).write32(IRQ_RAISE, 0x1);
  d.bar(0).write32(LIVENESS, 0x12345678);
}

const hex = (n: number) => `0x${n.toString(16)}`;

describe('resets, release requests and peer-to-peer DMA on the real kernel', () => {
  let env: TestEnv;
  let c: NonNullable<TestEnv['rootPort']>;
  before(() => {
    env = testEnv();
    c = requireRootPort(env);
  });

  describe('reset (edu C below a root port)', () => {
    let container: Container;
    let group: Group;
    let device: Device;
    beforeEach(() => {
      container = Container.open();
      group = container.openGroup(c.group);
      container.setIommu();
      device = group.openDevice(c.bdf);
    });
    afterEach(() => {
      device.bar(0).write32(IRQ_ACK, 0x1);
      container.close();
    });

    it('offers VFIO_DEVICE_RESET below the root port (a bus reset), none on the root bus', () => {
      assert.equal(device.info.resettable, true);
      assert.equal(readFileSync(`/sys/bus/pci/devices/${c.bdf}/reset_method`, 'utf8').trim(), 'bus');
      assert.equal(existsSync(`/sys/bus/pci/devices/${env.bdf}/reset_method`), false, 'edu A has no reset method');
    });

    it('device.reset(): INTx status bit set before, clear after; edu\'s own registers survive, the command register is restored', () => {
      raiseIntx(device);
      const before = state(device);
      device.reset();
      const after = state(device);
      console.log(`      edu C before reset: ${JSON.stringify(before, (_k, v) => (typeof v === 'number' ? hex(v) : v))}`);
      console.log(`      edu C after reset:  ${JSON.stringify(after, (_k, v) => (typeof v === 'number' ? hex(v) : v))}`);
      assert.equal(before.status & STATUS_INTX, STATUS_INTX);
      assert.equal(after.status & STATUS_INTX, 0, 'the reset deasserted INTx');
      assert.equal(after.irqStatus, 0x1, 'edu has no reset handler: its own irq status stays');
      assert.equal(after.liveness, ~0x12345678 >>> 0);
      assert.equal(after.command, before.command, 'the kernel restored the saved config space');
    });

    it('hotResetInfo() lists the devices a bus reset hits with their groups; edu A on the root bus has none (ENODEV)', () => {
      assert.deepEqual(device.hotResetInfo(), [{ address: c.bdf, group: c.group }]);
      using ca = Container.open();
      const ga = ca.openGroup(env.group);
      ca.setIommu();
      const a = ga.openDevice(env.bdf);
      assert.throws(() => a.hotResetInfo(), { code: 'ENODEV', syscall: 'ioctl(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO)' });
    });

    it('hotReset() without the group it hits is refused before the ioctl, naming it; nothing was reset', () => {
      raiseIntx(device);
      using other = Group.open(env.group);
      assert.throws(() => device.hotReset([]), { code: 'ERR_VFIO_RESET_GROUP_MISSING', message: new RegExp(`${c.bdf} \\(group ${c.group}\\).*group ${c.group} too`) });
      assert.throws(() => device.hotReset([other]), { code: 'ERR_VFIO_RESET_GROUP_MISSING', message: new RegExp(`group ${c.group}`) });
      other.close();
      assert.throws(() => device.hotReset([group, other]), { code: 'ERR_VFIO_CLOSED', message: /group \d+: it is closed/ });
      assert.throws(() => device.hotReset([group, {} as Group]), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.equal(state(device).status & STATUS_INTX, STATUS_INTX, 'no reset happened');
    });

    it('the kernel refuses the same hot resets with EINVAL (below the rules)', () => {
      container.close();
      const raw = rawType1(c.group);
      const a = native().openGroup(`/dev/vfio/${env.group}`);
      const d = raw.group.getDeviceFd(c.bdf);
      try {
        const none = errorOf(() => d.pciHotReset([]));
        const wrong = errorOf(() => d.pciHotReset([a]));
        console.log(`      kernel: no groups -> ${none?.code}, edu A's group -> ${wrong?.code}; its own group -> ok`);
        assert.equal(none?.code, 'EINVAL');
        assert.equal(wrong?.code, 'EINVAL');
        assert.equal(none?.syscall, 'ioctl(VFIO_DEVICE_PCI_HOT_RESET)');
        d.pciHotReset([raw.group]);
      } finally {
        d.close();
        a.close();
        raw.close();
      }
      // afterEach closes again: reopen so it has something to close.
      container = Container.open();
      group = container.openGroup(c.group);
      container.setIommu();
      device = group.openDevice(c.bdf);
    });

    it('hotReset() with the group resets the bus: INTx status bit set before, clear after', () => {
      raiseIntx(device);
      const before = state(device);
      device.hotReset([group]);
      const after = state(device);
      console.log(`      edu C before hot reset: status ${hex(before.status)} irq status ${hex(before.irqStatus)}; after: status ${hex(after.status)} irq status ${hex(after.irqStatus)}`);
      assert.equal(before.status & STATUS_INTX, STATUS_INTX);
      assert.equal(after.status & STATUS_INTX, 0);
      assert.equal(after.command, before.command);
      // The default proves ownership with the device's own group.
      raiseIntx(device);
      device.hotReset();
      assert.equal(state(device).status & STATUS_INTX, 0);
    });
  });

  describe('release requests', () => {
    it('another process unbinding the device raises release-requested; the driver closes, the unbind completes', async () => {
      const fds = fdCount();
      const container = Container.open();
      const group = container.openGroup(c.group);
      container.setIommu();
      const device = group.openDevice(c.bdf);
      const events: string[] = [];
      let unbind: Promise<number | null> | undefined;
      const requested = new Promise<number>((resolve) => {
        device.on('release-requested', (n) => {
          events.push(`release-requested(${n})`);
          device.close();
          events.push('device closed');
          resolve(n);
        });
      });
      try {
        const child = spawn('sh', ['-c', `echo ${c.bdf} > /sys/bus/pci/drivers/vfio-pci/unbind`], { stdio: 'inherit' });
        unbind = new Promise((resolve) => child.on('exit', (code) => (events.push(`unbind exited ${code}`), resolve(code))));
        const n = await requested;
        assert.ok(n >= 1);
        assert.equal(await unbind, 0);
        console.log(`      ${events.join(' -> ')}`);
        assert.deepEqual(events, ['release-requested(1)', 'device closed', 'unbind exited 0']);
        assert.equal(existsSync(`/sys/bus/pci/devices/${c.bdf}/driver`), false, 'the device left vfio-pci');
        // The kernel took the group out of the container when its last device left.
        container.close();
        assert.equal(group.closed, true);
        assert.equal(fdCount(), fds, 'the request eventfd closed with the device');
      } finally {
        if (unbind) await unbind;
        container.close();
        // Give the device back to vfio-pci (driver_override still says so) for the tests after this one.
        if (!existsSync(`/sys/bus/pci/devices/${c.bdf}/driver`)) writeFileSync('/sys/bus/pci/drivers_probe', c.bdf);
      }
      assert.match(readlinkSync(`/sys/bus/pci/devices/${c.bdf}/driver`), /\/vfio-pci$/);
      assert.ok(existsSync(`/dev/vfio/${c.group}`));
    });
  });

  describe('peer-to-peer DMA', () => {
    let container: Container;
    let edu: Edu;
    let peer: Device;
    beforeEach(() => {
      container = Container.open();
      const ga = container.openGroup(env.group);
      const gc = container.openGroup(c.group);
      container.setIommu();
      edu = new Edu(ga.openDevice(env.bdf));
      peer = gc.openDevice(c.bdf);
    });
    afterEach(() => container.close());

    it("edu A's DMA engine writes edu C's registers through C's BAR mmap mapped at an IOVA", async () => {
      const iommu = container.iommu!;
      const bar = peer.bar(0).mmap();
      const p2p = iommu.map(bar, { iova: 0x1000000n });
      assert.equal(p2p.buffer, bar);
      assert.deepEqual(bar.users, [p2p]);
      using buf = DmaBuffer.allocate(4096);
      const ram = iommu.map(buf, { iova: 0x2000000n });
      const src = Buffer.from(buf.arrayBuffer);
      src.writeUInt32LE(0x11223344, 0);
      src.writeBigUInt64LE(0xbadc0de000n, 8);
      bar.write32(LIVENESS, 0);
      bar.write64(DMA_SRC, 0n);
      const before = { liveness: bar.read32(LIVENESS), dmaSrc: bar.read64(DMA_SRC) };
      await edu.toDevice(ram.iova, 16);
      // Device -> "RAM": the IOVA is edu C's register file.
      await edu.toRam(p2p.iova + BigInt(LIVENESS), 4, 0);
      await edu.toRam(p2p.iova + BigInt(DMA_SRC), 8, 8);
      const after = { liveness: bar.read32(LIVENESS), dmaSrc: bar.read64(DMA_SRC) };
      console.log(`      edu C before: liveness ${hex(before.liveness)} dma src 0x${before.dmaSrc.toString(16)}; after edu A's DMA: liveness ${hex(after.liveness)} dma src 0x${after.dmaSrc.toString(16)}`);
      assert.equal(after.liveness, ~0x11223344 >>> 0, 'edu C inverted the word edu A wrote to its liveness register');
      assert.equal(after.dmaSrc, 0xbadc0de000n, 'edu C holds the 8 bytes edu A wrote to its DMA source register');
      ram.unmap();
    });

    it('the BAR mmap and its device cannot close while a peer mapping uses it; after the unmap they can', () => {
      const iommu = container.iommu!;
      const bar = peer.bar(0).mmap();
      const p2p = iommu.map(bar, { iova: 0x1000000n });
      assert.throws(() => bar.close(), { code: 'ERR_VFIO_BUFFER_IN_USE', message: /DMA mapping at iova 0x1000000/ });
      assert.throws(() => peer.close(), { code: 'ERR_VFIO_BUFFER_IN_USE' });
      assert.equal(bar.closed, false);
      assert.equal(peer.closed, false);
      assert.equal(bar.read32(0), 0x010000ed, 'the refusals changed nothing');
      p2p.unmap();
      assert.deepEqual(bar.users, []);
      bar.close();
      peer.close();
    });

    it('closing the container takes the peer mapping and the BAR mmap with it', () => {
      const bar = container.iommu!.map(peer.bar(0).mmap(), { iova: 0x1000000n }).buffer;
      container.close();
      assert.equal(bar.closed, true);
      assert.equal(peer.closed, true);
    });
  });
});
