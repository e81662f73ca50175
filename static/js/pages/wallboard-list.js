/**
 * A keyed virtual list: of thousands of rows, only those in view (and a few
 * around) exist in the DOM. Rows are keyed by agent and kept across draws: a
 * row in view is redrawn only when its agent changed, moved only when its
 * place changed, and rows that leave the view are reused for those that enter.
 * Every row has the same height (a CSS custom property, read again on resize).
 *
 * `visibleRange` is pure (tested with node:test); the class touches the DOM
 * only when called.
 * @module pages/wallboard-list
 */

/**
 * The rows to draw for a scroll position: those in view plus `overscan` on
 * each side, as [start, end) indexes.
 * @param {number} scrollTop px
 * @param {number} viewport the scroller's height, px
 * @param {number} rowHeight px
 * @param {number} count rows in the list
 * @param {number} [overscan=4]
 * @returns {{start: number, end: number}}
 */
export function visibleRange(scrollTop, viewport, rowHeight, count, overscan = 4) {
  if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0 };
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const last = Math.ceil((Math.max(0, scrollTop) + Math.max(0, viewport)) / rowHeight);
  return { start: Math.max(0, Math.min(count, first - overscan)), end: Math.min(count, last + overscan) };
}

/**
 * The scrollTop that brings row `index` fully into view, moving as little as
 * possible (unchanged when it is already in view).
 */
export function scrollToShow(index, scrollTop, viewport, rowHeight) {
  const top = index * rowHeight;
  if (top < scrollTop) return top;
  if (top + rowHeight > scrollTop + viewport) return top + rowHeight - viewport;
  return scrollTop;
}

/**
 * @typedef {object} Row
 * @property {HTMLElement} el
 * @property {string|null} key
 * @property {number} index its place in the list (-1 while unused)
 */

export class VirtualList {
  /**
   * @param {HTMLElement} scroller the element that scrolls (overflow: auto)
   * @param {HTMLElement} canvas the positioned element inside it that holds the rows
   * @param {{create: () => Row, bind: (row: Row, key: string) => void,
   *   overscan?: number}} rows `create` makes an empty row; `bind` draws `key` into it
   */
  constructor(scroller, canvas, { create, bind, overscan = 4 }) {
    this.scroller = scroller;
    this.canvas = canvas;
    this._create = create;
    this._bind = bind;
    this.overscan = overscan;
    /** @type {string[]} */
    this.keys = [];
    /** @type {Map<string, number>} key -> index in `keys` */
    this._indexOf = new Map();
    /** @type {Map<string, Row>} the rows drawn, by key */
    this.rows = new Map();
    /** @type {Row[]} rows not in use */
    this._pool = [];
    /** Keys whose rows stay drawn out of view (focus is in them, a menu is open for them). */
    this.pinned = new Set();
    this.rowHeight = 0;
    this._viewport = 0;
    this._sizeChanged = false;
    this.measure();
  }

  /** Read the row height (`--wb-row-h` on the canvas) and the scroller's height again. */
  measure() {
    const height = parseFloat(getComputedStyle(this.canvas).getPropertyValue("--wb-row-h"));
    this.rowHeight = Number.isFinite(height) && height > 0 ? height : 48;
    this._viewport = this.scroller.clientHeight;
    this.canvas.style.height = `${this.keys.length * this.rowHeight}px`;
    for (const row of this.rows.values()) this._place(row, row.index, true);
  }

  /** The place of `key` in the list, or -1. */
  indexOf(key) {
    return this._indexOf.get(key) ?? -1;
  }

  /** @param {string[]} keys the list's keys, in order */
  setKeys(keys) {
    if (keys.length !== this.keys.length) this._sizeChanged = true;
    this.keys = keys;
    this._indexOf = new Map(keys.map((key, index) => [key, index]));
    this.canvas.style.height = `${keys.length * this.rowHeight}px`;
  }

  /**
   * Draw the rows in view.
   * @param {Set<string>|null} dirty keys whose rows must be drawn again; null: every row
   */
  render(dirty) {
    const { start, end } = visibleRange(this.scroller.scrollTop, this._viewport, this.rowHeight,
      this.keys.length, this.overscan);
    const wanted = new Set();
    for (let index = start; index < end; index += 1) wanted.add(this.keys[index]);
    for (const key of this.pinned) if (this._indexOf.has(key)) wanted.add(key);
    for (const [key, row] of this.rows) {
      if (wanted.has(key)) continue;
      this.rows.delete(key);
      row.key = null;
      row.index = -1;
      row.el.hidden = true;
      this._pool.push(row);
    }
    for (const key of wanted) {
      let row = this.rows.get(key);
      const fresh = row === undefined;
      if (fresh) {
        row = this._pool.pop() ?? this._newRow();
        row.key = key;
        row.el.hidden = false;
        this.rows.set(key, row);
      }
      if (fresh || dirty === null || dirty.has(key)) this._bind(row, key);
      this._place(row, this._indexOf.get(key), this._sizeChanged);
    }
    this._sizeChanged = false;
  }

  /** Scroll so that row `index` is in view, and draw. */
  reveal(index) {
    const top = scrollToShow(index, this.scroller.scrollTop, this._viewport, this.rowHeight);
    if (top !== this.scroller.scrollTop) this.scroller.scrollTop = top;
    this.render(new Set());
  }

  _newRow() {
    const row = this._create();
    row.index = -1;
    this.canvas.append(row.el);
    return row;
  }

  _place(row, index, force) {
    if (!force && row.index === index) return;
    row.index = index;
    if (index < 0) return;
    row.el.style.transform = `translateY(${index * this.rowHeight}px)`;
    row.el.setAttribute("aria-posinset", String(index + 1));
    row.el.setAttribute("aria-setsize", String(this.keys.length));
  }
}
