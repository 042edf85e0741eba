// The native layer's error contract: kernel failures look like Node's own
// system errors, bad JS arguments are TypeError/RangeError, and nothing a
// caller passes can crash the process.
import assert from 'node:assert/strict';
import { native as loadNative } from '../../lib/native';

const native = loadNative();
const C = native.constants;

describe('native: system errors', () => {
  it('a failing open carries code, negative errno, syscall and path', () => {
    assert.throws(() => native.openContainer('/nonexistent'), {
      name: 'Error',
      code: 'ENOENT',
      errno: -2,
      syscall: 'open',
      path: '/nonexistent',
      message: "ENOENT: no such file or directory, open '/nonexistent'",
    });
  });

  it('a failing ioctl is named after its request', () => {
    const notVfio = native.openContainer('/dev/null');
    try {
      assert.throws(() => notVfio.getApiVersion(), {
        code: 'ENOTTY',
        errno: -25,
        syscall: 'ioctl(VFIO_GET_API_VERSION)',
        message: 'ENOTTY: inappropriate ioctl for device, ioctl(VFIO_GET_API_VERSION)',
      });
      assert.throws(() => notVfio.unmapDma(0n, 0n, C.VFIO_DMA_UNMAP_FLAG_ALL), { syscall: 'ioctl(VFIO_IOMMU_UNMAP_DMA)' });
    } finally {
      notVfio.close();
    }
  });

  it('an ioctl error has no path', () => {
    const notVfio = native.openGroup('/dev/null');
    try {
      assert.throws(
        () => notVfio.getStatus(),
        (e: NodeJS.ErrnoException) => e.code === 'ENOTTY' && e.syscall === 'ioctl(VFIO_GROUP_GET_STATUS)' && !('path' in e),
      );
    } finally {
      notVfio.close();
    }
  });
});

describe('native: argument checks', () => {
  const anyNative = native as unknown as Record<string, (...args: unknown[]) => unknown>;

  it('wrong types are TypeError ERR_INVALID_ARG_TYPE', () => {
    const calls: [string, unknown[]][] = [
      ['openContainer', [42]],
      ['openGroup', []],
      ['openGroup', ['/dev/vfio/1\0x']],
      ['allocDmaBuffer', ['4096', 0]],
      ['allocDmaBuffer', [4096n, 0]],
      ['allocDmaBuffer', [4096]],
      ['createMemfdBuffer', [1, 4096, 0]],
      ['mapFdBuffer', ['3', 0, 4096]],
      ['adoptVm', [null]],
    ];
    for (const [name, args] of calls) {
      assert.throws(() => anyNative[name](...args), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, `${name}(${String(args)})`);
    }
  });

  it('out-of-range numbers are RangeError ERR_OUT_OF_RANGE', () => {
    const sizes = [-4096, 4096.5, NaN, Infinity, 2 ** 53, 0, 100];
    for (const size of sizes) {
      assert.throws(() => native.allocDmaBuffer(size, 0), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, String(size));
    }
    assert.throws(() => native.allocDmaBuffer(4096, 3000), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => native.adoptVm(2 ** 31), { code: 'ERR_OUT_OF_RANGE' });
  });

  it('bigint arguments outside u64 are RangeError, numbers for bigints TypeError', () => {
    const notVfio = native.openContainer('/dev/null');
    try {
      assert.throws(() => notVfio.unmapDma(-1n, 4096n, 0), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => notVfio.unmapDma(2n ** 64n, 4096n, 0), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => notVfio.unmapDma(0 as unknown as bigint, 4096n, 0), { code: 'ERR_INVALID_ARG_TYPE' });
    } finally {
      notVfio.close();
    }
  });

  it('an object of another class, or a look-alike, is refused', () => {
    const notVfio = native.openContainer('/dev/null');
    const eventfd = native.createEventFd();
    try {
      const lookAlike = { fd: eventfd.fd, size: 4096, pageSize: 4096, regularFile: false, seals: () => -1, arrayBuffer: () => new ArrayBuffer(4096), mlock() {}, munlock() {}, pagemap: () => new BigUint64Array(1), close() {} };
      assert.throws(() => notVfio.mapDma(lookAlike, 0, 4096, 0n, 3), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => notVfio.mapDma(eventfd as never, 0, 4096, 0n, 3), { code: 'ERR_INVALID_ARG_TYPE' });
      const getFd = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(eventfd), 'fd')!.get!;
      assert.throws(() => getFd.call(notVfio), { name: 'TypeError' });
      assert.throws(() => getFd.call({}), { name: 'TypeError' });
    } finally {
      eventfd.close();
      notVfio.close();
    }
  });

  it('a method or getter called on a foreign receiver is a TypeError, never a wrong-type object', () => {
    // Prototype methods rely on V8's receiver check (the class signature
    // napi_define_class sets); getters look their receiver up in the addon's
    // registry. Both must hold. (Own methods: native-methods.test.ts.)
    const notVfio = native.openContainer('/dev/null');
    const buffer = native.allocDmaBuffer(4096, 0);
    const eventfd = native.createEventFd();
    try {
      const containerProto = Object.getPrototypeOf(notVfio);
      const bufferProto = Object.getPrototypeOf(buffer);
      for (const self of [eventfd, buffer, {}, Object.create(containerProto)]) {
        assert.throws(() => containerProto.getApiVersion.call(self), { name: 'TypeError', message: /Illegal invocation/ });
        assert.throws(() => containerProto.close.call(self), { name: 'TypeError', message: /Illegal invocation/ });
      }
      const getSize = Object.getOwnPropertyDescriptor(bufferProto, 'size')!.get!;
      assert.throws(() => getSize.call(eventfd), { name: 'TypeError', message: /receiver is not a DmaBuffer/ });
      assert.throws(() => getSize.call(Object.create(bufferProto)), { name: 'TypeError' });
      assert.equal(getSize.call(buffer), 4096);
    } finally {
      eventfd.close();
      buffer.close();
      notVfio.close();
    }
  });

  it('classes cannot be constructed from JS', () => {
    const eventfd = native.createEventFd();
    try {
      const EventFd = Object.getPrototypeOf(eventfd).constructor as new () => unknown;
      assert.throws(() => new EventFd(), { name: 'TypeError', message: /Illegal constructor/ });
    } finally {
      eventfd.close();
    }
  });

  it('every call on a closed object is ERR_VFIO_CLOSED, close() stays idempotent', () => {
    const notVfio = native.openContainer('/dev/null');
    const buffer = native.allocDmaBuffer(4096, 0);
    notVfio.close();
    notVfio.close();
    assert.equal(notVfio.fd, -1);
    for (const call of [
      () => notVfio.getApiVersion(),
      () => notVfio.checkExtension(C.VFIO_TYPE1v2_IOMMU),
      () => notVfio.mapDma(buffer, 0, 4096, 0n, 3),
      () => notVfio.type1GetInfo(),
      () => notVfio.spaprGetInfo(),
    ]) {
      assert.throws(call, { code: 'ERR_VFIO_CLOSED' });
    }
    buffer.close();
    buffer.close();
    assert.throws(() => buffer.arrayBuffer(), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => buffer.seals(), { code: 'ERR_VFIO_CLOSED' });
  });
});

describe('native: constants', () => {
  it('carry the uapi numbers compiled into the addon', () => {
    assert.equal(C.VFIO_API_VERSION, 0);
    assert.equal(C.VFIO_TYPE1v2_IOMMU, 3);
    assert.equal(C.VFIO_PCI_CONFIG_REGION_INDEX, 7);
    assert.equal(C.VFIO_PCI_NUM_IRQS, 5);
    assert.equal(C.VFIO_REGION_TYPE_PCI_VENDOR_TYPE, 2 ** 31);
    assert.equal(C.KVM_API_VERSION, 12);
    assert.equal(C.KVM_DEV_VFIO_FILE, C.KVM_DEV_VFIO_GROUP);
    assert.equal(C.KVM_DEV_VFIO_FILE_ADD, C.KVM_DEV_VFIO_GROUP_ADD);
    assert.ok(Object.isFrozen(C));
  });

  it('report the page size and the memlock limit', () => {
    assert.equal(native.pageSize & (native.pageSize - 1), 0);
    const [soft, hard] = native.getMemlockLimit();
    assert.equal(typeof soft, 'bigint');
    assert.ok(hard === -1n || (soft !== -1n && soft <= hard));
  });
});
