/**
 * The wallboard's own frame timing, for the benchmark (`wallboard.html?perf=1`):
 * the interval between animation frames (a frame that took longer than the
 * display's period shows as a long interval), the long tasks Chromium reports,
 * and the events applied and draws made. Read through `window.wallboardPerf`.
 * The statistics are pure (tested with node:test).
 * @module pages/wallboard-perf
 */

/**
 * The p-th percentile (0-100) of sorted numbers, nearest rank; NaN when empty.
 * @param {number[]} sorted ascending
 * @param {number} p
 */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/**
 * Median, p99 and max of frame intervals, in ms.
 * @param {number[]} intervals
 */
export function frameStats(intervals) {
  const sorted = [...intervals].sort((a, b) => a - b);
  return {
    frames: sorted.length,
    medianMs: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length > 0 ? sorted[sorted.length - 1] : Number.NaN,
  };
}

export class FrameProbe {
  /**
   * @param {{events: () => number, draws: () => number, drawMs: () => number}} counters totals
   *   since the page started
   */
  constructor(counters) {
    this.counters = counters;
    this.intervals = [];
    this.longTasks = [];
    this._last = null;
    this._start = null;
    this._base = { events: 0, draws: 0, drawMs: 0 };
    const loop = (time) => {
      if (this._last !== null) this.intervals.push(time - this._last);
      this._last = time;
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
    this.longTasksSupported = false;
    try {
      const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) this.longTasks.push(entry.duration);
      });
      observer.observe({ type: "longtask" });
      this.longTasksSupported = true;
    } catch {
      // Not every browser reports long tasks; the frame intervals still say it.
    }
    this.reset();
  }

  /** Start a new measurement. */
  reset() {
    this.intervals = [];
    this.longTasks = [];
    this._last = null;
    this._start = performance.now();
    this._base = { events: this.counters.events(), draws: this.counters.draws(), drawMs: this.counters.drawMs() };
  }

  /** The figures since the last reset. */
  snapshot() {
    const seconds = (performance.now() - this._start) / 1000;
    const events = this.counters.events() - this._base.events;
    const draws = this.counters.draws() - this._base.draws;
    return {
      seconds,
      ...frameStats(this.intervals),
      longTasks: this.longTasksSupported ? this.longTasks.length : null,
      longTaskMs: this.longTasksSupported ? this.longTasks.reduce((sum, d) => sum + d, 0) : null,
      events,
      eventsPerSecond: seconds > 0 ? events / seconds : 0,
      draws,
      drawMs: this.counters.drawMs() - this._base.drawMs,
    };
  }
}
