// Where the project lives does not matter to the guest (issue: a CI clone under /tmp).

import { itSeesTheProject } from './env';

describe('the x86_64 test guest', () => {
  itSeesTheProject();
});
