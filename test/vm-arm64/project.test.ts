// Where the project lives does not matter to the guest (issue: a CI clone under /tmp).

import { itSeesTheProject } from '../vm/env';

describe('the arm64 test guest', () => {
  itSeesTheProject();
});
