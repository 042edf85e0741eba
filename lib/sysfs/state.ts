// What `bind` remembers so that `unbind` can give a device back: the driver
// and driver_override it had before. Kept under /run, a tmpfs: bindings do not
// survive a reboot, and neither should the memory of them.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkOptions } from './options';
import { requireAddress } from './pci';

/** Where the binding records live (default /run). */
export interface StateOptions {
  /** Default '/run'; the state lives in <runRoot>/vfio-node/bindings.json. */
  runRoot?: string;
}

/** What a device had before it was bound to vfio-pci, so it can be given back. */
export interface BindingRecord {
  /** Driver before bind; null when the device had none. */
  previousDriver: string | null;
  /** driver_override before bind; null when unset. */
  previousOverride: string | null;
  /** ISO time of the bind. */
  boundAt: string;
  /**
   * A scoped binding (bindScoped): the process that holds it. When that
   * process is gone (it exited without restoring, or was killed), `vfio unbind
   * --restore` or the next bindScoped() gives the device back.
   */
  owner?: ProcessId;
}

/** A process, told apart from a later one with the same pid by its start time. */
export interface ProcessId {
  pid: number;
  /** /proc/<pid>/stat field 22 (clock ticks after boot), as text. */
  startTime: string;
}

interface StateFile {
  version: 1;
  devices: Record<string, BindingRecord>;
}

/** The file the binding records are kept in. */
export function stateFile(opts?: StateOptions): string {
  return path.join(checkOptions(opts).runRoot ?? '/run', 'vfio-node', 'bindings.json');
}

function load(opts: StateOptions): StateFile {
  let text: string;
  try {
    text = fs.readFileSync(stateFile(opts), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, devices: {} };
    throw e;
  }
  try {
    const parsed = JSON.parse(text) as Partial<StateFile>;
    if (parsed && typeof parsed.devices === 'object' && parsed.devices !== null) {
      return { version: 1, devices: parsed.devices };
    }
  } catch {
    // A torn or hand-edited file: forget it rather than fail every unbind.
  }
  return { version: 1, devices: {} };
}

function save(state: StateFile, opts: StateOptions): void {
  const file = stateFile(opts);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  // Write then rename, so a reader never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

/** Every device with a record, and the record. */
export function readBindingRecords(opts: StateOptions): [string, BindingRecord][] {
  return Object.entries(load(opts).devices);
}

/** The record of a device bound by this package, or null. */
export function readBindingRecord(address: string, opts?: StateOptions): BindingRecord | null {
  const a = requireAddress(address);
  return load(checkOptions(opts)).devices[a] ?? null;
}

// Internal: bind.ts hands these an address and options already checked.
export function writeBindingRecord(address: string, record: BindingRecord, opts: StateOptions): void {
  const state = load(opts);
  state.devices[address] = record;
  save(state, opts);
}

export function dropBindingRecord(address: string, opts: StateOptions): void {
  const state = load(opts);
  if (!(address in state.devices)) return;
  delete state.devices[address];
  save(state, opts);
}
