/**
 * Draw once per animation frame, whatever the event rate: the page applies
 * each frame to the model at once (cheap), marks the agent it changed, and a
 * single draw per frame updates the rows of the agents marked since the last
 * one. No DOM here; the scheduler is injected so that tests can step frames.
 *
 * With `enabled: false` every mark draws at once: the per-event baseline the
 * benchmark compares against (`wallboard.html?batch=0`).
 * @module pages/wallboard-batch
 */

/**
 * @typedef {object} Flush
 * @property {Set<string>} dirty the agents marked since the last draw
 * @property {boolean} reorder whether the list's order must be computed again
 * @property {boolean} all whether every shown row must be drawn (a new query, the clock)
 * @property {number} events how many marks this draw covers
 */

export class FrameBatch {
  /**
   * @param {(flush: Flush) => void} draw
   * @param {{schedule?: (callback: () => void) => unknown, enabled?: boolean}} [options]
   *   `schedule` defaults to requestAnimationFrame
   */
  constructor(draw, { schedule = (callback) => globalThis.requestAnimationFrame(callback), enabled = true } = {}) {
    this._draw = draw;
    this._schedule = schedule;
    this.enabled = enabled;
    this._dirty = new Set();
    this._reorder = false;
    this._all = false;
    this._events = 0;
    this._scheduled = false;
    /** Draws made so far. */
    this.draws = 0;
    /** Marks drawn so far. */
    this.applied = 0;
    /** Time spent drawing so far, ms (what the DOM work costs, for the benchmark). */
    this.drawMs = 0;
  }

  /** Whether a draw is waiting for its frame. */
  get pending() {
    return this._scheduled;
  }

  /**
   * One agent changed.
   * @param {string} login
   * @param {boolean} [reorder] the change can move it in the list (see wallboard-model affectsOrder)
   */
  mark(login, reorder = false) {
    this._dirty.add(login);
    this._events += 1;
    if (reorder) this._reorder = true;
    this._request();
  }

  /**
   * Something that is not one agent changed (the query, the clock, a new connection).
   * @param {{reorder?: boolean}} [options]
   */
  invalidate({ reorder = false } = {}) {
    this._all = true;
    if (reorder) this._reorder = true;
    this._request();
  }

  /** Draw now what is marked (the scheduled frame then draws nothing new). */
  flush() {
    this._scheduled = false;
    if (this._dirty.size === 0 && !this._all && !this._reorder) return;
    const flush = { dirty: this._dirty, reorder: this._reorder, all: this._all, events: this._events };
    this._dirty = new Set();
    this._reorder = false;
    this._all = false;
    this._events = 0;
    this.draws += 1;
    this.applied += flush.events;
    const started = performance.now();
    try {
      this._draw(flush);
    } finally {
      this.drawMs += performance.now() - started;
    }
  }

  _request() {
    if (!this.enabled) {
      this.flush();
      return;
    }
    if (this._scheduled) return;
    this._scheduled = true;
    this._schedule(() => {
      if (this._scheduled) this.flush();
    });
  }
}
