// Mocha's spec output for people, plus the counts appended as one JSON line
// to $VFIO_TEST_STATS (when set), so scripts/test.js can total every suite
// it ran, including the one inside the test guest.
'use strict';
const fs = require('node:fs');
const Mocha = require('mocha');

const { EVENT_RUN_END } = Mocha.Runner.constants;

class VfioReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const file = process.env.VFIO_TEST_STATS;
      if (!file) return;
      const { passes, failures, pending, tests } = this.stats;
      const suite = process.env.VFIO_TEST_SUITE || 'mocha';
      fs.appendFileSync(file, `${JSON.stringify({ suite, passes, failures, pending, tests })}\n`);
    });
  }
}

module.exports = VfioReporter;
