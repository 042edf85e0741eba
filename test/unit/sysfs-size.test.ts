import assert from 'node:assert/strict';
import { ArgCode } from '../../lib/args';
import { formatSize, parseSize } from '../../lib/sysfs';

describe('sizes', () => {
  it('parses plain bytes and binary units in any spelling', () => {
    assert.deepEqual(
      ['4096', '64K', '64k', '512M', '2G', '2GiB', '2gb', '1T', '16 MiB'].map(parseSize),
      [4096n, 65536n, 65536n, 512n << 20n, 2n << 30n, 2n << 30n, 2n << 30n, 1n << 40n, 16n << 20n],
    );
  });

  it('parses a fraction that is a whole number of bytes', () => {
    assert.equal(parseSize('1.5G'), 3n << 29n);
  });

  it('refuses a fraction of a byte', () => {
    assert.throws(() => parseSize('1.5'), { code: ArgCode.VALUE, argument: 'size', message: /must be a whole number of bytes/ });
  });

  it('refuses what is not a size', () => {
    for (const bad of ['', 'G', '-1G', '2X', '0x10', '1e9']) {
      assert.throws(() => parseSize(bad), { code: ArgCode.VALUE, argument: 'size' }, bad);
    }
  });

  it('handles sizes beyond 2^53 exactly', () => {
    assert.equal(parseSize('16E'), 1n << 64n);
  });

  it('formats exact sizes with the largest unit', () => {
    assert.deepEqual([0n, 1000n, 65536n, 3n << 29n, 2n << 30n].map(formatSize), ['0 B', '1000 B', '64 KiB', '1.5 GiB', '2 GiB']);
  });
});
