/**
 * The wallboard's DOM: the counts, the filters, the notices and the keyed
 * virtual list of agents (wallboard-list.js). It draws what wallboard.js tells
 * it from the model (wallboard-model.js) and reports what the supervisor does;
 * it knows nothing of the hub.
 *
 * Keyboard: Tab reaches one row of the list (the last one used); the arrows,
 * Page Up/Down, Home and End move between rows; Tab from a row reaches its
 * Actions button, whose menu follows the menu button pattern (wallboard-menu.js).
 * @module pages/wallboard-view
 */

import { formatDuration, hubStatusText } from "../lib/format.js";
import { ActionMenu } from "./wallboard-menu.js";
import { VirtualList } from "./wallboard-list.js";
import { ALL, CATEGORY, callSummary, isOverdue } from "./wallboard-model.js";
import { Notices } from "./notices.js";

const SVG = "http://www.w3.org/2000/svg";


const NUMBER = new Intl.NumberFormat("en");

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** An icon from the page's symbols (wallboard.html), hidden from screen readers: the text says it. */
export function icon(id, className = "wb-icon") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `#${id}`);
  svg.append(use);
  return svg;
}

/** "AfterCallWork" and "After-call work" are the same words: the row says them once. */
function squash(text) {
  return text.toLowerCase().replace(/[^a-z]/g, "");
}

/** Set a node's text only when it changed: most of a row stays the same from one draw to the next. */
function put(row, part, text) {
  if (row.text[part] === text) return;
  row.text[part] = text;
  row.parts[part].textContent = text;
}

function flag(row, name, on) {
  if (row.flags[name] === on) return;
  row.flags[name] = on;
  row.parts[name].hidden = !on;
}

function attr(row, name, value) {
  if (row.attrs[name] === value) return;
  row.attrs[name] = value;
  row.el.setAttribute(name, value);
}

export class WallboardView {
  /**
   * @param {Document} doc
   * @param {object} context what the rows are drawn from; read at every draw
   * @param {import("./wallboard-model.js").Floor} context.floor
   * @param {import("./wallboard-model.js").Query} context.query
   * @param {Map<string, string>} context.busy agents with a request in flight -> what it is
   * @param {{control: boolean, usable: boolean}} context.session control granted; the hub open
   * @param {{onQuery: (query: object) => void,
   *   onMenu: (login: string) => {value: string, label: string, disabled?: boolean}[],
   *   onAction: (login: string, value: string) => void}} actions
   */
  constructor(doc, context, actions) {
    const $ = (id) => doc.getElementById(id);
    this.context = context;
    this.actions = actions;
    this.root = $("wallboard");
    this.hub = $("hub-status");
    this.scope = $("wb-scope");
    this.shown = $("wb-shown");
    this.empty = $("wb-empty");
    this.find = $("wb-find");
    this.stateFilter = $("wb-state");
    this.sort = $("wb-sort");
    this.limitNote = $("wb-limit");
    this.notices = new Notices($("notices"), { max: 4, ttlMs: 15000 });
    /** Count buttons by filter value, with the node holding their number. */
    this.counts = new Map();
    for (const button of doc.querySelectorAll(".wb-count")) {
      this.counts.set(button.dataset.filter, { button, number: button.querySelector(".wb-count__n"), value: null });
      button.addEventListener("click", () => {
        const value = button.dataset.filter;
        this.stateFilter.value = this.stateFilter.value === value ? ALL : value;
        this._query();
      });
    }
    this.find.addEventListener("input", () => this._query());
    this.stateFilter.addEventListener("change", () => this._query());
    this.sort.addEventListener("change", () => this._query());
    $("wb-controls").addEventListener("submit", (event) => event.preventDefault());

    this.menu = new ActionMenu($("wb-menu"), (login, value) => actions.onAction(login, value));
    this.canvas = $("wb-canvas");
    this.scroller = $("wb-list");
    this.list = new VirtualList(this.scroller, this.canvas, {
      create: () => this._createRow(),
      bind: (row, key) => this._bindRow(row, key),
    });
    /** The row Tab reaches (roving tabindex), and the row focus is in. */
    this.activeKey = null;
    this.focusKey = null;
    this.now = Date.now();
    this.scroller.addEventListener("scroll", () => this._scrolled(), { passive: true });
    this.canvas.addEventListener("keydown", (event) => this._onKey(event));
    this.canvas.addEventListener("focusin", (event) => this._focusIn(event));
    this.canvas.addEventListener("focusout", (event) => {
      if (!this.canvas.contains(event.relatedTarget)) this._setFocusKey(null);
    });
    this.canvas.addEventListener("click", (event) => {
      const button = event.target.closest(".wb-act");
      if (button) this._toggleMenu(button, "first");
    });
    this._scrollFrame = false;
    const relayout = () => {
      this.list.measure();
      this.list.render(null);
    };
    window.addEventListener("resize", relayout);
  }

  // -- what the page tells it ------------------------------------------------

  /** The hub connection indicator. */
  showHub(state) {
    this.hub.dataset.status = state;
    this.hub.querySelector(".indicator__text").textContent = hubStatusText(state);
  }

  /** Who the page follows, from the supervisor's Welcome. */
  showScope(welcome) {
    const agents = welcome.agents || [];
    const who = agents.length === 1 && agents[0] === "*" ? "every agent"
      : `${NUMBER.format(agents.length)} agent${agents.length === 1 ? "" : "s"}`;
    this.scope.textContent = `${welcome.supervisor} · following ${who} · ${welcome.control ? "with control" : "view only"}`;
    this.root.dataset.control = String(Boolean(welcome.control));
  }

  /** The text under the title before Welcome, or when the page cannot start. */
  showScopeText(text) {
    this.scope.textContent = text;
  }

  /** What the not-ready highlight means, beside its count. */
  showLimit(limitMs) {
    this.limitNote.textContent = limitMs > 0 ? `over ${formatDuration(limitMs)}` : "off";
  }

  /**
   * An error's `msg` as a notice (its errorMessage as the tooltip), naming the agent when there is one.
   * @param {{msg?: string, errorType?: string, errorMessage?: string}} error
   * @param {string} [who]
   */
  showError(error, who) {
    const text = error.msg || error.message || "Something went wrong.";
    this.notices.show(who ? `${who}: ${text}` : text,
      { errorType: error.errorType, detail: error.errorMessage || undefined });
  }

  /** The counts per state, the agents past the limit, those without softphone. */
  showCounts(floor, overdue) {
    const values = new Map(floor.counts);
    values.set(ALL, floor.agents.size);
    values.set("overdue", overdue);
    values.set("softphone-down", floor.softphoneDown);
    for (const [filter, count] of this.counts) {
      const value = values.get(filter) ?? 0;
      if (count.value !== value) {
        count.value = value;
        count.number.textContent = NUMBER.format(value);
        count.button.dataset.zero = String(value === 0);
      }
    }
  }

  /** The list's order, as computed by the model. */
  setOrder(records) {
    const keys = records.map((record) => record.login);
    this.list.setKeys(keys);
    if (this.activeKey === null || this.list.indexOf(this.activeKey) < 0) this.activeKey = keys[0] ?? null;
    this._pin();
    const total = this.context.floor.agents.size;
    const text = records.length === total ? `${NUMBER.format(total)} agent${total === 1 ? "" : "s"}`
      : `Showing ${NUMBER.format(records.length)} of ${NUMBER.format(total)} agents`;
    if (this.shown.textContent !== text) this.shown.textContent = text;
    const empty = records.length === 0;
    if (empty) {
      this.empty.textContent = total === 0 ? "No agent in scope has joined the hub yet."
        : "No agent matches the filters.";
    }
    this.empty.hidden = !empty;
  }

  /**
   * Draw the rows in view.
   * @param {Set<string>|null} dirty agents to redraw; null: every row in view (the clock, a new query)
   * @param {number} now ms since the epoch, for the times in state
   */
  drawRows(dirty, now) {
    this.now = now;
    this.list.render(dirty);
  }

  /** Redraw one agent's row at once (a request started or ended for it), if drawn. */
  redrawAgent(key) {
    const row = this.list.rows.get(key);
    if (row) this._bindRow(row, key);
  }

  // -- the menu --------------------------------------------------------------

  /**
   * Fill the open menu for `key`, if it is still open for that agent.
   * @param {string} key
   * @param {{value: string, label: string, disabled?: boolean, current?: boolean}[]} items
   */
  menuItems(key, items) {
    if (this.menu.isOpen && this.menu.key === key) this.menu.setItems(items);
  }

  _toggleMenu(button, focus) {
    const row = button.closest(".wb-row");
    const key = row && this._keyOf(row);
    if (!key || button.disabled || button.getAttribute("aria-disabled") === "true") return;
    if (this.menu.isOpen && this.menu.key === key) {
      this.menu.close(true);
      return;
    }
    const record = this.context.floor.agents.get(key);
    // The items known now; the agent's reasons follow (menuItems) once its softphone lists them.
    this.menu.open(button, key, `Actions for ${record ? record.name : key}`, this.actions.onMenu(key), focus);
    this._pin();
  }

  // -- rows ------------------------------------------------------------------

  _createRow() {
    const row = el("div", "wb-row");
    row.setAttribute("role", "listitem");
    row.tabIndex = -1;
    const who = el("div", "wb-cell wb-who");
    const name = el("span", "wb-name");
    const login = el("span", "wb-login");
    who.append(name, login);

    const state = el("div", "wb-cell wb-state");
    const stateIcon = icon("wb-i-unknown");
    const category = el("span", "wb-cat");
    const stateName = el("span", "wb-state-name");
    state.append(stateIcon, category, stateName);

    const time = el("div", "wb-cell wb-time");
    const timeValue = el("time", "wb-time__value");
    time.append(timeValue, el("span", "sr-only", " in state"));

    const call = el("div", "wb-cell wb-call");
    const callTitle = el("span", "wb-call__title");
    const callParty = el("span", "wb-call__party");
    const callState = el("span", "wb-call__state");
    const callTime = el("time", "wb-call__time");
    const callMore = el("span", "wb-call__more");
    const noCall = el("span", "wb-call__none", "No call");
    call.append(icon("wb-i-call", "wb-icon wb-icon--small wb-call__icon"), callTitle, callParty, callState,
      callTime, callMore, noCall);

    const flags = el("div", "wb-cell wb-flags");
    const overdue = el("span", "wb-badge wb-badge--overdue");
    overdue.append(icon("wb-i-alert", "wb-icon wb-icon--small"), "Over limit");
    const muted = el("span", "wb-badge wb-badge--muted");
    muted.append(icon("wb-i-muted", "wb-icon wb-icon--small"), "Muted");
    const softphone = el("span", "wb-badge wb-badge--softphone");
    softphone.append(icon("wb-i-unplugged", "wb-icon wb-icon--small"), "Softphone off");
    const next = el("span", "wb-badge wb-badge--next");
    flags.append(overdue, muted, softphone, next);

    const actions = el("div", "wb-cell wb-actions");
    const act = el("button", "btn wb-act");
    act.type = "button";
    act.setAttribute("aria-haspopup", "menu");
    act.setAttribute("aria-expanded", "false");
    const actLabel = el("span", "wb-act__label", "Actions");
    act.append(actLabel, el("span", "btn__caret", "▾"));
    act.lastChild.setAttribute("aria-hidden", "true");
    actions.append(act);

    row.append(who, state, time, call, flags, actions);
    return {
      el: row, key: null, index: -1,
      parts: { name, login, stateIcon: stateIcon.firstChild, category, stateName, overdue, timeValue, call,
        callTitle, callParty, callState, callTime, callMore, noCall, muted, softphone, next, act, actLabel },
      text: {}, flags: {}, attrs: {},
    };
  }

  _bindRow(row, key) {
    const record = this.context.floor.agents.get(key);
    if (!record) return;
    const { session, busy, query } = this.context;
    const now = this.now;
    const category = CATEGORY[record.category];
    row.el.dataset.key = key;
    put(row, "name", record.name);
    put(row, "login", record.name === record.login ? "" : record.login);
    attr(row, "data-category", record.category);
    if (row.text.icon !== category.icon) {
      row.text.icon = category.icon;
      row.parts.stateIcon.setAttribute("href", `#${category.icon}`);
    }
    put(row, "category", category.label);
    put(row, "stateName", record.stateName && squash(record.stateName) !== squash(category.label)
      ? record.stateName : "");
    const overdue = isOverdue(record, now, query.limitMs);
    attr(row, "data-overdue", String(overdue));
    flag(row, "overdue", overdue);
    const known = record.type !== null;
    put(row, "timeValue", known ? formatDuration(now - record.since) : "—");

    const call = callSummary(record);
    attr(row, "data-call", String(call !== null));
    flag(row, "noCall", call === null);
    for (const part of ["callTitle", "callParty", "callState", "callTime"]) flag(row, part, call !== null);
    if (call !== null) {
      put(row, "callTitle", call.title);
      put(row, "callParty", call.party);
      put(row, "callState", call.state);
      put(row, "callTime", formatDuration(now - call.since));
    }
    flag(row, "callMore", call !== null && call.more > 0);
    if (call !== null && call.more > 0) put(row, "callMore", `+${call.more} more`);

    flag(row, "muted", record.muted);
    attr(row, "data-softphone", record.softphone === false ? "down" : record.softphone ? "up" : "unknown");
    flag(row, "softphone", record.softphone === false);
    flag(row, "next", record.nextState !== null);
    if (record.nextState !== null) put(row, "next", `Next: ${record.nextState}`);

    const inFlight = busy.get(key);
    const usable = session.control && session.usable && record.softphone === true;
    if (row.flags.actDisabled !== !usable) {
      row.flags.actDisabled = !usable;
      row.parts.act.disabled = !usable;
    }
    // Busy, the button keeps focus (a disabled one would drop it) but does nothing.
    if (row.flags.actBusy !== (inFlight !== undefined)) {
      row.flags.actBusy = inFlight !== undefined;
      row.parts.act.setAttribute("aria-disabled", String(inFlight !== undefined));
    }
    put(row, "actLabel", inFlight ?? "Actions");
    if (row.text.actName !== record.name) {
      row.text.actName = record.name;
      row.parts.act.setAttribute("aria-label", `Actions for ${record.name}`);
    }
    attr(row, "aria-busy", String(inFlight !== undefined));
    const tabIndex = key === this.activeKey ? 0 : -1;
    if (row.el.tabIndex !== tabIndex) row.el.tabIndex = tabIndex;
  }

  _keyOf(rowEl) {
    return rowEl.dataset.key || null;
  }

  // -- keyboard and focus ----------------------------------------------------

  _focusIn(event) {
    const rowEl = event.target.closest(".wb-row");
    if (!rowEl) return;
    const key = this._keyOf(rowEl);
    this._setFocusKey(key);
    if (key !== this.activeKey) this._setActive(key);
  }

  _setFocusKey(key) {
    this.focusKey = key;
    this._pin();
  }

  /** Rows that must stay drawn out of view: the one Tab reaches, the focused one, the menu's. */
  _pin() {
    const pinned = this.list.pinned;
    pinned.clear();
    for (const key of [this.activeKey, this.focusKey, this.menu.key]) if (key !== null) pinned.add(key);
  }

  _setActive(key) {
    const previous = this.activeKey;
    this.activeKey = key;
    this._pin();
    for (const k of [previous, key]) {
      const row = k !== null ? this.list.rows.get(k) : undefined;
      if (row) row.el.tabIndex = k === key ? 0 : -1;
    }
  }

  _onKey(event) {
    const rowEl = event.target;
    if (!rowEl.classList || !rowEl.classList.contains("wb-row")) {
      // On the Actions button: the arrows open its menu, as the menu button pattern says.
      const button = event.target.closest?.(".wb-act");
      if (button && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
        event.preventDefault();
        this._toggleMenu(button, event.key === "ArrowUp" ? "last" : "first");
      }
      return;
    }
    const count = this.list.keys.length;
    const index = this.list.indexOf(this._keyOf(rowEl));
    if (count === 0 || index < 0) return;
    const page = Math.max(1, Math.floor(this.scroller.clientHeight / this.list.rowHeight) - 1);
    const targets = {
      ArrowDown: index + 1, ArrowUp: index - 1, PageDown: index + page, PageUp: index - page,
      Home: 0, End: count - 1,
    };
    if (!(event.key in targets)) return;
    event.preventDefault();
    const to = Math.min(count - 1, Math.max(0, targets[event.key]));
    const key = this.list.keys[to];
    this._setActive(key);
    this.list.reveal(to);
    this.list.rows.get(key)?.el.focus({ preventScroll: true });
  }

  _scrolled() {
    if (this._scrollFrame) return;
    this._scrollFrame = true;
    requestAnimationFrame(() => {
      this._scrollFrame = false;
      this.list.render(new Set());
    });
  }

  _query() {
    const state = this.stateFilter.value;
    for (const [filter, count] of this.counts) count.button.setAttribute("aria-pressed", String(filter === state));
    this.actions.onQuery({ text: this.find.value, state, sort: this.sort.value });
  }
}
