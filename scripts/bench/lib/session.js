// What host.js and guest.js share: their flags, the list of cases they run
// (logged as they go), the calibration case, and writing their JSON.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const js = require('./js-cases');
const { runCase } = require('./runner');

/**
 *   --quick         fewer rounds, smaller sizes
 *   --rounds N      rounds of the small cases (default 7, quick 2)
 *   --big-rounds N  rounds of the event-loop lag cases (default 5, quick 1)
 *   --out FILE      where the JSON goes (default: `defaultOut`, else stdout)
 */
function session(where, defaultOut = null) {
  const argv = process.argv.slice(2);
  const flag = (name, fallback) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : fallback;
  };
  const quick = argv.includes('--quick');
  const s = {
    where,
    quick,
    rounds: Number(flag('--rounds', quick ? 2 : 7)),
    bigRounds: Number(flag('--big-rounds', quick ? 1 : 5)),
    out: flag('--out', defaultOut),
    started: Date.now(),
    cases: [],
    log: (line) => console.error(line),
    env: { kernel: os.release(), arch: process.arch, node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', memMiB: Math.round(os.totalmem() / 2 ** 20) },

    /** Runs one case definition (runner.js) and keeps its result. */
    async run(def) {
      s.log(`bench: ${def.id}`);
      const result = await runCase({ where, rounds: s.rounds, ...def }, s.log);
      s.cases.push(result);
      return result;
    },

    /** The JS-only calibration case (js-cases.js calibration()). */
    calibration(iters) {
      return s.run({
        id: `${where}.calibration`,
        title: 'what a JS → C call costs before it does anything',
        params: { iters },
        show: [],
        notes: ["JS only: a bare Node-API function (calib.c), the type-tag check and unwrap our addon does on `this`, lib's native(), the addon's cheapest methods"],
        sides: [{ name: 'calib', run: () => js.calibration('calib', { iters }) }],
      });
    },

    /** Writes {where, env, ..., cases} to --out (or stdout). */
    finish(extra = {}) {
      const result = { where, env: s.env, quick, rounds: s.rounds, bigRounds: s.bigRounds, ...extra, elapsedS: (Date.now() - s.started) / 1000, cases: s.cases };
      const text = JSON.stringify(result, null, 1);
      if (s.out) fs.writeFileSync(s.out, text);
      else process.stdout.write(text + '\n');
      s.log(`bench: ${where} cases done in ${result.elapsedS.toFixed(0)} s`);
    },
  };
  return s;
}

/** main() with the error printed and a failing exit status. */
function runMain(main) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}

module.exports = { session, runMain };
