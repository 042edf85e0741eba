// What the real-kernel suite runs against: the test guest's devices
// (scripts/guest/run sets these), or a device of yours on a VFIO host.
// Missing variables fail the suite: it never skips.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface TestEnv {
  /** A device bound to vfio-pci, alone in its group. */
  bdf: string;
  group: number;
  /** A vfio-pci device sharing a group with a device on a host driver (the guest's non-viable group). */
  shared?: { bdf: string; hostBdf: string; group: number };
  /** An edu alone below a PCIe root port (the guest's edu C): a bus reset hits only it. */
  rootPort?: { bdf: string; group: number; port: string };
  /** QEMU's nvme alone below a PCIe root port (npm test's --device nvme,name=nvme), with the serial it was given. */
  nvme?: { bdf: string; group: number; serial: string };
  /** Running inside the project's test guest (root, edu devices, kvm loaded). */
  guest: boolean;
}

export function testEnv(): TestEnv {
  const bdf = process.env.VFIO_TEST_BDF;
  if (!bdf) {
    throw new Error(
      'the real-kernel suite needs VFIO_TEST_BDF: run `npm test` (it boots the test guest), ' +
        'or on a VFIO host set VFIO_TEST_BDF=<address of a device bound to vfio-pci>',
    );
  }
  const group = Number(process.env.VFIO_TEST_GROUP ?? groupOf(bdf));
  const e = process.env;
  const shared =
    e.VFIO_TEST_SHARED_BDF && e.VFIO_TEST_SHARED_HOST_BDF && e.VFIO_TEST_SHARED_GROUP
      ? { bdf: e.VFIO_TEST_SHARED_BDF, hostBdf: e.VFIO_TEST_SHARED_HOST_BDF, group: Number(e.VFIO_TEST_SHARED_GROUP) }
      : undefined;
  const rootPort =
    e.VFIO_TEST_ROOTPORT_BDF && e.VFIO_TEST_ROOTPORT_GROUP && e.VFIO_TEST_ROOTPORT_PORT
      ? { bdf: e.VFIO_TEST_ROOTPORT_BDF, group: Number(e.VFIO_TEST_ROOTPORT_GROUP), port: e.VFIO_TEST_ROOTPORT_PORT }
      : undefined;
  const nvme =
    e.VFIO_GUEST_DEVICE_NVME && e.VFIO_TEST_NVME_SERIAL
      ? { bdf: e.VFIO_GUEST_DEVICE_NVME, group: groupOf(e.VFIO_GUEST_DEVICE_NVME), serial: e.VFIO_TEST_NVME_SERIAL }
      : undefined;
  return { bdf, group, shared, rootPort, nvme, guest: e.VFIO_GUEST === '1' };
}

/**
 * Whether the suite drives KVM too: on a host when it has /dev/kvm; in the
 * x86_64 guest always (the suite boots it with --kvm, so a missing /dev/kvm
 * there fails). The arm64 guest has no KVM: TCG gives its CPU no EL2, and
 * test/vm-arm64 asserts that, so its KVM steps are not dropped silently.
 */
export function expectKvm(env: TestEnv): boolean {
  return existsSync('/dev/kvm') || (env.guest && process.arch === 'x64');
}

/** The guest topology is part of the contract: fail loudly when it is missing. */
export function requireShared(env: TestEnv): NonNullable<TestEnv['shared']> {
  if (!env.shared) {
    throw new Error('this test needs the guest\'s shared group (VFIO_TEST_SHARED_BDF, _HOST_BDF, _GROUP): run it through scripts/guest/run');
  }
  return env.shared;
}

/** The guest's edu below a PCIe root port: fail loudly when it is missing. */
export function requireRootPort(env: TestEnv): NonNullable<TestEnv['rootPort']> {
  if (!env.rootPort) {
    throw new Error('this test needs the guest\'s edu below a PCIe root port (VFIO_TEST_ROOTPORT_BDF, _GROUP, _PORT): run it through scripts/guest/run');
  }
  return env.rootPort;
}

/** The guest's nvme: fail loudly when it is missing. */
export function requireNvme(env: TestEnv): NonNullable<TestEnv['nvme']> {
  if (!env.nvme) {
    throw new Error(
      'this test needs an NVMe controller bound to vfio-pci (VFIO_GUEST_DEVICE_NVME, VFIO_TEST_NVME_SERIAL): run it through `node scripts/test.js vm`, ' +
        'which boots the guest with --device nvme,name=nvme',
    );
  }
  return env.nvme;
}

function groupOf(bdf: string): number {
  return Number(readlinkSync(`/sys/bus/pci/devices/${bdf}/iommu_group`).split('/').pop());
}

/** A reserved IOVA region of a group, as the kernel lists it in sysfs. */
export interface ReservedRegion {
  start: bigint;
  end: bigint;
  type: string;
}

/**
 * The group's reserved regions (/sys/kernel/iommu_groups/N/reserved_regions):
 * the interrupt (MSI) window x86's IOMMU and ARM's SMMU put at different
 * addresses. The suite asks the kernel where it is instead of assuming x86's.
 */
export function reservedRegions(group: number): ReservedRegion[] {
  return readFileSync(`/sys/kernel/iommu_groups/${group}/reserved_regions`, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [start, end, type] = line.trim().split(/\s+/);
      return { start: BigInt(start), end: BigInt(end), type };
    });
}

/** The group's MSI window; every IOMMU the suite runs behind reports one. */
export function msiWindow(group: number): ReservedRegion {
  const msi = reservedRegions(group).find((r) => r.type === 'msi');
  if (!msi) throw new Error(`IOMMU group ${group} lists no msi region in reserved_regions: the suite needs the kernel's interrupt window`);
  return msi;
}

/**
 * The environment of a child run as another user: a clean one, keeping the
 * cross guests' addon override (VFIO_NATIVE_ADDON), without which the
 * child would look for the host's build/.
 */
export function userChildEnv(): NodeJS.ProcessEnv {
  const addon = process.env.VFIO_NATIVE_ADDON;
  return { PATH: process.env.PATH, HOME: '/tmp', ...(addon ? { VFIO_NATIVE_ADDON: addon } : {}) };
}

/** VmLck from /proc/self/status, in kB: what VFIO type1 pins is accounted there. */
export function lockedKb(): number {
  // type1 charges pins to VmLck, iommufd (the compat container too) to VmPin.
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return kb('VmLck') + kb('VmPin');
}

/** Open fds of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Is the device QEMU's edu (1234:11e8)? */
export function isEdu(bdf: string): boolean {
  const read = (f: string) => readFileSync(`/sys/bus/pci/devices/${bdf}/${f}`, 'utf8').trim();
  return read('vendor') === '0x1234' && read('device') === '0x11e8';
}

/**
 * The project is visible in the guest at the host path npm test ran it from
 * (VFIO_TEST_PROJECT: under /tmp, with a space and a comma), so a clone
 * anywhere works. Defined once, run by both guests' suites.
 */
export function itSeesTheProject(): void {
  it('sees the project at its host path, whatever that path is', () => {
    const want = process.env.VFIO_TEST_PROJECT;
    if (process.env.VFIO_GUEST === '1' && !want) throw new Error('VFIO_TEST_PROJECT is not set: run the guest suites through npm test');
    const at = want ?? process.cwd();
    assert.equal(process.cwd(), at);
    assert.equal(JSON.parse(readFileSync(`${at}/package.json`, 'utf8')).name, 'vfio');
    if (want) assert.match(want, /^\/tmp\/.* .*,/, 'npm test runs the guests from a path under /tmp with a space and a comma');
  });
}

/**
 * The container the container suite opens: /dev/vfio/vfio, or with
 * VFIO_TEST_CONTAINER=/dev/iommu the kernel's VFIO-compatible container on
 * an iommufd (the built-kernel guest runs the suite both ways).
 */
export function containerOptions(): { path: string } {
  return { path: process.env.VFIO_TEST_CONTAINER ?? '/dev/vfio/vfio' };
}

/** Is the suite running against the iommufd compat container? */
export function onIommufdCompat(): boolean {
  return containerOptions().path === '/dev/iommu';
}
