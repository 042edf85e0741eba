// A group that is not viable (a device in it still on a host driver): the
// library names the device and its driver; the kernel itself says EPERM.
// Needs the x86_64 guest's shared bridge group (edu B with the e1000e).

import assert from 'node:assert/strict';
import { Container } from '../../lib';
import { native } from '../../lib/native';
import { requireShared, testEnv, type TestEnv } from './env';
import { errorOf } from './raw';

describe('a non-viable group on the real kernel', () => {
  let env: TestEnv;
  before(() => {
    env = testEnv();
  });

  it('a non-viable group is refused with the blocking device and its driver named', () => {
    const shared = requireShared(env);
    using container = Container.open();
    const e = errorOf(() => container.openGroup(shared.group));
    assert.equal(e?.code, 'ERR_VFIO_GROUP_NOT_VIABLE');
    assert.match(e!.message, new RegExp(`group ${shared.group} is not viable`));
    assert.match(e!.message, new RegExp(shared.hostBdf.replace(/[.]/g, '\\.')));
    assert.match(e!.message, /e1000e/);
  });

  it('the kernel itself refuses SET_CONTAINER on that group with EPERM', () => {
    const shared = requireShared(env);
    const n = native();
    const container = n.openContainer('/dev/vfio/vfio');
    const group = n.openGroup(`/dev/vfio/${shared.group}`);
    try {
      assert.equal(group.getStatus() & n.constants.VFIO_GROUP_FLAGS_VIABLE, 0);
      assert.equal(errorOf(() => group.setContainer(container))?.code, 'EPERM');
    } finally {
      group.close();
      container.close();
    }
  });
});
