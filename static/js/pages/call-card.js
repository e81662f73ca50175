/**
 * The widget's call cards: one card per live contact, drawn from the calls
 * widget.js keeps, with the buttons `ButtonStates` allows, a keypad (DTMF)
 * and a picker for consult and transfer targets. Also the dial pad, which
 * uses the same keypad and picker. The DOM only: what a button sends and
 * whether typed input may be sent are decided in call-logic.js.
 * @module pages/call-card
 */

import { formatDuration } from "../lib/format.js";
import {
  CALL_ACTIONS, buttonStates, checkDtmf, directionLabel, partyNumber, requestData, screenPopEntries,
  stateLabel, targetData,
} from "./call-logic.js";

const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

let serial = 0;

/** An element with a class, attributes and children (text or nodes). */
function el(doc, tag, attributes = {}, ...children) {
  const node = doc.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "className") node.className = value;
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

/** A 3 x 4 grid of phone keys; `onKey(digit)` on each press. */
export function keypadGrid(doc, label, onKey) {
  const grid = el(doc, "div", { className: "keypad", role: "group", "aria-label": label });
  for (const key of KEYS) {
    const button = el(doc, "button", { type: "button", className: "btn keypad__key", "data-key": key }, key);
    button.addEventListener("click", () => onKey(key));
    grid.append(button);
  }
  return grid;
}

/**
 * A target picker: a quick connect, or a typed phone number, checked before
 * anything is sent. Its form's submit calls `onSubmit(data)` with Transfer's,
 * Consult's or SetMakeCall's `data`; a refused number is shown beside the
 * field and nothing is sent.
 */
export class TargetPicker {
  /**
   * @param {HTMLFormElement} form holds a select (quick connects), an input (number),
   *   a problem paragraph and a submit button, found by their data-part
   * @param {(data: string|{endpointARN: string}) => Promise<boolean>} onSubmit true when sent and done
   */
  constructor(form, onSubmit) {
    this.form = form;
    this.select = form.querySelector("[data-part=quick-connect]");
    this.number = form.querySelector("[data-part=number]");
    this.problem = form.querySelector("[data-part=problem]");
    this.submit = form.querySelector("[data-part=submit]");
    this._endpointsKey = null;
    this.select.addEventListener("change", () => {
      // A quick connect is the target: the number field does not count then.
      this.number.disabled = this.select.value !== "";
      this.showProblem(null);
    });
    this.number.addEventListener("input", () => this.showProblem(null));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const checked = targetData({ endpointARN: this.select.value || null, number: this.number.value });
      if (!checked.ok) {
        this.showProblem(checked.problem);
        this.number.focus();
        return;
      }
      this.showProblem(null);
      if (await onSubmit(checked.value)) this.reset();
    });
  }

  /**
   * The quick connects from GetQuickConnects, or null while they are loading.
   * @param {{name: string, type: string, endpointARN: string, phoneNumber: string|null}[]|null} endpoints
   */
  setQuickConnects(endpoints) {
    const key = JSON.stringify(endpoints);
    if (key === this._endpointsKey) return; // keep the agent's choice
    this._endpointsKey = key;
    const doc = this.select.ownerDocument;
    const chosen = this.select.value;
    const options = [el(doc, "option", { value: "" }, endpoints === null ? "Loading quick connects…"
      : endpoints.length === 0 ? "No quick connects: type a number" : "Type a number below")];
    for (const endpoint of endpoints || []) {
      const suffix = endpoint.phoneNumber ? ` (${endpoint.phoneNumber})` : ` (${endpoint.type.replace("_", " ")})`;
      options.push(el(doc, "option", { value: endpoint.endpointARN }, endpoint.name + suffix));
    }
    this.select.replaceChildren(...options);
    if ([...this.select.options].some((option) => option.value === chosen)) this.select.value = chosen;
    this.number.disabled = this.select.value !== "";
  }

  /** Append a key press to the number field. */
  type(key) {
    if (this.number.disabled) return;
    this.number.value += key;
    this.showProblem(null);
  }

  showProblem(text) {
    this.problem.textContent = text || "";
    this.problem.hidden = !text;
    if (text) this.number.setAttribute("aria-invalid", "true");
    else this.number.removeAttribute("aria-invalid");
  }

  /** Enable or disable the submit button (`busy`: its request is in flight). */
  setUsable(usable, busy = false) {
    this.submit.disabled = !usable || busy;
    this.submit.setAttribute("aria-busy", String(busy));
  }

  reset() {
    this.select.value = "";
    this.number.value = "";
    this.number.disabled = false;
    this.showProblem(null);
  }
}

/** The parts of a target picker form, for a card's consult and transfer panels. */
function pickerForm(doc, id, verb) {
  return el(doc, "form", { className: "picker", novalidate: "" },
    el(doc, "label", { className: "picker__label", for: `${id}-qc` }, "Quick connect"),
    el(doc, "select", { className: "field picker__select", id: `${id}-qc`, "data-part": "quick-connect" }),
    el(doc, "label", { className: "picker__label", for: `${id}-number` }, "or a number"),
    el(doc, "input", { className: "field picker__number", id: `${id}-number`, type: "tel", inputmode: "tel",
      autocomplete: "off", placeholder: "+16013261548", "data-part": "number",
      "aria-describedby": `${id}-problem` }),
    el(doc, "p", { className: "field-problem", id: `${id}-problem`, role: "alert", "data-part": "problem",
      hidden: "" }),
    el(doc, "button", { type: "submit", className: "btn btn--primary", "data-part": "submit" }, verb),
  );
}

/** One contact's card. */
class CallCard {
  /**
   * @param {Document} doc
   * @param {{onAction: Function, onQuickConnects: Function}} actions see CallCards
   */
  constructor(doc, actions) {
    serial += 1;
    const id = `call-${serial}`;
    this.id = id;
    this.actions = actions;
    this.call = null;
    this.openPanel = null;
    this._since = null;

    this.direction = el(doc, "p", { className: "call-card__direction" });
    this.number = el(doc, "h2", { className: "call-card__number", id: `${id}-number` });
    this.state = el(doc, "span", { className: "call-card__state", "aria-live": "polite" });
    this.time = el(doc, "time", { className: "call-card__time", datetime: "PT0S" }, "0:00");
    this.vars = el(doc, "dl", { className: "call-card__vars", "aria-label": "Call data" });
    this.stale = el(doc, "p", { className: "call-card__stale", hidden: "" },
      "Last known; the softphone is not connected.");
    this.buttons = {};
    const group = el(doc, "div", { className: "call-card__actions", role: "group", "aria-label": "Call controls" });
    for (const { action, label } of CALL_ACTIONS) {
      const button = el(doc, "button", { type: "button", className: `btn call-btn call-btn--${action}`,
        "data-action": action }, label);
      if (action === "keypad" || action === "consult" || action === "transfer") {
        button.setAttribute("aria-expanded", "false");
        button.setAttribute("aria-controls", `${id}-${action}`);
        button.addEventListener("click", () => this.toggle(action));
      } else {
        button.addEventListener("click", () => this.actions.onAction(this.call.id, action,
          requestData(action, this.call)));
      }
      this.buttons[action] = button;
      group.append(button);
    }

    // Keypad: each key is sent as pressed, as on a phone; a typed string is checked first.
    const dtmfForm = el(doc, "form", { className: "picker picker--dtmf", novalidate: "" },
      el(doc, "label", { className: "picker__label", for: `${id}-digits` }, "Digits"),
      el(doc, "input", { className: "field", id: `${id}-digits`, inputmode: "tel", autocomplete: "off",
        "aria-describedby": `${id}-dtmf-problem` }),
      el(doc, "button", { type: "submit", className: "btn btn--primary", "data-part": "submit" }, "Send"),
      el(doc, "p", { className: "field-problem", id: `${id}-dtmf-problem`, role: "alert", hidden: "" }));
    this.dtmfInput = dtmfForm.querySelector("input");
    this.dtmfSend = dtmfForm.querySelector("[data-part=submit]");
    this.dtmfProblem = dtmfForm.querySelector(".field-problem");
    dtmfForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendDigits(this.dtmfInput.value, true);
    });
    this.dtmfInput.addEventListener("input", () => this.showDtmfProblem(null));
    this.keys = keypadGrid(doc, "Keypad", (key) => this.sendDigits(key, false));
    this.panels = {
      keypad: el(doc, "div", { className: "call-card__panel", id: `${id}-keypad`, hidden: "" }, this.keys,
        dtmfForm),
      consult: el(doc, "div", { className: "call-card__panel", id: `${id}-consult`, hidden: "" },
        pickerForm(doc, `${id}-consult`, "Consult")),
      transfer: el(doc, "div", { className: "call-card__panel", id: `${id}-transfer`, hidden: "" },
        pickerForm(doc, `${id}-transfer`, "Transfer")),
    };
    this.pickers = {
      consult: new TargetPicker(this.panels.consult.querySelector("form"),
        (data) => this._send("consult", data)),
      transfer: new TargetPicker(this.panels.transfer.querySelector("form"),
        (data) => this._send("transfer", data)),
    };

    this.root = el(doc, "article", { className: "call-card", "aria-labelledby": `${id}-number`,
      "data-event": "connecting" },
    el(doc, "header", { className: "call-card__head" }, this.direction, this.number,
      el(doc, "p", { className: "call-card__meta" }, this.state, el(doc, "span", { "aria-hidden": "true" }, "·"),
        el(doc, "span", {}, this.time, " in state"))),
    this.vars, this.stale, group, this.panels.keypad, this.panels.consult, this.panels.transfer);
  }

  /**
   * Draw the contact.
   * @param {object} call
   * @param {{usable: boolean, busy: Set<string>, stale: boolean}} context
   */
  update(call, { usable, busy, stale }) {
    this.call = call;
    const root = this.root;
    root.dataset.callId = call.id;
    root.dataset.event = call.event;
    root.dataset.stale = String(stale);
    const queue = call.queue && call.queue.name ? ` · ${call.queue.name}` : "";
    this.direction.textContent = directionLabel(call) + queue;
    this.number.textContent = partyNumber(call);
    this.state.textContent = stateLabel(call);
    this.stale.hidden = !stale;
    this._since = Date.parse(call.since);
    this.tick();
    this._drawVariables(call);

    const states = buttonStates(call, { usable, busy });
    for (const [action, state] of Object.entries(states)) {
      const button = this.buttons[action];
      button.hidden = state.hidden;
      button.disabled = state.disabled;
      button.dataset.rule = state.rule;
      button.setAttribute("aria-busy", String(state.busy));
    }
    // A panel whose button Connect no longer allows closes (the call moved on).
    if (this.openPanel && states[this.openPanel].disabled && !states[this.openPanel].busy) this.toggle(null);
    this.dtmfSend.disabled = states.keypad.disabled || busy.has("dtmf");
    for (const key of this.keys.querySelectorAll("button")) key.disabled = states.keypad.disabled;
    this.pickers.consult.setUsable(!states.consult.disabled, busy.has("consult"));
    this.pickers.transfer.setUsable(!states.transfer.disabled, busy.has("transfer"));
  }

  /** Open `panel` (closing any other), or close it if open; null closes all. */
  toggle(panel) {
    const next = panel === this.openPanel ? null : panel;
    this.openPanel = next;
    for (const [name, element] of Object.entries(this.panels)) {
      element.hidden = name !== next;
      this.buttons[name].setAttribute("aria-expanded", String(name === next));
    }
    if (next === "consult" || next === "transfer") this.actions.onQuickConnects();
  }

  setQuickConnects(endpoints) {
    this.pickers.consult.setQuickConnects(endpoints);
    this.pickers.transfer.setQuickConnects(endpoints);
  }

  /** Send keypad digits once checked; a typed string is cleared once sent. */
  async sendDigits(text, typed) {
    const checked = checkDtmf(text);
    if (!checked.ok) {
      this.showDtmfProblem(checked.problem);
      return;
    }
    this.showDtmfProblem(null);
    if (await this._send("dtmf", checked.value) && typed) this.dtmfInput.value = "";
  }

  showDtmfProblem(text) {
    this.dtmfProblem.textContent = text || "";
    this.dtmfProblem.hidden = !text;
    if (text) this.dtmfInput.setAttribute("aria-invalid", "true");
    else this.dtmfInput.removeAttribute("aria-invalid");
  }

  tick() {
    if (this._since === null || Number.isNaN(this._since)) return;
    const ms = Date.now() - this._since;
    this.time.textContent = formatDuration(ms);
    this.time.setAttribute("datetime", `PT${Math.max(0, Math.floor(ms / 1000))}S`);
  }

  async _send(action, data) {
    const done = await this.actions.onAction(this.call.id, action, data);
    if (done && (action === "consult" || action === "transfer") && this.openPanel === action) this.toggle(null);
    return done;
  }

  _drawVariables(call) {
    const entries = screenPopEntries(call);
    const key = JSON.stringify(entries);
    if (key === this._varsKey) return;
    this._varsKey = key;
    const doc = this.root.ownerDocument;
    const rows = entries.map(([name, value]) => el(doc, "div", { className: "call-card__var" },
      el(doc, "dt", {}, name), el(doc, "dd", {}, value)));
    this.vars.replaceChildren(...rows);
    this.vars.hidden = rows.length === 0;
  }
}

/** The cards of every live contact, in the order the contacts first appeared. */
export class CallCards {
  /**
   * @param {HTMLElement} container where the cards go
   * @param {{onAction: (callId: string, action: string, data: any) => Promise<boolean>,
   *   onQuickConnects: () => void}} actions `onAction` sends the request of an action
   *   (`dtmf`, `consult`, `transfer` carry the checked input) and resolves true when
   *   it succeeded; `onQuickConnects` asks for the quick connects (a picker opened)
   */
  constructor(container, actions) {
    this.container = container;
    this.actions = actions;
    /** @type {Map<string, CallCard>} */
    this.cards = new Map();
    this.quickConnects = null;
  }

  /**
   * Draw the contacts: new ones get a card, gone ones lose theirs.
   * @param {Map<string, object>} calls by contact id
   * @param {{usable: boolean, stale: boolean, busy: Map<string, Set<string>>}} context
   *   `busy`: the actions in flight by contact id
   */
  render(calls, { usable, stale, busy }) {
    const doc = this.container.ownerDocument;
    for (const [id, card] of this.cards) {
      if (!calls.has(id)) {
        card.root.remove();
        this.cards.delete(id);
      }
    }
    let previous = null;
    for (const [id, call] of calls) {
      let card = this.cards.get(id);
      if (!card) {
        card = new CallCard(doc, this.actions);
        card.setQuickConnects(this.quickConnects);
        this.cards.set(id, card);
      }
      card.update(call, { usable, stale, busy: busy.get(id) || new Set() });
      // Cards follow the contacts' order; one already in place is not moved, since
      // moving a node takes the focus away from the button the agent just used.
      const wanted = previous ? previous.nextSibling : this.container.firstChild;
      if (card.root !== wanted) this.container.insertBefore(card.root, wanted);
      previous = card.root;
    }
    this.container.hidden = calls.size === 0;
  }

  setQuickConnects(endpoints) {
    this.quickConnects = endpoints;
    for (const card of this.cards.values()) card.setQuickConnects(endpoints);
  }

  tick() {
    for (const card of this.cards.values()) card.tick();
  }
}
