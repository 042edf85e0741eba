#!/usr/bin/env node
// npm run demo: boot a test guest with one edu device and run the
// TypeScript edu driver (examples/edu/demo.ts) against it.
//   npm run demo               in the x86_64 guest (Debian's kernel: group + container, type1 IOMMU)
//   npm run demo -- --iommufd  in the x86_64 guest booting the kernel we build (scripts/guest-kernel):
//                              the device's cdev bound to an iommufd, DMA through an IOAS
//   npm run demo -- --ppc64    in the ppc64 guest (sPAPR TCE IOMMU), same driver
//   npm run demo -- --arm64    in the arm64 guest (SMMUv3), same driver
//   npm run demo -- nvme       the NVMe driver (examples/nvme) against QEMU's nvme in the x86_64 guest
//   npm run demo -- <bdf>      on this host, against your edu bound to vfio-pci
//   npm run demo -- vmm        edu passed through to a tiny KVM guest (examples/vmm/demo.ts),
//                              in the x86_64 guest with nested KVM
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const demo = path.join('dist', 'examples', 'edu', 'demo.js');
const sh = (cmd, args) => spawnSync(cmd, args, { stdio: 'inherit', cwd: root }).status ?? 1;

if (!fs.existsSync(path.join(root, 'build', 'Release', 'vfio.node')) && sh('npm', ['run', 'install']) !== 0) process.exit(1);
if (sh(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', '.']) !== 0) process.exit(1);

const arg = process.argv[2];
if (arg === 'nvme') {
  // A 16 MiB namespace on a fresh sparse file, the controller alone below a root port.
  const nvme = path.join('dist', 'examples', 'nvme', 'demo.js');
  process.exitCode = sh(path.join(root, 'scripts', 'guest', 'run'), ['--topology', 'single', '--device', 'nvme,name=nvme,size=16M,serial=vfio-demo-0001', '--', process.execPath, nvme]);
} else if (arg === 'vmm') {
  const vmm = path.join('dist', 'examples', 'vmm', 'demo.js');
  process.exitCode = sh(path.join(root, 'scripts', 'guest', 'run'), ['--topology', 'single', '--kvm', '--', process.execPath, vmm]);
} else if (arg === '--iommufd') {
  process.exitCode = sh(path.join(root, 'scripts', 'guest', 'run'), ['--kernel', 'built', '--topology', 'single', '--', process.execPath, demo, '--iommufd']);
} else if (arg === '--ppc64' || arg === '--arm64') {
  // Debian's node of that architecture in the guest, with the cross-compiled addon.
  process.exitCode = sh(path.join(root, 'scripts', `guest-${arg.slice(2)}`, 'run'), ['--', 'node', demo]);
} else if (arg) {
  process.exitCode = sh(process.execPath, [demo, arg]);
} else {
  process.exitCode = sh(path.join(root, 'scripts', 'guest', 'run'), ['--topology', 'single', '--', process.execPath, demo]);
}
