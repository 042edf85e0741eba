// Order statistics for the bench: medians and spreads, never means (one
// descheduled batch on a shared, emulated machine would drag a mean along).
'use strict';

/** The q-quantile (0..1) of `values`, linear between the two closest ranks. */
function quantile(values, q) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

const median = (values) => quantile(values, 0.5);

/**
 * Summary of one side of one metric. `rounds` holds one value per batch (the
 * batch's own median when it measured several samples); `samples` every raw
 * sample of every batch, for the percentiles of per-event metrics.
 */
function summarize(rounds, samples) {
  const out = {
    median: median(rounds),
    min: Math.min(...rounds),
    max: Math.max(...rounds),
    q1: quantile(rounds, 0.25),
    q3: quantile(rounds, 0.75),
    rounds,
  };
  if (samples && samples.length > rounds.length) {
    out.samples = samples.length;
    out.p10 = quantile(samples, 0.1);
    out.p50 = quantile(samples, 0.5);
    out.p90 = quantile(samples, 0.9);
    out.p99 = quantile(samples, 0.99);
  }
  return out;
}

module.exports = { quantile, median, summarize };
