// Scoped binding for tests on real hosts: a device goes to vfio-pci for the
// length of a `using` scope (or a function) and back to its driver after,
// also when the test throws. If the process dies first (SIGKILL, a crash),
// the record on disk names it as the owner: `vfio unbind --restore`, or the
// next bindScoped() of any process, finds the owner gone and gives the
// device back.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { typeError } from '../args';
import { type BindOptions, type BindingChange, bindRecorded, unbindFromVfio } from './bind';
import { checkOptions, roots } from './options';
import { requireAddress } from './pci';
import { type ProcessId, readBindingRecord, readBindingRecords } from './state';

/** A binding to vfio-pci undone when disposed (or when its process is gone, at the next bind). */
export interface ScopedBinding extends Disposable {
  readonly address: string;
  /** What the bind did (changed: false when the device was on vfio already: then nothing is given back). */
  readonly change: BindingChange;
  /** Still bound by this scope. */
  readonly active: boolean;
  /** Give the device back to its previous driver now; idempotent. Null when there was nothing to give back. */
  restore(): BindingChange | null;
}

/** This process's identity, or another's (null when it is gone). */
function processId(pid: number, opts: BindOptions): ProcessId | null {
  let stat: string;
  try {
    stat = fs.readFileSync(path.join(roots(opts).proc, String(pid), 'stat'), 'utf8');
  } catch {
    return null;
  }
  // Field 2 (comm) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid, startTime: fields[19] ?? '' };
}

function alive(owner: ProcessId, opts: BindOptions): boolean {
  const now = processId(owner.pid, opts);
  return now !== null && now.startTime === owner.startTime;
}

/**
 * Gives back every device a scoped binding left behind: its owner process
 * is gone. Plain `vfio bind` bindings (no owner) and live owners' are kept.
 */
export function restoreStaleBindings(options?: BindOptions): BindingChange[] {
  const opts = checkOptions(options);
  return readBindingRecords(opts)
    .filter(([, r]) => r.owner !== undefined && !alive(r.owner, opts))
    .map(([address]) => unbindFromVfio(address, opts));
}

/**
 * Binds `address` to vfio-pci until the returned binding is disposed
 * (`using b = sysfs.bindScoped(bdf)`), then gives it back to the driver it
 * had. Stale scoped bindings of dead processes are given back first.
 */
export function bindScoped(address: string, options?: BindOptions): ScopedBinding {
  const a = requireAddress(address);
  const opts = checkOptions(options);
  restoreStaleBindings(opts);
  // Our own identity from the /proc we run under; owners are judged in the tree the options name.
  const me = processId(process.pid, {});
  if (me === null) throw new Error('cannot read /proc/self/stat: is /proc mounted?');
  const change = bindRecorded(a, opts, me);
  let active = change.changed;
  const restore = (): BindingChange | null => {
    if (!active) return null;
    // Only what this process bound: another scope may have taken it over since.
    const record = readBindingRecord(a, opts);
    active = false;
    if (record?.owner?.pid !== me.pid || record.owner.startTime !== me.startTime) return null;
    return unbindFromVfio(a, opts);
  };
  return {
    address: a,
    change,
    get active() {
      return active;
    },
    restore,
    [Symbol.dispose]: () => void restore(),
  };
}

/** Runs `fn` with `address` bound to vfio-pci, and gives it back after, also when fn throws or rejects. */
export function withBinding<T>(address: string, fn: (binding: ScopedBinding) => T | Promise<T>, options?: BindOptions): Promise<T> {
  // Checked and bound before the promise: a bad argument throws here, as everywhere.
  if (typeof fn !== 'function') throw typeError('fn', 'of type function', fn);
  const binding = bindScoped(address, options);
  return (async () => {
    using b = binding;
    return await fn(b);
  })();
}
