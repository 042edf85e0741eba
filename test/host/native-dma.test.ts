// DMA memory: allocated natively, seen from JS through one ArrayBuffer,
// never unmapped while JS can still reach it, and never leaked.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { native as loadNative, NativeDmaBuffer } from '../../lib/native';

const native = loadNative();
const C = native.constants;
const page = native.pageSize;

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
const mappingsNamed = (name: string): number =>
  fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`memfd:${name}`)).length;
const freeHugePages = (): number => Number(/HugePages_Free:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))![1]);

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('native: anonymous DMA buffers', () => {
  it('are page-aligned, zeroed, readable and writable through their ArrayBuffer', () => {
    const buffer = native.allocDmaBuffer(4 * page, 0);
    try {
      assert.equal(buffer.size, 4 * page);
      assert.equal(buffer.pageSize, page);
      assert.equal(buffer.fd, -1);
      const bytes = new Uint8Array(buffer.arrayBuffer());
      assert.equal(bytes.length, 4 * page);
      assert.ok(bytes.every((b) => b === 0));
      bytes[page + 1] = 0xab;
      assert.equal(new DataView(buffer.arrayBuffer()).getUint8(page + 1), 0xab);
    } finally {
      buffer.close();
    }
  });

  it('hand out one ArrayBuffer per buffer', () => {
    const buffer = native.allocDmaBuffer(page, 0);
    try {
      assert.equal(buffer.arrayBuffer(), buffer.arrayBuffer());
    } finally {
      buffer.close();
    }
  });

  it('close() detaches the ArrayBuffer, so views become empty instead of dangling', () => {
    const buffer = native.allocDmaBuffer(2 * page, 0);
    const ab = buffer.arrayBuffer();
    const view = new Uint32Array(ab, 4, 8);
    view[0] = 7;
    buffer.close();
    assert.equal(ab.byteLength, 0);
    assert.equal(view.byteLength, 0);
    assert.equal(view[0], undefined);
    buffer.close();
  });

  it('collecting the wrapper leaves the memory mapped for a live ArrayBuffer', async () => {
    let ab: ArrayBuffer | undefined;
    (() => {
      const buffer = native.allocDmaBuffer(page, 0);
      ab = buffer.arrayBuffer();
      new Uint8Array(ab)[17] = 99;
    })();
    for (let i = 0; i < 3; i++) {
      gc();
      await settle();
    }
    assert.equal(ab!.byteLength, page);
    assert.equal(new Uint8Array(ab!)[17], 99);
  });

  it('structuredClone copies rather than moves the memory, so close() still detaches the original', () => {
    const buffer = native.allocDmaBuffer(page, 0);
    const ab = buffer.arrayBuffer();
    new Uint8Array(ab)[0] = 5;
    const copy = structuredClone(ab, { transfer: [ab] });
    new Uint8Array(copy)[0] = 6;
    assert.equal(new Uint8Array(ab)[0], 5);
    buffer.close();
    assert.equal(ab.byteLength, 0);
    assert.equal(new Uint8Array(copy)[0], 6);
  });

  it('huge pages are asked for with MAP_HUGETLB: the kernel answers from its pool', () => {
    const huge = 2 * 1024 * 1024;
    if (freeHugePages() === 0) {
      assert.throws(() => native.allocDmaBuffer(huge, huge), { code: 'ENOMEM', errno: -12, syscall: 'mmap' });
    } else {
      const buffer = native.allocDmaBuffer(huge, huge);
      assert.equal(buffer.pageSize, huge);
      buffer.close();
    }
    assert.throws(() => native.allocDmaBuffer(page, huge), { code: 'ERR_OUT_OF_RANGE' });
  });
});

describe('native: memfd and fd-backed DMA buffers', () => {
  it('a memfd buffer is visible through a second mapping of the same fd', () => {
    const before = openFds();
    const memfd = native.createMemfdBuffer('vfio-native-test-a', 2 * page, 0);
    assert.ok(memfd.fd >= 0);
    assert.equal(openFds(), before + 1);
    const second = native.mapFdBuffer(memfd.fd, page, page);
    assert.ok(second.fd >= 0 && second.fd !== memfd.fd);
    assert.equal(second.pageSize, page);
    new Uint8Array(memfd.arrayBuffer())[page + 3] = 0x5a;
    assert.equal(new Uint8Array(second.arrayBuffer())[3], 0x5a);
    assert.equal(mappingsNamed('vfio-native-test-a'), 2);
    second.close();
    memfd.close();
    assert.equal(memfd.fd, -1);
    assert.equal(openFds(), before);
    assert.equal(mappingsNamed('vfio-native-test-a'), 0);
  });

  it('a memfd buffer cannot be shrunk under its own mapping', () => {
    const memfd = native.createMemfdBuffer('vfio-native-test-b', page, 0);
    try {
      assert.throws(() => fs.ftruncateSync(memfd.fd, 0), { code: 'EPERM' });
    } finally {
      memfd.close();
    }
  });

  it('mapFdBuffer refuses a range past the end of the file, leaking nothing', () => {
    const memfd = native.createMemfdBuffer('vfio-native-test-c', page, 0);
    const before = openFds();
    try {
      assert.throws(() => native.mapFdBuffer(memfd.fd, 0, 2 * page), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => native.mapFdBuffer(memfd.fd, 0, 0), { code: 'ERR_OUT_OF_RANGE' });
      assert.equal(openFds(), before);
      assert.equal(mappingsNamed('vfio-native-test-c'), 1);
    } finally {
      memfd.close();
    }
  });

  it('mapFdBuffer of an fd that is not open is EBADF', () => {
    assert.throws(() => native.mapFdBuffer(-1, 0, page), { code: 'EBADF', errno: -9, syscall: 'fcntl' });
  });

  it('a failed huge-page memfd closes what it opened', () => {
    const before = openFds();
    const huge = 2 * 1024 * 1024;
    if (freeHugePages() === 0) {
      assert.throws(() => native.createMemfdBuffer('vfio-native-test-d', huge, huge), { code: 'ENOMEM', syscall: 'mmap' });
    } else {
      native.createMemfdBuffer('vfio-native-test-d', huge, huge).close();
    }
    assert.equal(openFds(), before);
  });
});

describe('native: DMA ranges and async maps', () => {
  // /dev/null takes any ioctl and refuses it: the kernel's ENOTTY shows the
  // request reached it, a RangeError shows it was stopped before.
  let container: ReturnType<typeof native.openContainer>;
  let buffer: NativeDmaBuffer;
  beforeEach(() => {
    container = native.openContainer('/dev/null');
    buffer = native.allocDmaBuffer(4 * page, 0);
  });
  afterEach(() => {
    container.close();
    buffer.close();
  });

  it('a range outside the buffer never reaches the kernel', () => {
    const rw = C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE;
    for (const [offset, size] of [
      [0, 5 * page],
      [4 * page, 1],
      [3 * page, 2 * page],
      [Number.MAX_SAFE_INTEGER, page],
    ]) {
      assert.throws(() => container.mapDma(buffer, offset, size, 0x100000n, rw), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => container.spaprRegisterMemory(buffer, offset, size), { code: 'ERR_OUT_OF_RANGE' });
    }
    assert.throws(() => container.mapDma(buffer, 0, 4 * page, 0x100000n, rw), { code: 'ENOTTY', syscall: 'ioctl(VFIO_IOMMU_MAP_DMA)' });
  });

  it('mapDmaAsync rejects with the same error shape as mapDma', async () => {
    await assert.rejects(container.mapDmaAsync(buffer, 0, page, 0x100000n, C.VFIO_DMA_MAP_FLAG_READ), {
      code: 'ENOTTY',
      errno: -25,
      syscall: 'ioctl(VFIO_IOMMU_MAP_DMA)',
      message: 'ENOTTY: inappropriate ioctl for device, ioctl(VFIO_IOMMU_MAP_DMA)',
    });
    await assert.rejects(container.unmapDmaAsync(0n, 0n, C.VFIO_DMA_UNMAP_FLAG_ALL), {
      code: 'ENOTTY',
      syscall: 'ioctl(VFIO_IOMMU_UNMAP_DMA)',
    });
  });

  it('a buffer cannot be closed while an async map holds it', async () => {
    const pending = container.mapDmaAsync(buffer, 0, page, 0x100000n, C.VFIO_DMA_MAP_FLAG_READ);
    assert.throws(() => buffer.close(), { code: 'EBUSY', errno: -16, syscall: 'munmap' });
    assert.equal(buffer.arrayBuffer().byteLength, 4 * page);
    await assert.rejects(pending, { code: 'ENOTTY' });
    buffer.close();
    assert.equal(buffer.fd, -1);
  });

  it('closing the container during an async map closes its fd once the map settles', async () => {
    const before = openFds();
    const other = native.openContainer('/dev/null');
    const pending = other.mapDmaAsync(buffer, 0, page, 0x100000n, C.VFIO_DMA_MAP_FLAG_READ);
    other.close();
    assert.equal(other.fd, -1);
    await assert.rejects(pending, { code: 'ENOTTY' });
    await settle();
    assert.equal(openFds(), before);
  });
});
