// Run as an unprivileged user with a small RLIMIT_MEMLOCK: map 1 MiB and
// print the error (as JSON) the library throws.
//   node map-as-user.js <group>

import { Container, DmaBuffer } from '../../../lib';

const group = Number(process.argv[2]);
const buffer = DmaBuffer.allocate(1 << 20);
const container = Container.open();
let result: Record<string, unknown>;
try {
  container.openGroup(group);
  container.setIommu();
  container.requireIommu().map(buffer, { iova: 0x100000n });
  result = { mapped: true };
} catch (e) {
  const err = e as Error & Record<string, unknown>;
  result = { name: err.name, code: err.code, errno: err.errno, syscall: err.syscall, message: err.message };
} finally {
  container.close();
  buffer.close();
}
process.stdout.write(JSON.stringify(result));
