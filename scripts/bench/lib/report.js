// The readable side of the results: a text table for the terminal and the
// same rows as Markdown for the README.
'use strict';

/** 1234 ns → '1.23 µs'. */
function fmt(ns) {
  if (!Number.isFinite(ns)) return '–';
  const abs = Math.abs(ns);
  if (abs >= 1e9) return `${(ns / 1e9).toPrecision(3)} s`;
  if (abs >= 1e6) return `${(ns / 1e6).toPrecision(3)} ms`;
  if (abs >= 1e3) return `${(ns / 1e3).toPrecision(3)} µs`;
  return `${ns.toPrecision(3)} ns`;
}

const cell = (s) => (s ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : '–');

const SIDE_NAMES = {
  lib: 'lib (public API)',
  addon: 'addon (native surface)',
  ioctl: 'npm ioctl package',
  napi: 'minimal Node-API binding',
  callback: 'lib, interrupt listener',
  wait: 'lib, await irq.wait()',
  calib: 'JS only (no C side)',
};

/** Table rows: one per (case, shown metric, JS side). */
function rows(result) {
  const out = [];
  for (const c of result.cases) {
    for (const m of c.show.length ? c.show : Object.keys(c.metrics)) {
      const sides = c.metrics[m];
      if (!sides) continue;
      for (const side of Object.keys(sides)) {
        if (side === 'c') continue;
        const ratio = c.ratios[m]?.[side];
        const verdict = c.verdicts.find((v) => v.metric === m && v.side === side);
        let target = '';
        let result = '';
        if (verdict && verdict.absolute !== undefined) {
          target = `≤ ${fmt(verdict.absolute)} (worst run)`;
          result = verdict.pass ? 'met' : `MISSED by ${(verdict.missBy * 100).toFixed(0)}%`;
        } else if (verdict) {
          target = `≤ ${verdict.target}×`;
          result = verdict.pass ? 'met' : `MISSED by ${(verdict.missBy * 100).toFixed(0)}%`;
        } else if (c.targets[m] !== undefined) {
          target = `(${c.targets[m]}×)`;
          result = 'for comparison';
        }
        out.push({
          where: c.where,
          case: c.title,
          metric: m,
          side: SIDE_NAMES[side] ?? side,
          c: cell(sides.c),
          js: cell(sides[side]),
          ratio: ratio !== undefined ? `${ratio.toFixed(2)}×` : '',
          target,
          result,
        });
      }
    }
  }
  return out;
}

const COLUMNS = [
  ['where', 'where'],
  ['case', 'case'],
  ['metric', 'metric'],
  ['side', 'JS side'],
  ['c', 'C median (min–max)'],
  ['js', 'JS median (min–max)'],
  ['ratio', 'JS/C'],
  ['target', 'target'],
  ['result', 'result'],
];

function textTable(result) {
  const r = rows(result);
  const width = COLUMNS.map(([k, h]) => Math.max(h.length, ...r.map((x) => String(x[k]).length)));
  const line = (cells) => cells.map((s, i) => String(s).padEnd(width[i])).join('  ').trimEnd();
  const lines = [line(COLUMNS.map(([, h]) => h)), line(width.map((w) => '-'.repeat(w)))];
  let last = '';
  for (const x of r) {
    const sameCase = x.case === last;
    last = x.case;
    lines.push(line(COLUMNS.map(([k]) => (sameCase && (k === 'case' || k === 'where') ? '' : x[k]))));
  }
  return lines.join('\n');
}

function markdownTable(result) {
  const r = rows(result);
  const esc = (s) => String(s).replace(/\|/g, '\\|');
  const lines = [`| ${COLUMNS.map(([, h]) => h).join(' | ')} |`, `|${COLUMNS.map(() => ' --- ').join('|')}|`];
  let last = '';
  for (const x of r) {
    const sameCase = x.case === last;
    last = x.case;
    lines.push(`| ${COLUMNS.map(([k]) => (sameCase && (k === 'case' || k === 'where') ? '' : esc(x[k]))).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** The verdict lines: every target, met or missed and by how much. */
function verdictSummary(result) {
  const out = [];
  for (const c of result.cases) {
    for (const v of c.verdicts) {
      const what = `${c.where}: ${c.title} [${v.metric}, ${SIDE_NAMES[v.side] ?? v.side}]`;
      if (v.absolute !== undefined) out.push(`${v.pass ? 'met   ' : 'MISSED'} ${what}: ${fmt(v.value)} vs ≤ ${fmt(v.absolute)}`);
      else out.push(`${v.pass ? 'met   ' : 'MISSED'} ${what}: ${v.ratio.toFixed(2)}× vs ≤ ${v.target}×${v.pass ? '' : ` (${(v.missBy * 100).toFixed(0)}% over)`}`);
    }
  }
  return out.join('\n');
}

module.exports = { fmt, rows, textTable, markdownTable, verdictSummary };
