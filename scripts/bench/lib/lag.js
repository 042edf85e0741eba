// Event-loop lag: how late a 1 ms interval timer fires while something runs.
'use strict';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `op` (sync or async) under a 1 ms setInterval and returns, in ns, the
 * longest gap between two timer callbacks beyond the 1 ms asked for
 * (`lag`), and how long `op` took (`duration`). A sync op blocks the loop
 * for all of it: its lag is its duration.
 */
async function measureLag(op) {
  let last = performance.now();
  let maxGap = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const t = performance.now();
    if (t - last > maxGap) maxGap = t - last;
    last = t;
    ticks++;
  }, 1);
  try {
    await sleep(20); // the timer is running
    maxGap = 0;
    ticks = 0;
    last = performance.now();
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await op();
    const duration = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    await sleep(3); // the tick that was held up by a blocking op fires now
    // CPU of the whole process (µs → ns) per tick: meaningful when `op` itself is idle
    const cpuPerTick = ticks ? ((cpu.user + cpu.system) * 1e3) / ticks : NaN;
    return { lag: Math.max(0, maxGap - 1) * 1e6, duration: duration * 1e6, ticks, cpuPerTick };
  } finally {
    clearInterval(timer);
  }
}

module.exports = { measureLag, sleep };
