// Which files of the type1 real-kernel suite (test/vm) the arm64 guest does
// not run, and why. One list: scripts/test.js runs every other test/vm file
// there (a new file runs on arm64 unless it is named here), and
// excluded.test.ts asserts in that guest that each reason still holds.

/** What the arm64 guest lacks that a file needs; excluded.test.ts checks it. */
export type Missing = 'shared-group' | 'kvm' | 'x86-recording' | 'x86-project';

// The shared group (a vfio-pci edu with an e1000e on its host driver) cannot
// be built there: 6.1's SMMUv3 driver refuses a second device behind a
// PCIe-to-PCI bridge (aliased stream ID), and as a second function of edu's
// slot the e1000e (an Intel integrated endpoint) gets its own group from the
// kernel's ACS quirk for those (scripts/guest-arm64/README.md).
export const ARM64_EXCLUDED: Record<string, { missing: Missing; why: string }> = {
  'cli.test.js': {
    missing: 'shared-group',
    why: "drives the x86_64 guest's standard topology (edu A/B/C, the e1000e on its host driver sharing edu B's bridge group)",
  },
  'scoped-bind.test.js': { missing: 'shared-group', why: "binds the e1000e of the x86_64 guest's shared bridge group and gives it back" },
  'shared-group.test.js': { missing: 'shared-group', why: "refuses the x86_64 guest's non-viable shared group (edu B with the e1000e on its host driver)" },
  'kvm.test.js': { missing: 'kvm', why: 'KVM-VFIO needs /dev/kvm; TCG gives the arm64 guest no EL2' },
  'kernel-answers.test.js': {
    missing: 'x86-recording',
    why: "compares with test/fixtures/kernel-answers.json, the x86_64 guest's recording (shared group, KVM, 0xfee00000)",
  },
  'project.test.js': { missing: 'x86-project', why: "names the x86_64 guest; vm-arm64/project.test runs the same check" },
};
