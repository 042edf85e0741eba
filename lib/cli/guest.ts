// `vfio guest`: run a command of your project inside the package's test
// guest (QEMU with an emulated IOMMU and a stock kernel: a real /dev/vfio),
// with the devices you ask for. The guest scripts ship in the package
// (scripts/guest/, scripts/guest-ppc64/, scripts/guest-arm64/); this only finds them and hands the
// command line over. Exit status and output are the command's; 124 the guest
// timed out, 125 it could not run the command.

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { type CliIo, UsageError, quote } from './output';

export const GUEST_USAGE = `Usage: vfio guest [options] -- <command> [args...]

Run <command> in the test guest (QEMU, emulated IOMMU, Debian kernel, real
/dev/vfio), in this directory (shared with the guest), as root. Its output and
exit status are the command's; 124 the guest timed out, 125 it could not run.

Options:
  --device SPEC     add a device (repeatable): KIND[,name=N][,file=IMG][,size=64M][,serial=S]
                    [,bridge=B][,root][,host]; KIND edu | nvme | e1000e. Each sits
                    behind a PCIe root port of its own (its own IOMMU group);
                    bridge=B puts it behind PCIe-to-PCI bridge B with the others
                    named B (one shared group); root on the root complex; host
                    leaves it on its host driver. Bound to vfio-pci otherwise.
                    The command finds it in VFIO_GUEST_DEVICE_<NAME> (edu0, nvme0, ...)
  --topology T      the guest's own devices: single (edu A, the default) or
                    standard (edu A, and edu B sharing a group with an e1000e)
  --arch A          x86_64 (default), ppc64 (sPAPR) or arm64 (SMMUv3); the last
                    two take no --device, --kvm and see only the package
                    folder, so run from inside that
  --kvm             load KVM in the guest (/dev/kvm, nested)
  --kernel K        debian (the default: Debian's stock kernel, modules
                    loaded) or built (the project's own, scripts/guest-kernel/
                    build: adds /dev/iommu, /dev/vfio/devices/vfioN, noiommu;
                    the first run builds it, several minutes, then cached)
  --no-iommu        no IOMMU in the guest, VFIO's noiommu mode on: groups are
                    /dev/vfio/noiommu-N (needs --kernel built, topology single)
  --hugepages N     reserve N huge pages, hugetlbfs on /dev/hugepages
  --smp N           guest CPUs (1 to 8; one boots fastest)
  --timeout SEC     stop the guest after SEC seconds (default 900)
  --out DIR         a writable folder at the same path in the guest
  --env NAME=VALUE  environment for the command (repeatable)
  --cwd DIR         the command's directory (default: this one)
  -h, --help        show this help

The command also gets VFIO_GUEST=1, VFIO_TEST_BDF and VFIO_TEST_GROUP (edu A),
VFIO_GUEST_DEVICES ("name=bdf ..."). Needs qemu-system-x86 (or -ppc, -arm), busybox-static,
cpio, kmod, xz-utils; the first run fetches a Debian kernel into the package's .cache/.
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  device: { type: 'string', multiple: true },
  topology: { type: 'string' },
  arch: { type: 'string' },
  kvm: { type: 'boolean' },
  kernel: { type: 'string' },
  'no-iommu': { type: 'boolean' },
  hugepages: { type: 'string' },
  smp: { type: 'string' },
  timeout: { type: 'string' },
  out: { type: 'string' },
  env: { type: 'string', multiple: true },
  cwd: { type: 'string' },
} as const;

/** The package root: dist/lib/cli (or lib/cli) is two or three levels below it. */
function packageRoot(): string {
  const up = path.basename(path.resolve(__dirname, '..', '..')) === 'dist' ? 3 : 2;
  return path.resolve(__dirname, ...Array(up).fill('..'));
}

/** The guest run script's command line for `vfio guest <argv>`; UsageError on a bad one. */
export function guestCommandLine(argv: string[], cwd: string): { script: string; args: string[] } {
  const end = argv.indexOf('--');
  if (end === -1 || end === argv.length - 1) throw new UsageError('guest: give the command after --, e.g. vfio guest -- npm test');
  let values;
  try {
    ({ values } = parseArgs({ args: argv.slice(0, end), options: OPTIONS, allowPositionals: false, strict: true }));
  } catch (e) {
    throw new UsageError(`guest: ${(e as Error).message}`);
  }
  const arch = values.arch ?? 'x86_64';
  if (arch !== 'x86_64' && arch !== 'ppc64' && arch !== 'arm64') throw new UsageError(`guest: --arch is x86_64, ppc64 or arm64, not ${quote(arch)}`, '--arch');
  const topology = values.topology ?? 'single';
  if (topology !== 'single' && topology !== 'standard') throw new UsageError(`guest: --topology is single or standard, not ${quote(topology)}`, '--topology');
  const kernel = values.kernel;
  if (kernel !== undefined && kernel !== 'debian' && kernel !== 'built') throw new UsageError(`guest: --kernel is debian or built, not ${quote(kernel)}`, '--kernel');
  if (values['no-iommu'] && kernel !== 'built') throw new UsageError("guest: --no-iommu needs --kernel built (Debian's kernels have no CONFIG_VFIO_NOIOMMU)", '--no-iommu');
  if (values['no-iommu'] && topology !== 'single') throw new UsageError('guest: --no-iommu takes --topology single (without an IOMMU no devices share a group)', '--topology');
  const number = (name: 'hugepages' | 'smp' | 'timeout', v: string | undefined) => {
    if (v !== undefined && !/^[0-9]{1,6}$/.test(v)) throw new UsageError(`guest: --${name} wants a whole number, not ${quote(v)}`, `--${name}`);
    return v;
  };
  const args: string[] = [];
  const add = (flag: string, v: string | undefined) => v !== undefined && args.push(flag, v);
  const dir = path.resolve(cwd, values.cwd ?? '.');
  if (arch !== 'x86_64') {
    for (const flag of ['device', 'kvm', 'topology', 'smp', 'kernel', 'no-iommu'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`guest: --${flag} is for the x86_64 guest`, `--${flag}`);
    }
    // The cross guests run Debian's userland of their architecture and see only the package folder of the host.
    const root = packageRoot();
    if (path.relative(root, dir).startsWith('..')) {
      throw new UsageError(`guest: the ${arch} guest sees only the package folder (${root}), not ${dir}; run from inside it, or use the x86_64 guest`, '--cwd');
    }
  } else {
    add('--kernel', kernel);
    if (values['no-iommu']) args.push('--no-iommu');
    add('--topology', topology);
    if (values.kvm) args.push('--kvm');
    add('--smp', number('smp', values.smp));
    for (const d of values.device ?? []) args.push('--device', d);
  }
  add('--hugepages', number('hugepages', values.hugepages));
  add('--timeout', number('timeout', values.timeout));
  add('--out', values.out && path.resolve(cwd, values.out));
  for (const e of values.env ?? []) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(e)) throw new UsageError(`guest: --env wants NAME=VALUE, not ${quote(e)}`, '--env');
    args.push('--env', e);
  }
  args.push('--cwd', dir, '--', ...argv.slice(end + 1));
  const script = path.join(packageRoot(), 'scripts', arch === 'x86_64' ? 'guest' : `guest-${arch}`, 'run');
  return { script, args };
}

/** Runs the command in the guest with our stdio; returns its exit status. */
export function guestCommand(argv: string[], io: CliIo): number {
  const own = argv.slice(0, argv.indexOf('--') >>> 0);
  if (own.includes('-h') || own.includes('--help')) {
    io.stdout(GUEST_USAGE);
    return 0;
  }
  const { script, args } = guestCommandLine(argv, process.cwd());
  const r = spawnSync(script, args, { stdio: 'inherit' });
  if (r.error) throw Object.assign(new Error(`cannot start ${script}: ${r.error.message}`), { code: (r.error as NodeJS.ErrnoException).code });
  return r.status ?? 128 + (r.signal === 'SIGINT' ? 2 : 15);
}
