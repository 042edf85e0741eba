// Runs a case: C and JS batches interleaved round after round (the order
// flips every round, so a slow drift of the machine hits both sides alike),
// then medians, spreads, JS/C ratios and verdicts against the targets.
'use strict';

const { median, summarize } = require('./stats');

/**
 * def: {
 *   id, title, where: 'host'|'guest', rounds, params,
 *   sides: [{ name: 'c' | variant, run: async () => ({ metric: [ns...] }) }],
 *   derive?: (metrics) => metrics,      // e.g. per-GiB costs from raw times
 *   targets?: { metric: maxRatio },      // JS/C, checked for every JS side
 *   show?: [metric...],                  // rows of the table (default: targets)
 *   notes?: [string...],
 * }
 */
async function runCase(def, log = () => {}) {
  const per = {};
  const started = Date.now();
  for (let r = 0; r < def.rounds; r++) {
    const order = r % 2 === 0 ? def.sides : [...def.sides].reverse();
    for (const side of order) {
      let metrics = await side.run();
      if (def.derive) metrics = def.derive(metrics);
      for (const [m, values] of Object.entries(metrics)) {
        const slot = ((per[m] ??= {})[side.name] ??= { rounds: [], samples: [] });
        slot.rounds.push(median(values));
        slot.samples.push(...values);
      }
    }
    log(`  ${def.id}: round ${r + 1}/${def.rounds} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  return finish(def, per, Date.now() - started);
}

/** Summaries, ratios (JS median / C median) and verdicts. */
function finish(def, per, elapsedMs) {
  const metrics = {};
  const ratios = {};
  const verdicts = [];
  for (const [m, sides] of Object.entries(per)) {
    metrics[m] = {};
    for (const [side, slot] of Object.entries(sides)) metrics[m][side] = summarize(slot.rounds, slot.samples);
    const c = metrics[m].c;
    if (!c) continue;
    ratios[m] = {};
    for (const side of Object.keys(metrics[m])) {
      if (side === 'c') continue;
      const ratio = metrics[m][side].median / c.median;
      ratios[m][side] = round3(ratio);
      const target = def.targets?.[m];
      if (target !== undefined && !def.informative?.includes(side)) {
        verdicts.push({ metric: m, side, ratio: round3(ratio), target, pass: ratio <= target, missBy: ratio <= target ? 0 : round3(ratio / target - 1) });
      }
    }
  }
  // Absolute targets (ns), judged on the worst round of each JS side.
  for (const [m, limit] of Object.entries(def.absoluteTargets ?? {})) {
    for (const [side, summary] of Object.entries(metrics[m] ?? {})) {
      if (side === 'c' || def.informative?.includes(side)) continue;
      const worst = summary.max;
      verdicts.push({ metric: m, side, value: worst, absolute: limit, pass: worst <= limit, missBy: worst <= limit ? 0 : round3(worst / limit - 1) });
    }
  }
  return {
    id: def.id,
    title: def.title,
    where: def.where,
    unit: 'ns',
    rounds: def.rounds,
    params: def.params ?? {},
    targets: def.targets ?? {},
    absoluteTargets: def.absoluteTargets ?? {},
    show: def.show ?? Object.keys(def.targets ?? {}),
    informative: def.informative ?? [],
    notes: def.notes ?? [],
    elapsedMs,
    metrics,
    ratios,
    verdicts,
  };
}

const round3 = (x) => Math.round(x * 1000) / 1000;

module.exports = { runCase, finish };
