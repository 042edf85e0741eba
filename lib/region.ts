// A device region (a BAR, config space...). Access goes through the device
// fd at exact widths (pread/pwrite), or through an mmap of a mappable part
// with exact-width volatile accessors. Offsets are relative to the region.
//
// An mmap made writable is reached through typed-array views of it, with no
// native call per access: a load is Atomics.load (one access of exactly the
// width that the JIT never merges, hoists or elides: JS's volatile load); a
// store is a plain element store (one store of exactly the width, which V8
// never eliminates; Atomics.store would be a locked xchg on x86, and that
// read-modify-write is a read a device register must not see). A read-only
// mmap goes through the addon's volatile accessors, because a store through
// a view of it would fault the process.

import { releaseKvmUses } from './teardown';
import { argBool, argBytes, argInt, argOptions, argSize, optionField, rangeError, typeError } from './args';
import type { Device, DeviceNatives } from './device';
import { BufferUsers } from './dma-buffer';
import type { DmaMapping } from './dma-mapping';
import type { Iommu } from './iommu';
import { RuleCode, VfioError, rethrow } from './errors';
import { hex } from './iova';
import { msixTablePages, withoutRange } from './msix';
import { native, type AccessWidth, type NativeDevice, type NativeRegionMapping, type RegionInfoRaw } from './native';
import { Resource } from './resource';

/** An mmap-able part of a region (VFIO_REGION_INFO_CAP_SPARSE_MMAP). */
export interface SparseArea {
  offset: bigint;
  size: bigint;
}

/** A device region (a BAR, config space, ROM, VGA): read and written with pread/pwrite on the device fd, or mmapped. */
export class Region {
  readonly device: Device;
  readonly index: number;
  readonly flags: number;
  readonly size: bigint;
  /** Offset of the region within the device fd. */
  readonly fdOffset: bigint;
  readonly readable: boolean;
  readonly writable: boolean;
  readonly mappable: boolean;
  /** Mappable parts when the region is only partly mappable (sparse mmap capability), else null. */
  readonly sparseAreas: readonly SparseArea[] | null;
  /** The kernel says the MSI-X table's pages in this BAR may be mmapped (VFIO_REGION_INFO_CAP_MSIX_MAPPABLE). */
  readonly msixMappable: boolean;
  /** VFIO_REGION_INFO_CAP_TYPE, or null. */
  readonly type: { type: number; subtype: number } | null;
  readonly description: string;
  readonly #native: NativeDevice;
  readonly #natives: DeviceNatives;
  readonly #mappings = new Set<RegionMapping>();
  #areas: readonly SparseArea[] | undefined;

  /** @internal Created by Device.region(). */
  constructor(device: Device, handle: NativeDevice, raw: RegionInfoRaw, natives: DeviceNatives) {
    const c = native().constants;
    this.device = device;
    this.#native = handle;
    this.#natives = natives;
    this.index = raw.index;
    this.flags = raw.flags;
    this.size = raw.size;
    this.fdOffset = raw.offset;
    this.readable = (raw.flags & c.VFIO_REGION_INFO_FLAG_READ) !== 0;
    this.writable = (raw.flags & c.VFIO_REGION_INFO_FLAG_WRITE) !== 0;
    this.mappable = (raw.flags & c.VFIO_REGION_INFO_FLAG_MMAP) !== 0;
    this.sparseAreas = raw.sparseMmap;
    this.msixMappable = raw.msixMappable;
    this.type = raw.type;
    this.description = `region ${raw.index} of ${device.description}`;
  }

  /** Reads one naturally aligned little-endian value of this width at `offset`. */
  read8(offset: number): number {
    return this.#read(offset, 1) as number;
  }
  /** Reads one naturally aligned little-endian value of this width at `offset`. */
  read16(offset: number): number {
    return this.#read(offset, 2) as number;
  }
  /** Reads one naturally aligned little-endian value of this width at `offset`. */
  read32(offset: number): number {
    return this.#read(offset, 4) as number;
  }
  /** Reads one naturally aligned little-endian value of this width at `offset`. */
  read64(offset: number): bigint {
    return this.#read(offset, 8) as bigint;
  }
  /** Writes one naturally aligned little-endian value of this width at `offset`. */
  write8(offset: number, value: number): void {
    this.#write(offset, 1, value);
  }
  /** Writes one naturally aligned little-endian value of this width at `offset`. */
  write16(offset: number, value: number): void {
    this.#write(offset, 2, value);
  }
  /** Writes one naturally aligned little-endian value of this width at `offset`. */
  write32(offset: number, value: number): void {
    this.#write(offset, 4, value);
  }
  /** Writes one naturally aligned little-endian value of this width at `offset`. */
  write64(offset: number, value: bigint): void {
    this.#write(offset, 8, value);
  }

  /** Bulk read (e.g. all of config space). */
  readBytes(offset: number, length: number): Buffer {
    argInt(length, 'length', 0, 0x7fffffff);
    this.#check(offset, length, 1, 'read');
    try {
      return this.#native.readBytes(this.fdOffset + BigInt(offset), length);
    } catch (e) {
      rethrow(e, `${this.description}: reading ${length} bytes at ${hex(offset)}`);
    }
  }

  /** Writes `data` at `offset` in one pwrite. */
  writeBytes(offset: number, data: Uint8Array): void {
    argBytes(data, 'data');
    this.#check(offset, data.length, 1, 'write');
    try {
      this.#native.writeBytes(this.fdOffset + BigInt(offset), data);
    } catch (e) {
      rethrow(e, `${this.description}: writing ${data.length} bytes at ${hex(offset)}`);
    }
  }

  /**
   * mmap [offset, offset+size) of the region (default: all of it, or the
   * first sparse area). Must be page-aligned and inside one mappable area.
   */
  mmap(options?: { offset?: number; size?: number; writable?: boolean }): RegionMapping {
    const o = argOptions(options);
    const givenOffset = optionField(o, 'offset', 'options.offset');
    const givenSize = optionField(o, 'size', 'options.size');
    const givenWritable = optionField(o, 'writable', 'options.writable');
    if (givenOffset !== undefined) argSize(givenOffset, 'options.offset');
    if (givenSize !== undefined) argSize(givenSize, 'options.size');
    if (givenWritable !== undefined) argBool(givenWritable, 'options.writable');
    this.device.assertUsable();
    if (!this.mappable) {
      throw new VfioError(RuleCode.REGION_ACCESS, `${this.description} cannot be mmapped (no VFIO_REGION_INFO_FLAG_MMAP); use read32()/write32()`);
    }
    const areas = this.mmapAreas;
    const offset = givenOffset !== undefined ? argSize(givenOffset, 'options.offset') : Number(areas[0]?.offset ?? 0n);
    // No size: to the end of the area the offset is in (the first area by default).
    const around = areas.find((a) => BigInt(offset) >= a.offset && BigInt(offset) < a.offset + a.size);
    const size = givenSize !== undefined ? argSize(givenSize, 'options.size') : around ? Number(around.offset + around.size) - offset : 0;
    const page = native().pageSize;
    if (size <= 0) {
      throw new VfioError(RuleCode.REGION_RANGE, `${this.description}: mmap needs a size > 0 inside the region`);
    }
    if (offset % page !== 0 || size % page !== 0) {
      throw new VfioError(RuleCode.REGION_RANGE, `${this.description}: mmap offset ${hex(offset)} and size ${hex(size)} must be multiples of the page size ${hex(page)}`);
    }
    const start = BigInt(offset);
    const end = start + BigInt(size);
    const table = this.#msixTablePages();
    if (table && !this.msixMappable && start < table.offset + table.size && end > table.offset) {
      throw new VfioError(
        RuleCode.MSIX_TABLE,
        `${this.description}: ${hex(offset)}+${hex(size)} covers the MSI-X table's pages ${hex(table.offset)}+${hex(table.size)}, and the kernel does not say they are mappable (no VFIO_REGION_INFO_CAP_MSIX_MAPPABLE); map around them (region.mmapAreas)`,
      );
    }
    if (!areas.some((a) => start >= a.offset && end <= a.offset + a.size)) {
      const list = areas.map((a) => `${hex(a.offset)}+${hex(a.size)}`).join(', ');
      throw new VfioError(RuleCode.REGION_RANGE, `${this.description}: ${hex(offset)}+${hex(size)} is not inside a mappable area (${list})`);
    }
    const writable = (givenWritable as boolean | undefined) ?? this.writable;
    const c = native().constants;
    const prot = c.PROT_READ | (writable ? c.PROT_WRITE : 0);
    let handle: NativeRegionMapping;
    try {
      handle = this.#native.mmap(this.fdOffset + start, size, prot);
    } catch (e) {
      rethrow(e, `${this.description}: mmap of ${hex(offset)}+${hex(size)}`);
    }
    const natives = this.#natives;
    natives.mmaps.add(handle);
    const mapping = new RegionMapping(this, offset, handle, writable, natives, () => this.#mappings.delete(mapping));
    this.#mappings.add(mapping);
    return mapping;
  }

  /**
   * What mmap() accepts: the sparse areas (or the whole region), less the
   * MSI-X table's pages unless the kernel says they are mappable. Empty when
   * the region cannot be mmapped at all.
   */
  get mmapAreas(): readonly SparseArea[] {
    if (this.#areas === undefined) {
      const all = this.mappable ? (this.sparseAreas ?? [{ offset: 0n, size: this.size }]) : [];
      this.#areas = Object.freeze(withoutRange(all, this.msixMappable ? null : this.#msixTablePages()).map((a) => Object.freeze(a)));
    }
    return this.#areas;
  }

  #msixTablePages(): SparseArea | null {
    const c = native().constants;
    const bar = this.index - c.VFIO_PCI_BAR0_REGION_INDEX;
    if (!this.device.info.pci || bar < 0 || bar > 5) return null;
    return msixTablePages(this.device.msixCapability, bar, native().pageSize);
  }

  /** @internal Device teardown: munmap everything (a BAR mmap keeps the device open). */
  deviceClosing(): void {
    for (const m of [...this.#mappings]) m.closeNow();
  }

  /** @internal teardown()'s refusal, before anything closes: see RegionMapping.assertNoUsersBeyond. */
  assertNoUsersBeyond(leaving: Iommu | null): void {
    for (const m of this.#mappings) m.assertNoUsersBeyond(leaving);
  }

  #check(offset: number, width: number, align: number, what: 'read' | 'write'): void {
    argInt(offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
    this.device.assertUsable();
    if (what === 'read' && !this.readable) throw new VfioError(RuleCode.REGION_ACCESS, `${this.description} is not readable`);
    if (what === 'write' && !this.writable) throw new VfioError(RuleCode.REGION_ACCESS, `${this.description} is not writable`);
    if (BigInt(offset) + BigInt(width) > this.size || offset % align !== 0) {
      throw new VfioError(
        RuleCode.REGION_RANGE,
        `${this.description}: ${width}-byte access at ${String(offset)} is outside its ${hex(this.size)} bytes or not ${align}-byte aligned`,
      );
    }
  }

  #read(offset: number, width: AccessWidth): number | bigint {
    this.#check(offset, width, width, 'read');
    try {
      return this.#native.read(this.fdOffset + BigInt(offset), width);
    } catch (e) {
      rethrow(e, `${this.description}: ${width * 8}-bit read at ${hex(offset)}`);
    }
  }

  #write(offset: number, width: AccessWidth, value: number | bigint): void {
    this.#check(offset, width, width, 'write');
    checkValue(value, width);
    try {
      this.#native.write(this.fdOffset + BigInt(offset), width, value);
    } catch (e) {
      rethrow(e, `${this.description}: ${width * 8}-bit write at ${hex(offset)}`);
    }
  }
}

// Node 20's V8 refuses typed arrays over more than 2^32 elements.
const maxViewBytes = 2 ** 32;

/**
 * An mmap of part of a region; offsets relative to the region start. It can
 * also be the memory of a DMA mapping of another device (peer-to-peer DMA:
 * iommu.map(mapping)); while such a mapping lives, it cannot be unmapped.
 */
export class RegionMapping extends Resource {
  readonly region: Region;
  /** Offset of the mapping within the region. */
  readonly offset: number;
  readonly size: number;
  /** Made with PROT_WRITE. */
  readonly writable: boolean;
  readonly description: string;
  readonly #native: NativeRegionMapping;
  readonly #users = new BufferUsers<DmaMapping>();
  readonly #natives: DeviceNatives;
  readonly #onClose: () => void;
  // Views of a read-write mapping (detached by close()), else null.
  readonly #u8: Uint8Array | null = null;
  readonly #u16: Uint16Array | null = null;
  readonly #u32: Uint32Array | null = null;
  readonly #u64: BigUint64Array | null = null;

  /** @internal Created by Region.mmap(). */
  constructor(region: Region, offset: number, handle: NativeRegionMapping, writable: boolean, natives: DeviceNatives, onClose: () => void) {
    super();
    this.region = region;
    this.offset = offset;
    this.size = handle.size;
    this.writable = writable;
    this.#native = handle;
    this.#natives = natives;
    this.#onClose = onClose;
    this.description = `mmap of ${region.description} at ${hex(offset)}`;
    // A BAR past V8's typed-array limits keeps the native accessors.
    const ab = writable && handle.size <= maxViewBytes ? externalBuffer(handle) : null;
    if (ab) {
      this.#u8 = new Uint8Array(ab);
      this.#u16 = new Uint16Array(ab);
      this.#u32 = new Uint32Array(ab);
      this.#u64 = new BigUint64Array(ab);
    }
    this.track(() => {
      const open = natives.mmaps.delete(handle);
      handle.close();
      return open;
    });
  }

  /** Reads one naturally aligned little-endian value of this width at `offset`. */
  read8(offset: number): number {
    const at = this.#at(offset, 1);
    return this.#u8 ? Atomics.load(this.#u8, at) : (this.#native.read(at, 1) as number);
  }
  /** Reads one naturally aligned little-endian value of this width at `offset`. */
  read16(offset: number): number {
    const at = this.#at(offset, 2);
    return this.#u16 ? Atomics.load(this.#u16, at / 2) : (this.#native.read(at, 2) as number);
  }
  /** Reads one naturally aligned little-endian value of this width at `offset`. */
  read32(offset: number): number {
    const at = this.#at(offset, 4);
    return this.#u32 ? Atomics.load(this.#u32, at / 4) : (this.#native.read(at, 4) as number);
  }
  /** Reads one naturally aligned little-endian value of this width at `offset`. */
  read64(offset: number): bigint {
    const at = this.#at(offset, 8);
    return this.#u64 ? Atomics.load(this.#u64, at / 8) : (this.#native.read(at, 8) as bigint);
  }
  /** Writes one naturally aligned little-endian value of this width at `offset`. */
  write8(offset: number, value: number): void {
    const at = this.#at(offset, 1);
    checkValue(value, 1);
    if (this.#u8) this.#u8[at] = value;
    else this.#native.write(at, 1, value);
  }
  /** Writes one naturally aligned little-endian value of this width at `offset`. */
  write16(offset: number, value: number): void {
    const at = this.#at(offset, 2);
    checkValue(value, 2);
    if (this.#u16) this.#u16[at / 2] = value;
    else this.#native.write(at, 2, value);
  }
  /** Writes one naturally aligned little-endian value of this width at `offset`. */
  write32(offset: number, value: number): void {
    const at = this.#at(offset, 4);
    checkValue(value, 4);
    if (this.#u32) this.#u32[at / 4] = value;
    else this.#native.write(at, 4, value);
  }
  /** Writes one naturally aligned little-endian value of this width at `offset`. */
  write64(offset: number, value: bigint): void {
    const at = this.#at(offset, 8);
    checkValue(value, 8);
    if (this.#u64) this.#u64[at / 8] = value;
    else this.#native.write(at, 8, value);
  }

  // Checked here for our error codes, and again natively or by the views'
  // own bounds, so that nothing can ever fault the process. `at` is a
  // multiple of the width, so at / width is exact (a shift would wrap past
  // 4 GiB).
  #at(offset: number, width: AccessWidth): number {
    if (typeof offset !== 'number') throw typeError('offset', 'of type number', offset);
    this.assertOpen();
    const at = offset - this.offset;
    if (!Number.isInteger(at) || at < 0 || at + width > this.size || at % width !== 0) {
      throw new VfioError(
        RuleCode.REGION_RANGE,
        `${this.description}: ${width * 8}-bit access at ${String(offset)} is outside ${hex(this.offset)}+${hex(this.size)} or not ${width}-byte aligned`,
      );
    }
    return at;
  }

  /** Live DMA mappings (of any device's IOMMU) that use this mapping as their memory. */
  get users(): readonly DmaMapping[] {
    return this.#users.list();
  }

  /** @internal A brand check for the map path; never runs a caller's code. */
  static isMapping(value: unknown): value is RegionMapping {
    return typeof value === 'object' && value !== null && #users in value;
  }

  /** @internal The native handle, for the IOMMU code that maps it. */
  handle(): NativeRegionMapping {
    this.assertOpen();
    return this.#native;
  }

  /** @internal */
  addUser(user: DmaMapping): void {
    this.#users.add(user);
  }

  /** @internal */
  removeUser(user: DmaMapping): void {
    this.#users.delete(user);
  }

  /** Checks [offset, offset+size) lies inside the mapping (offsets relative to the mapping). */
  checkRange(offset: number, size: number): void {
    if (offset + size > this.size) {
      throw new VfioError(RuleCode.BUFFER_RANGE, `${this.description}: range ${hex(offset)}+${hex(size)} ends past the mapping's end ${hex(this.size)}`);
    }
  }

  /**
   * @internal teardown()'s refusal: a peer's DMA mapping that outlives this
   * teardown (another IOMMU than the one `leaving` with it) still uses the
   * mapping, so the device cannot close.
   */
  assertNoUsersBeyond(leaving: Iommu | null): void {
    if (this.#users.list().some((m) => m.iommu !== leaving)) this.#users.assertNone(this.description);
  }

  /**
   * @internal Device teardown, step 1: munmap. Users of the leaving IOMMU
   * (assertNoUsersBeyond let them through) are unmapped in step 2, once no
   * device of it is open.
   */
  closeNow(): void {
    if (this.closed) return;
    this.#unmap();
    this.markClosed();
  }

  protected override release(): void {
    this.#users.assertNone(this.description);
    releaseKvmUses(this, 'close', [this]);
    this.#unmap();
  }

  #unmap(): void {
    this.#native.close();
    this.#natives.mmaps.delete(this.#native);
    this.#onClose();
  }
}

/** The mapping's ArrayBuffer, or null where the runtime allows no external ones (Electron's V8 sandbox). */
function externalBuffer(handle: NativeRegionMapping): ArrayBuffer | null {
  try {
    return handle.arrayBuffer();
  } catch {
    return null;
  }
}

function checkValue(value: number | bigint, width: AccessWidth): void {
  if (width === 8) {
    if (typeof value !== 'bigint') throw typeError('value', 'of type bigint', value);
    if (value < 0n || value >= 1n << 64n) throw rangeError('value', '>= 0n and < 2n ** 64n', value);
    return;
  }
  if (typeof value !== 'number') throw typeError('value', 'of type number', value);
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** (width * 8)) {
    throw rangeError('value', `an integer >= 0 and < 2 ** ${width * 8}`, value);
  }
}
