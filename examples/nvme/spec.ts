// The parts of the NVMe 1.4 base specification this driver uses: controller
// registers (§3.1), queue entry layouts (§4.2, §4.6) and command opcodes
// (§5, §6). Numbers only; the driver is in controller.ts and queue.ts.

/** Controller registers in BAR0. */
export const REG = {
  CAP: 0x00, // 64-bit: MQES 15:0, TO 31:24 (500 ms units), DSTRD 35:32, CSS 44:37
  VS: 0x08,
  CC: 0x14,
  CSTS: 0x1c,
  AQA: 0x24, // ASQS 11:0, ACQS 27:16 (0-based sizes)
  ASQ: 0x28, // 64-bit
  ACQ: 0x30, // 64-bit
  DOORBELLS: 0x1000,
} as const;

export const CC_EN = 1 << 0;
/** I/O submission entries are 2^6 bytes, completion entries 2^4. */
export const CC_IOSQES_64 = 6 << 16;
export const CC_IOCQES_16 = 4 << 20;
export const CSTS_RDY = 1 << 0;
export const CSTS_CFS = 1 << 1;

export const SQE_BYTES = 64;
export const CQE_BYTES = 16;
/** Memory page size the driver sets (CC.MPS = 0): 4 KiB. PRPs point at pages of this size. */
export const PAGE = 4096;

export const ADMIN = {
  DELETE_SQ: 0x00,
  CREATE_SQ: 0x01,
  DELETE_CQ: 0x04,
  CREATE_CQ: 0x05,
  IDENTIFY: 0x06,
  SET_FEATURES: 0x09,
} as const;

export const IO = {
  WRITE: 0x01,
  READ: 0x02,
} as const;

/** Identify CNS values (CDW10). */
export const CNS_NAMESPACE = 0x00;
export const CNS_CONTROLLER = 0x01;
/** Set Features: Number of Queues. */
export const FEATURE_NUM_QUEUES = 0x07;
