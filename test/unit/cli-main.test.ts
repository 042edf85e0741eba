import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { guestCommandLine } from '../../lib/cli/guest';
import { run } from '../../lib/cli/main';
import { type CliError, INTERNAL_FIX, USAGE_FIX, describeFailure } from '../../lib/cli/output';
import { ArgCode } from '../../lib/args';
import { RuleCode, VfioSystemError } from '../../lib/errors';
import type { BindOptions } from '../../lib/sysfs';
import { type Fixture, type FixtureSpec, buildFixture, snapshotTree } from '../fixtures/sysfs-tree';
import { debian61Spec, hostSpec, iommufdSpec, noIommuSpec, noiommuSpec } from '../fixtures/topologies';

interface Result {
  status: number;
  out: string;
  err: string;
}

interface CliOptions {
  isTTY?: boolean;
  env?: Record<string, string | undefined>;
  lib?: Partial<BindOptions>;
}

/** Runs the CLI in-process against a fixture, with the fixture's fake kernel writing sysfs. */
function cli(f: Fixture | null, argv: string[], o: CliOptions = {}): Result {
  let out = '';
  let err = '';
  const roots = f === null ? [] : ['--sysfs-root', f.sysfsRoot, '--dev-root', f.devRoot, '--proc-root', f.procRoot, '--boot-root', f.bootRoot, '--run-root', f.runRoot];
  const status = run(
    [...argv, ...roots],
    { stdout: (t) => void (out += t), stderr: (t) => void (err += t), env: o.env ?? {}, isTTY: o.isTTY ?? false },
    { ...(f === null ? {} : { writer: f.opts.writer }), credentials: { uid: 0, gids: [0] }, ...o.lib },
  );
  return { status, out, err };
}

const ESC = '\x1b[';

/**
 * A failed command under --json: stdout is exactly one JSON object,
 * {"error": {...}} with a string code, a message and a fix (string or null);
 * stderr has the same message as text. Returns the error object.
 */
function jsonFailure(r: Result, status: number, code: string): CliError {
  assert.equal(r.status, status, r.err);
  const parsed = JSON.parse(r.out) as { error: CliError };
  assert.deepEqual(Object.keys(parsed), ['error']);
  const e = parsed.error;
  assert.equal(e.code, code);
  assert.equal(typeof e.message, 'string');
  assert.ok(e.fix === null || typeof e.fix === 'string', 'fix is a string or null');
  assert.ok(r.err.startsWith(`vfio: ${e.message}\n`), r.err);
  return e;
}

describe('vfio CLI', () => {
  let f: Fixture;
  const fresh = (spec: FixtureSpec = hostSpec()): Fixture => {
    f?.remove();
    return (f = buildFixture(spec));
  };
  afterEach(() => f?.remove());

  describe('usage', () => {
    it('--help prints the usage and exits 0', () => {
      const r = cli(null, ['--help']);
      assert.equal(r.status, 0);
      assert.match(r.out, /^Usage: vfio <command> \[options\]/);
    });

    it('--version prints the package version', () => {
      const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../../../package.json'), 'utf8')) as { version: string };
      assert.deepEqual(cli(null, ['--version']), { status: 0, out: `${pkg.version}\n`, err: '' });
    });

    it('no command is a usage error: exit 2 and a pointer to --help', () => {
      assert.deepEqual(cli(null, []), { status: 2, out: '', err: "vfio: missing command (list, bind, unbind, doctor, guest)\nTry 'vfio --help'.\n" });
    });

    it('an unknown command exits 2', () => {
      assert.equal(cli(null, ['frobnicate']).status, 2);
    });

    it('an unknown option exits 2', () => {
      const r = cli(null, ['list', '--bogus']);
      assert.equal(r.status, 2);
      assert.match(r.err, /^vfio: Unknown option '--bogus'/);
    });

    it('an option of another command exits 2', () => {
      assert.deepEqual(cli(null, ['list', '--map', '1G']).err, "vfio: option --map does not apply to 'list'\nTry 'vfio --help'.\n");
    });

    it('a malformed device exits 2 without touching sysfs', () => {
      const fx = fresh();
      const r = cli(fx, ['bind', '00:04']);
      assert.equal(r.status, 2);
      assert.match(r.err, /^vfio: '00:04' is not a PCI address/);
      assert.equal(fx.kernel.writes.length, 0);
    });
  });

  describe('list', () => {
    it('prints a table of groups and devices, then why the non-viable groups are not viable', () => {
      const r = cli(fresh(), ['list']);
      assert.equal(r.status, 0);
      const lines = r.out.split('\n');
      assert.match(lines[0]!, /^GROUP +VIABLE +DEVICE +ID +CLASS +DRIVER +OVERRIDE +NODE +OPEN$/);
      assert.match(r.out, /\n4 +no +0000:00:04.0 +1234:11e8 +unclassified \(00ff00\) +vfio-pci +vfio-pci +\S+\/vfio\/4 \(rw\) +group 4\n +0000:00:04.1 +8086:10d3 +network \(020000\) +e1000e +- +-\n/);
      assert.match(r.out, /\n3 +yes +0000:00:03.0 +1234:11e8 +unclassified \(00ff00\) +- +- +- +-\n/);
      const reasons = r.out.slice(r.out.indexOf('\n\n') + 2).split('\n');
      assert.deepEqual(reasons, [
        'group 4 is not viable: 0000:00:04.1 is bound to e1000e; bind it to vfio-pci (vfio bind 0000:00:04.1) or unbind it',
        'groups 5, 6: not viable, every device is on a host driver; vfio bind <device> (or --group) to hand one to userspace',
        '',
        'interfaces: group/container; not offered: iommufd, cdev, noiommu (vfio doctor says why)',
        '',
      ]);
    });

    it('shows what each device opens through: its group, its cdev, or a noiommu group', () => {
      const modern = cli(fresh(iommufdSpec()), ['list']);
      assert.match(modern.out, /\n2 +yes +0000:00:02.0 .* +\S+\/vfio\/2 \(rw\) +group 2, cdev vfio1\n/);
      assert.match(modern.out, /\ninterfaces: group\/container, iommufd, cdev; not offered: noiommu \(vfio doctor says why\)\n$/);
      const unsafe = cli(fresh(noiommuSpec()), ['list']);
      assert.match(unsafe.out, /\n0 +yes +0000:00:03.0 .* +\S+\/vfio\/noiommu-0 \(rw\) +noiommu-0, cdev noiommu-vfio0\n/);
    });

    it('shows a group node the user cannot open as "no access"', () => {
      const r = cli(fresh(), ['list'], { lib: { credentials: { uid: 1000, gids: [1000] } } });
      assert.match(r.out, /\/vfio\/2 \(no access\)/);
    });

    it('has no colour when stdout is not a terminal', () => {
      assert.ok(!cli(fresh(), ['list']).out.includes(ESC));
    });

    it('colours a terminal', () => {
      assert.ok(cli(fresh(), ['list'], { isTTY: true }).out.includes(`${ESC}31mno${ESC}39m`));
    });

    it('has no colour on a terminal when NO_COLOR is set', () => {
      assert.ok(!cli(fresh(), ['list'], { isTTY: true, env: { NO_COLOR: '1' } }).out.includes(ESC));
    });

    it('has no colour on a terminal with --no-color', () => {
      assert.ok(!cli(fresh(), ['list', '--no-color'], { isTTY: true }).out.includes(ESC));
    });

    it('--json gives the groups as the library reads them, with the reason', () => {
      const r = cli(fresh(), ['list', '--json']);
      assert.equal(r.status, 0);
      const j = JSON.parse(r.out) as { groups: { id: number; viable: boolean; reason: string | null; blockers: { address: string }[]; devices: { address: string; vendorId: number; driver: string | null }[]; devNode: { exists: boolean; mode: number | null } }[] };
      assert.deepEqual(Object.keys(j.groups[0]!).sort(), ['blockers', 'devNode', 'devices', 'id', 'noiommu', 'reason', 'viable']);
      const g4 = j.groups.find((g) => g.id === 4)!;
      assert.deepEqual([g4.viable, g4.blockers.map((b) => b.address), g4.devNode.exists, g4.devNode.mode], [false, ['0000:00:04.1'], true, 0o600]);
      assert.match(g4.reason!, /^group 4 is not viable/);
      assert.deepEqual(g4.devices[1], {
        address: '0000:00:04.1', vendorId: 0x8086, deviceId: 0x10d3, classCode: 0x020000, driver: 'e1000e', driverOverride: null, iommuGroup: 4,
        vfio: { address: '0000:00:04.1', group: 4, noiommu: false, groupNode: `${f.devRoot}/vfio/4`, vfioDevice: null, cdev: null, openWith: [] },
      });
      assert.equal(j.groups.find((g) => g.id === 2)!.reason, null);
    });

    it('--json gives how each device opens, and which interfaces the host offers', () => {
      const fx = fresh(iommufdSpec());
      const j = JSON.parse(cli(fx, ['list', '--json']).out) as {
        groups: { id: number; devices: { vfio: { cdev: string | null; openWith: string[] } }[] }[];
        interfaces: Record<string, { available: boolean; detail: string; fix: string | null; evidence: string[] }>;
      };
      const d = j.groups.find((g) => g.id === 2)!.devices[0]!.vfio;
      assert.deepEqual([d.cdev, d.openWith], [`${fx.devRoot}/vfio/devices/vfio1`, ['group', 'cdev']]);
      assert.deepEqual(
        ['group', 'iommufd', 'cdev', 'noiommu'].map((n) => j.interfaces[n]!.available),
        [true, true, true, false],
      );
      assert.equal(j.interfaces.iommufd!.evidence[0], `${fx.devRoot}/iommu`);
    });

    it('without an IOMMU exits 1 and says how to turn it on', () => {
      const r = cli(fresh(noIommuSpec()), ['list']);
      assert.equal(r.status, 1);
      assert.equal(r.out, '');
      assert.match(r.err, /^vfio: no IOMMU groups: the IOMMU is probably off: .*intel_iommu=on/);
    });

    it('without an IOMMU --json still prints an empty list', () => {
      const r = cli(fresh(noIommuSpec()), ['list', '--json']);
      const j = JSON.parse(r.out) as { groups: unknown[]; interfaces: { group: { available: boolean } } };
      assert.deepEqual([r.status, Object.keys(j), j.groups, j.interfaces.group.available], [1, ['groups', 'interfaces'], [], true]);
    });
  });

  describe('bind and unbind', () => {
    it('bind moves the device to vfio-pci and reports the group node', () => {
      const fx = fresh();
      const r = cli(fx, ['bind', '0000:00:04.1']);
      assert.equal(r.status, 0, r.err);
      assert.equal(r.out, `0000:00:04.1: e1000e -> vfio-pci, group 4\ngroup 4: viable, ${fx.devRoot}/vfio/4\n`);
      assert.equal(fx.kernel.driverOf('0000:00:04.1'), 'vfio-pci');
    });

    it('bind by vendor:device binds the matching device', () => {
      const fx = fresh();
      assert.equal(cli(fx, ['bind', '8086:10d3']).status, 0);
      assert.equal(fx.kernel.driverOf('0000:00:04.1'), 'vfio-pci');
    });

    it('bind of one device in a shared group says the group is still not viable', () => {
      const spec = hostSpec();
      spec.devices.find((d) => d.address === '0000:00:04.0')!.driver = null;
      const r = cli(fresh(spec), ['bind', '00:04.0']);
      assert.match(r.out, /^0000:00:04.0: no driver -> vfio-pci, group 4\ngroup 4 is not viable: 0000:00:04.1 is bound to e1000e;/);
    });

    it('bind by vendor:device matching several devices moves none when one is refused', () => {
      const spec = hostSpec();
      spec.devices.push({ address: '0000:00:06.0', vendor: 0x8086, device: 0x10d3, class: 0x020000, driver: 'e1000e', group: 7 });
      spec.netifs!.push({ name: 'eth1', under: '0000:00:06.0', up: true });
      const fx = fresh(spec);
      const r = cli(fx, ['bind', '8086:10d3']);
      assert.equal(r.status, 1);
      assert.match(r.err, /network interface eth1 is up/);
      assert.equal(fx.kernel.writes.length, 0);
    });

    it('bind --group binds the whole group', () => {
      const fx = fresh();
      const r = cli(fx, ['bind', '--group', '0000:00:04.0']);
      assert.equal(r.out, `0000:00:04.0: already bound to vfio-pci, group 4\n0000:00:04.1: e1000e -> vfio-pci, group 4\ngroup 4: viable, ${fx.devRoot}/vfio/4\n`);
    });

    it('bind refuses the root disk controller: exit 1, nothing written', () => {
      const fx = fresh();
      const r = cli(fx, ['bind', '0000:00:1f.2']);
      assert.deepEqual([r.status, r.out], [1, '']);
      assert.equal(r.err, 'vfio: refusing to take 0000:00:1f.2 from ahci: sda holds the root filesystem; use --force (force: true) if you really mean it\n');
      assert.equal(fx.kernel.writes.length, 0);
    });

    it('bind --force takes the root disk controller', () => {
      const fx = fresh();
      assert.equal(cli(fx, ['bind', '--force', '0000:00:1f.2']).status, 0);
      assert.equal(fx.kernel.driverOf('0000:00:1f.2'), 'vfio-pci');
    });

    it('bind refuses the device of an up network interface', () => {
      const r = cli(fresh(), ['bind', '0000:00:05.0']);
      assert.equal(r.status, 1);
      assert.match(r.err, /network interface eth0 is up/);
    });

    it('bind of a device that does not exist exits 1', () => {
      const r = cli(fresh(), ['bind', '0000:00:09.0']);
      assert.deepEqual([r.status, r.err], [1, `vfio: no PCI device 0000:00:09.0; ls ${f.sysfsRoot}/bus/pci/devices (or vfio list) shows the devices present\n`]);
    });

    it('unbind gives the device back to the driver it had before bind', () => {
      const fx = fresh();
      cli(fx, ['bind', '0000:00:04.1']);
      const r = cli(fx, ['unbind', '0000:00:04.1']);
      assert.equal(r.status, 0, r.err);
      assert.match(r.out, /^0000:00:04.1: vfio-pci -> e1000e, group 4\ngroup 4 is not viable/);
      assert.equal(fx.kernel.driverOf('0000:00:04.1'), 'e1000e');
    });

    it('unbind takes only an address', () => {
      assert.equal(cli(fresh(), ['unbind', '8086:10d3']).status, 2);
    });

    it('bind --json reports the changes and the groups', () => {
      const fx = fresh();
      const j = JSON.parse(cli(fx, ['bind', '--json', '0000:00:04.1']).out) as unknown;
      assert.deepEqual(j, {
        changes: [{ address: '0000:00:04.1', driverBefore: 'e1000e', driverAfter: 'vfio-pci', iommuGroup: 4, devNode: `${fx.devRoot}/vfio/4`, changed: true }],
        groups: [{ id: 4, viable: true, reason: null, devNode: { path: `${fx.devRoot}/vfio/4`, exists: true, mode: 0o600, uid: process.getuid!(), gid: process.getgid!(), accessible: true } }],
      });
    });
  });

  describe('doctor', () => {
    const CAP_IPC_LOCK = 1n << 14n;

    it('exits 0 on a good host and ends with the verdict', () => {
      const r = cli(fresh({ ...hostSpec(), capEff: CAP_IPC_LOCK }), ['doctor']);
      assert.equal(r.status, 0);
      assert.match(r.out, /^ok {4}iommu +7 IOMMU groups \(IOMMU dmar0\)\n/);
      assert.match(r.out, /\nVFIO is usable \(4 warnings\)\.\n$/);
    });

    it('prints a line for each VFIO interface, with the fix under an absent one', () => {
      const r = cli(fresh(debian61Spec()), ['doctor']);
      assert.match(r.out, /\nok {4}vfio-container +\S+\/vfio\/vfio is usable \(vfio_iommu_type1\): the group\/container interface\n/);
      assert.match(r.out, /\nwarn {2}iommufd +no iommufd: Linux 6\.1\.0-57-amd64 has no iommufd \(it came in 6\.2\)\n +fix: boot Linux 6\.2 or later built with CONFIG_IOMMUFD=y/);
      assert.match(r.out, /\nwarn {2}vfio-cdev +no device cdevs: Linux 6\.1\.0-57-amd64 has no VFIO device cdev \(it came in 6\.6\)\n +fix: /);
      assert.match(r.out, /\nok {4}noiommu +no-IOMMU mode \(needed only for devices no IOMMU covers\): this kernel is built without/);
    });

    it('--json carries the interfaces next to the checks', () => {
      const j = JSON.parse(cli(fresh(iommufdSpec()), ['doctor', '--json']).out) as { interfaces: Record<string, { available: boolean }> };
      assert.deepEqual(Object.keys(j.interfaces), ['release', 'configFile', 'group', 'iommufd', 'cdev', 'noiommu']);
      assert.equal(j.interfaces.cdev!.available, true);
    });

    it('exits 1 when memlock is below --map, printing the fix under the check', () => {
      const r = cli(fresh({ ...hostSpec(), memlock: { soft: 65536n, hard: 65536n } }), ['doctor', '--map', '1G'], { lib: { credentials: { uid: 65534, gids: [65534] } } });
      assert.equal(r.status, 1);
      assert.match(r.out, /\nfail {2}memlock +RLIMIT_MEMLOCK 64 KiB is less than the 1 GiB to map: MAP_DMA will fail with ENOMEM\n +fix: .*ulimit -l 1048576/);
      assert.match(r.out, /\n\d+ problems? blocks? VFIO use/);
    });

    it('--json gives ok and the checks', () => {
      const r = cli(fresh({ ...hostSpec(), memlock: { soft: 65536n, hard: 65536n } }), ['doctor', '--json', '--map', '1G']);
      const j = JSON.parse(r.out) as { ok: boolean; checks: { name: string; status: string; detail: string; fix?: string }[] };
      assert.equal(j.ok, false);
      const m = j.checks.find((c) => c.name === 'memlock')!;
      assert.deepEqual(Object.keys(m).sort(), ['detail', 'fix', 'name', 'status']);
      assert.equal(m.status, 'fail');
      assert.equal(r.status, 1);
    });

    it('--map that is not a size is a usage error', () => {
      const r = cli(fresh(), ['doctor', '--map', 'lots']);
      assert.equal(r.status, 2);
      assert.match(r.err, /^vfio: --map: 'lots' is not a size/);
    });
  });

  describe('failures: text on stderr, and with --json one error object on stdout', () => {
    it('no command: ERR_VFIO_USAGE, exit 2, the fix points to --help', () => {
      const e = jsonFailure(cli(null, ['--json']), 2, RuleCode.USAGE);
      assert.deepEqual(e, { code: 'ERR_VFIO_USAGE', message: 'missing command (list, bind, unbind, doctor, guest)', fix: USAGE_FIX });
    });

    it('an unknown command: ERR_VFIO_USAGE', () => {
      const r = cli(null, ['frobnicate', '--json']);
      assert.equal(jsonFailure(r, 2, RuleCode.USAGE).message, "unknown command 'frobnicate' (list, bind, unbind, doctor, guest)");
      assert.equal(r.err, "vfio: unknown command 'frobnicate' (list, bind, unbind, doctor, guest)\nTry 'vfio --help'.\n");
    });

    it('an unknown option, which node:util parseArgs refuses: ERR_VFIO_USAGE, --json still honoured', () => {
      assert.match(jsonFailure(cli(null, ['list', '--bogus', '--json']), 2, RuleCode.USAGE).message, /^Unknown option '--bogus'/);
    });

    it('--json after -- is a positional, not the flag', () => {
      const r = cli(null, ['list', '--', '--json']);
      assert.deepEqual([r.status, r.out], [2, '']);
    });

    it('an option of another command, or a wrong number of arguments: ERR_VFIO_USAGE', () => {
      jsonFailure(cli(null, ['list', '--json', '--map', '1G']), 2, RuleCode.USAGE);
      jsonFailure(cli(fresh(), ['bind', '--json']), 2, RuleCode.USAGE);
      jsonFailure(cli(fresh(), ['list', 'extra', '--json']), 2, RuleCode.USAGE);
    });

    it('a malformed device: ERR_INVALID_ARG_VALUE naming the argument, exit 2, nothing written', () => {
      const fx = fresh();
      const e = jsonFailure(cli(fx, ['bind', '--json', '00:04']), 2, ArgCode.VALUE);
      assert.deepEqual([e.argument, e.fix], ['device', USAGE_FIX]);
      assert.equal(fx.kernel.writes.length, 0);
    });

    it('a BDF with a trailing newline never reaches sysfs: refused with the newline shown, the tree unchanged', () => {
      const fx = fresh();
      const before = snapshotTree(fx.root);
      for (const argv of [['bind', '0000:00:03.0\n'], ['bind', '--group', '0000:00:03.0\n'], ['unbind', '0000:00:02.0\n'], ['bind', '8086:10d3\n']]) {
        const r = cli(fx, [...argv, '--json']);
        const e = jsonFailure(r, 2, ArgCode.VALUE);
        assert.equal(e.argument, 'device');
        assert.match(e.message, /^"[0-9a-f:.]+\\n" is not a PCI address .*: it contains whitespace or a control character$/);
        assert.ok(!r.err.slice(0, -1).split("\nTry 'vfio --help'.")[0]!.includes('\n'), 'the newline is escaped in the text too');
      }
      assert.deepEqual(fx.kernel.writes, []);
      assert.equal(snapshotTree(fx.root), before);
    });

    it('--map that is not a size: ERR_INVALID_ARG_VALUE naming --map', () => {
      const e = jsonFailure(cli(fresh(), ['doctor', '--json', '--map', '1G\n']), 2, ArgCode.VALUE);
      assert.deepEqual([e.argument, e.message], ['--map', '--map: "1G\\n" is not a size: give a whole number of bytes such as 4096, 64K, 512M, 2G or 1.5GiB']);
    });

    it('a rule refused: its ERR_VFIO_* code, exit 1, the hint as fix, no kernel fields', () => {
      const fx = fresh();
      const r = cli(fx, ['bind', '--json', '0000:00:1f.2']);
      const e = jsonFailure(r, 1, RuleCode.DEVICE_IN_USE);
      assert.deepEqual(e, {
        code: 'ERR_VFIO_DEVICE_IN_USE',
        message: 'refusing to take 0000:00:1f.2 from ahci: sda holds the root filesystem; use --force (force: true) if you really mean it',
        fix: 'use --force (force: true) if you really mean it',
      });
      assert.equal(r.err, `vfio: ${e.message}\n`);
      assert.equal(fx.kernel.writes.length, 0);
    });

    it('a missing device: ERR_VFIO_NO_DEVICE with where to look as fix', () => {
      const fx = fresh();
      const e = jsonFailure(cli(fx, ['unbind', '--json', '0000:00:09.0']), 1, RuleCode.NO_DEVICE);
      assert.equal(e.fix, `ls ${fx.sysfsRoot}/bus/pci/devices (or vfio list) shows the devices present`);
    });

    it('a kernel error: the errno name as code, errno, syscall, path, and the hint as fix', () => {
      const fx = fresh();
      const denied = (file: string): never => {
        throw Object.assign(new Error('EACCES'), { code: 'EACCES', errno: -13, syscall: 'open', path: file });
      };
      const r = cli(fx, ['bind', '--json', '0000:00:04.1'], { lib: { writer: denied } });
      const e = jsonFailure(r, 1, 'EACCES');
      const file = path.join(fx.sysfsRoot, 'bus/pci/devices/0000:00:04.1/driver_override');
      assert.deepEqual(e, {
        code: 'EACCES',
        message: `cannot write 'vfio-pci' to ${file}: EACCES: permission denied, open; changing driver bindings needs root (sudo)`,
        fix: 'changing driver bindings needs root (sudo)',
        errno: -13,
        syscall: 'open',
        path: file,
      });
    });

    it('an error with no code (a bug): ERR_VFIO_INTERNAL, exit 1, and a second line saying to report it', () => {
      const fx = fresh();
      const broken = (): never => {
        throw new TypeError('x is not a function');
      };
      const r = cli(fx, ['bind', '--json', '0000:00:04.1'], { lib: { writer: broken } });
      const e = jsonFailure(r, 1, RuleCode.INTERNAL);
      assert.deepEqual(e, { code: 'ERR_VFIO_INTERNAL', message: 'internal error: TypeError: x is not a function', fix: INTERNAL_FIX });
      assert.equal(r.err, `vfio: internal error: TypeError: x is not a function\nvfio: ${INTERNAL_FIX}\n`);
    });

    it('VFIO_DEBUG adds the stack to stderr; stdout is still one object', () => {
      const broken = (): never => {
        throw new Error('boom');
      };
      const r = cli(fresh(), ['bind', '--json', '0000:00:04.1'], { lib: { writer: broken }, env: { VFIO_DEBUG: '1' } });
      jsonFailure(r, 1, RuleCode.INTERNAL);
      assert.match(r.err, /\nError: boom\n +at /);
    });

    it('without --json a failure prints nothing on stdout', () => {
      for (const argv of [['frobnicate'], ['bind', '0000:00:1f.2'], ['bind', '0000:00:03.0\n']]) assert.equal(cli(fresh(), argv).out, '');
    });

    it('describeFailure gives every thrown value a string code and never throws', () => {
      const revoked = Proxy.revocable({}, {});
      revoked.revoke();
      const trap = (): never => {
        throw new Error('trap');
      };
      let fsError: unknown;
      try {
        fs.readFileSync('/nonexistent/vfio-test');
      } catch (e) {
        fsError = e;
      }
      const thrown: unknown[] = [
        undefined,
        null,
        'a string',
        42,
        Symbol('s'),
        new Error('plain'),
        Object.assign(new Error('numeric code'), { code: 42 }),
        Object.defineProperty(new Error('getter'), 'code', { get: trap }),
        new Proxy(new Error('proxy'), { get: trap, getPrototypeOf: trap, getOwnPropertyDescriptor: trap }),
        revoked.proxy,
        { toString: trap, valueOf: trap },
        fsError,
        new VfioSystemError({ errno: -16, syscall: 'write', message: 'busy', path: '/sys/x', hint: 'wait' }),
      ];
      for (const t of thrown) {
        const { error, status } = describeFailure(t);
        assert.equal(typeof error.code, 'string');
        assert.notEqual(error.code, '');
        assert.equal(typeof error.message, 'string');
        assert.equal(status, 1);
        JSON.parse(JSON.stringify(error));
      }
      assert.deepEqual(describeFailure(fsError).error, {
        code: 'ENOENT',
        message: "ENOENT: no such file or directory, open '/nonexistent/vfio-test'",
        fix: null,
        errno: -2,
        syscall: 'open',
        path: '/nonexistent/vfio-test',
      });
      assert.deepEqual(describeFailure(new VfioSystemError({ errno: -16, syscall: 'write', message: 'busy', path: '/sys/x', hint: 'wait' })).error, {
        code: 'EBUSY',
        message: 'busy',
        fix: 'wait',
        errno: -16,
        syscall: 'write',
        path: '/sys/x',
      });
      assert.equal(describeFailure(42).error.message, 'internal error: a thrown type number (42)');
    });
  });
});

describe('vfio guest: the command line handed to the guest', () => {
  it('passes devices, KVM and huge pages to the x86 guest, and the command after -- untouched, in this directory', () => {
    const { script, args } = guestCommandLine(['--device', 'nvme,file=d.img', '--device', 'edu,bridge=b', '--kvm', '--hugepages', '8', '--', 'npx', 'mocha', '--', '-h'], '/p');
    assert.match(script, /scripts\/guest\/run$/);
    assert.deepEqual(args, ['--topology', 'single', '--kvm', '--device', 'nvme,file=d.img', '--device', 'edu,bridge=b', '--hugepages', '8', '--cwd', '/p', '--', 'npx', 'mocha', '--', '-h']);
  });

  it('boots the built kernel for --kernel built, without an IOMMU for --no-iommu, and refuses --no-iommu on the Debian kernel', () => {
    assert.deepEqual(guestCommandLine(['--kernel', 'built', '--no-iommu', '--', 'true'], '/p').args, ['--kernel', 'built', '--no-iommu', '--topology', 'single', '--cwd', '/p', '--', 'true']);
    assert.deepEqual(guestCommandLine(['--kernel', 'debian', '--', 'true'], '/p').args, ['--kernel', 'debian', '--topology', 'single', '--cwd', '/p', '--', 'true']);
    assert.throws(() => guestCommandLine(['--no-iommu', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE', message: /--no-iommu needs --kernel built/ });
    assert.throws(() => guestCommandLine(['--kernel', 'debian', '--no-iommu', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE', message: /no CONFIG_VFIO_NOIOMMU/ });
    assert.throws(() => guestCommandLine(['--kernel', 'built', '--no-iommu', '--topology', 'standard', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE', message: /topology single/ });
    assert.throws(() => guestCommandLine(['--kernel', 'mine', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE', message: /debian or built/ });
  });

  it('runs the ppc64 guest for --arch ppc64 and refuses what only the x86 guest has', () => {
    const root = path.resolve(__dirname, '..', '..', '..');
    assert.match(guestCommandLine(['--arch', 'ppc64', '--', 'true'], root).script, /scripts\/guest-ppc64\/run$/);
    assert.throws(() => guestCommandLine(['--arch', 'ppc64', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE', message: /sees only the package folder/ });
    assert.throws(() => guestCommandLine(['--arch', 'ppc64', '--device', 'edu', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE', message: /--device is for the x86_64 guest/ });
  });

  it('runs the arm64 guest for --arch arm64, with the limits of the ppc64 one', () => {
    const root = path.resolve(__dirname, '..', '..', '..');
    assert.match(guestCommandLine(['--arch', 'arm64', '--', 'true'], root).script, /scripts\/guest-arm64\/run$/);
    assert.throws(() => guestCommandLine(['--arch', 'arm64', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE', message: /arm64 guest sees only the package folder/ });
    assert.throws(() => guestCommandLine(['--arch', 'arm64', '--kvm', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE', message: /--kvm is for the x86_64 guest/ });
    assert.throws(() => guestCommandLine(['--arch', 'aarch64', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE', message: /x86_64, ppc64 or arm64/ });
  });

  it('refuses a command line without a command, unknown options and malformed values, as usage errors', () => {
    assert.throws(() => guestCommandLine(['--kvm'], '/p'), { code: 'ERR_VFIO_USAGE' });
    assert.throws(() => guestCommandLine(['--frob', '--', 'true'], '/p'), { code: 'ERR_VFIO_USAGE' });
    assert.throws(() => guestCommandLine(['--hugepages', '1.5', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => guestCommandLine(['--env', 'A B=1', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => guestCommandLine(['--topology', 'huge', '--', 'true'], '/p'), { code: 'ERR_INVALID_ARG_VALUE' });
  });
});
