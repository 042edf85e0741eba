// A native backend whose "kernel" does nothing and answers at once: with it
// behind lib/ (setNativeBackend), a map/unmap loop times lib/'s own work
// (validation, bookkeeping) on any host, with no ioctl in the way. Just
// enough of the NativeBinding surface for Container → group → type1 →
// map/unmap, and a device whose MSI eventfds are real ones (from the real
// addon) that the caller can signal: `irqEventfds` holds the last set.
// Constants are the real addon's.
'use strict';

function nullKernel(real) {
  const c = real.constants;
  let fds = 100;
  const fd = () => ({ fd: fds++, close() {} });
  const kernel = {
    irqEventfds: [],
    createEventFd: () => real.createEventFd(),
    constants: c,
    pageSize: real.pageSize,
    getMemlockLimit: () => [-1n, -1n],
    openContainer: () => ({
      ...fd(),
      getApiVersion: () => c.VFIO_API_VERSION,
      checkExtension: () => 1,
      setIommu() {},
      type1GetInfo: () => ({
        flags: 0,
        iovaPgsizes: 0x40201000n,
        iovaRanges: [{ start: 0n, end: (1n << 39n) - 1n }],
        dmaAvail: 65535,
        migration: null,
      }),
      mapDma() {},
      mapDmaAsync: async () => {},
      unmapDma: (_iova, size) => size,
      unmapDmaAsync: async (_iova, size) => size,
    }),
    openGroup: () => ({
      ...fd(),
      getStatus: () => c.VFIO_GROUP_FLAGS_VIABLE,
      setContainer() {},
      unsetContainer() {},
      getDeviceFd: () => ({
        ...fd(),
        getInfo: () => ({ flags: c.VFIO_DEVICE_FLAGS_PCI, numRegions: c.VFIO_PCI_NUM_REGIONS, numIrqs: c.VFIO_PCI_NUM_IRQS }),
        getIrqInfo: (index) => ({ index, flags: c.VFIO_IRQ_INFO_EVENTFD | c.VFIO_IRQ_INFO_NORESIZE, count: 1 }),
        setIrqsEventfds: (_index, _start, eventfds) => {
          kernel.irqEventfds = eventfds;
        },
        setIrqsNone() {},
      }),
    }),
    allocDmaBuffer: (size, hugePageSize) => ({
      size,
      pageSize: hugePageSize || real.pageSize,
      fd: -1,
      arrayBuffer: () => new ArrayBuffer(0),
      close() {},
    }),
  };
  return kernel;
}

module.exports = { nullKernel };
