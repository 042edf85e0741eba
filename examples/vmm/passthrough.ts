// A tiny VM manager in TypeScript passing QEMU's edu device through to a
// guest with no JavaScript in the data path:
//   - guest RAM is one memfd that is both a KVM memory slot and an IOMMU
//     mapping at IOVA = guest physical, so edu DMAs straight into the guest;
//   - edu's BAR 0 mmap is a memory slot: the guest's register accesses reach
//     the device with no exit;
//   - edu's interrupt reaches the guest through an irqfd: MSI routed to the
//     guest's local APIC, or INTx through the PIC with a resample eventfd
//     (the guest's EOI unmasks the line in VFIO, inside the kernel).
// The guest is a few bytes of real-mode code (guest-msi.s, guest-intx.s,
// assembled with `as --32` and `objcopy -O binary`); it ends with one port
// write, the only exit it makes.

import { Container, DmaBuffer, Kvm, type Device, type Irq, type Vcpu, type VcpuExit, type Vm } from '../../lib';

/** Guest physical layout (one 64 KiB memfd of RAM, edu's first BAR page above it). */
export const RAM_SIZE = 0x10000;
const CODE = 0x1000;
const STACK = 0x8000;
const DMA_SRC = 0x2000;
const DMA_DST = 0x3000;
const DMA_BYTES = 64;
const LIVENESS_OUT = 0x500;
const MSI_STATUS_OUT = 0x504;
const INTX_STATUS_OUT = 0x510;
const COUNTER = 0x600;
/** edu's BAR page in guest physical memory: real-mode segment 0x2000. */
export const EDU_GPA = 0x20000;
const LAPIC = 0xfee00000;
/** The port the guest writes when it is done (its only exit). */
export const DONE_PORT = 0x10;

const MSI_VECTOR = 0x40;
const MSI_GSI = 24;
const INTX_GSI = 5; // PIC master pin 5: vector 0x20 + 5 as the guest programs the PIC
const INTX_VECTOR = 0x25;

// guest-msi.s: enable the LAPIC, liveness write/read, DMA RAM -> edu -> RAM
// with an MSI on completion, wait for the MSI handler, write DONE_PORT.
const GUEST_MSI = Buffer.from('fa6466c706f000ff0100002666c7060400785634122666a1040066a300052666c7068000002000002666c7068800000004002666c7069000400000002666c7069800010000002666f70698000100000075f42666c7068000000004002666c7068800003000002666c7069000400000002666c706980007000000fa833e0006017304fbf4ebf4a10006e610f466502666a1240066a304052666a36400ff0600066466c706b000000000006658cf', 'hex');
const GUEST_MSI_HANDLER = 0x8c;
// guest-intx.s: program the PIC, raise edu's INTx twice (the second arrives
// only if the first was EOI'd and the line unmasked), write DONE_PORT.
const GUEST_INTX = Buffer.from('fa6466c706f000ff0100006466c706500300070000b011e620b020e621b004e621b001e621b0dfe6212666c706600001000000fa833e0006017304fbf4ebf42666c706600002000000fa833e0006027304fbf4ebf4a10006e610f4665066532666a12400660fb71e0006676689049d100500002666a36400ff060006b020e620665b6658cf', 'hex');
const GUEST_INTX_HANDLER = 0x5b;

export interface PassthroughOptions {
  /** VFIO group and device address of an edu bound to vfio-pci. */
  group: number;
  bdf: string;
  /** Give up on the guest after this long (default 20 s: edu DMAs on a 100 ms timer, under TCG). */
  timeoutMs?: number;
}

export interface PassthroughResult {
  /** Why the vCPU came back (the guest's port write) and every exit it made. */
  exit: VcpuExit;
  /** Interrupts the guest's handler counted. */
  interrupts: number;
  /** What the guest read back from edu's liveness register (edu inverts 0x12345678). */
  liveness?: number;
  /** The 64 bytes edu wrote into guest RAM equal the ones it read from it. */
  dmaMatches?: boolean;
  /** edu's interrupt status as the guest's handler read it, per interrupt. */
  statuses: number[];
  /** 'interrupt' events JS saw on the vector while KVM held it (0: nothing came up to JS). */
  jsEvents: number;
}

interface Machine {
  vm: Vm;
  device: Device;
  ram: DmaBuffer;
  vcpu: Vcpu;
  close(): void;
}

/**
 * The VMM's setup, in the order the kernel documents: the group joins the
 * VM's KVM-VFIO device before its device opens; RAM is mapped for both KVM
 * and the IOMMU; the vCPU starts in real mode at CODE.
 */
function machine(options: PassthroughOptions, code: Buffer, vector: number, handler: number): Machine {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  kvm.close(); // the VM keeps KVM open on its own
  const container = Container.open();
  const ram = DmaBuffer.memfd(RAM_SIZE);
  try {
    const group = container.openGroup(options.group);
    vm.vfioDevice().add(group);
    const iommu = container.setIommu();
    const device = group.openDevice(options.bdf);
    device.setBusMaster(true);
    vm.createIrqchip();
    const bytes = ram.bytes();
    bytes.fill(0);
    bytes.set(code, CODE);
    new DataView(ram.arrayBuffer).setUint32(vector * 4, handler + CODE, true); // IVT: offset, segment 0
    for (let i = 0; i < DMA_BYTES; i++) bytes[DMA_SRC + i] = (i * 7 + 3) & 0xff;
    iommu.map(ram, { iova: 0n }); // IOVA = guest physical
    vm.mapMemory({ guestPhys: 0n, memory: ram });
    const bar = device.bar(0).mmap();
    vm.mapMemory({ guestPhys: EDU_GPA, memory: bar, size: 0x1000 });
    const vcpu = vm.createVcpu(0);
    vcpu.setSegment('cs', 0);
    vcpu.setSegment('ds', 0);
    vcpu.setSegment('ss', 0);
    vcpu.setSegment('es', EDU_GPA >> 4);
    vcpu.setSegment('fs', 0, LAPIC);
    vcpu.setRegs({ rip: BigInt(CODE), rsp: BigInt(STACK), rflags: 2n });
    return {
      vm,
      device,
      ram,
      vcpu,
      close() {
        // Any order works: the library removes KVM's uses first.
        vm.close();
        container.close();
        ram.close();
      },
    };
  } catch (e) {
    vm.close();
    container.close();
    ram.close();
    throw e;
  }
}

/** One turn of the event loop, so any 'interrupt' event JS was due would have arrived. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 50));
}

function counted(irq: Irq): { events: number } {
  const seen = { events: 0 };
  irq.on('interrupt', () => seen.events++);
  return seen;
}

/** MSI: edu's DMA-completion MSI delivered to the guest's local APIC through an irqfd. */
export async function runMsiPassthrough(options: PassthroughOptions): Promise<PassthroughResult> {
  const m = machine(options, GUEST_MSI, MSI_VECTOR, GUEST_MSI_HANDLER);
  try {
    const msi = m.device.msi;
    msi.enable();
    const js = counted(msi);
    // Fixed delivery to APIC id 0, edge-triggered, at the guest's vector.
    m.vm.routeMsi(MSI_GSI, { address: BigInt(LAPIC), data: MSI_VECTOR });
    m.vm.irqfd(msi, { gsi: MSI_GSI });
    const exit = m.vcpu.run({ timeoutMs: options.timeoutMs ?? 20000 });
    await settle();
    const view = new DataView(m.ram.arrayBuffer);
    const bytes = m.ram.bytes();
    return {
      exit,
      interrupts: view.getUint16(COUNTER, true),
      liveness: view.getUint32(LIVENESS_OUT, true),
      dmaMatches: Buffer.compare(bytes.subarray(DMA_SRC, DMA_SRC + DMA_BYTES), bytes.subarray(DMA_DST, DMA_DST + DMA_BYTES)) === 0,
      statuses: [view.getUint32(MSI_STATUS_OUT, true)],
      jsEvents: js.events,
    };
  } finally {
    m.close();
  }
}

/** INTx with resample: two level-triggered interrupts through the PIC, the line unmasked by the guest's EOI. */
export async function runIntxPassthrough(options: PassthroughOptions): Promise<PassthroughResult> {
  const m = machine(options, GUEST_INTX, INTX_VECTOR, GUEST_INTX_HANDLER);
  try {
    const intx = m.device.intx;
    intx.enable();
    const js = counted(intx);
    m.vm.irqfd(intx, { gsi: INTX_GSI, resample: true });
    const exit = m.vcpu.run({ timeoutMs: options.timeoutMs ?? 20000 });
    await settle();
    const view = new DataView(m.ram.arrayBuffer);
    const interrupts = view.getUint16(COUNTER, true);
    const statuses = [];
    for (let i = 0; i < interrupts; i++) statuses.push(view.getUint32(INTX_STATUS_OUT + 4 * i, true));
    return { exit, interrupts, statuses, jsEvents: js.events };
  } finally {
    m.close();
  }
}
