/**
 * The widget's DOM: finds the elements of widget.html and draws what it is
 * told. It knows nothing of the hub; widget.js decides what to show.
 * @module pages/widget-view
 */

import { formatDuration, hubStatusText } from "../lib/format.js";
import { CallCards, TargetPicker, keypadGrid } from "./call-card.js";
import { MenuButton } from "./menu-button.js";
import { Notices } from "./notices.js";
import {
  blockedButtons, queuedStateText, stateButtonLabels, stateChangesQueue, stateKindText,
} from "./widget-text.js";

/** Widget button -> its key in rules.ButtonStates.items. */
const BUTTON_RULES = {
  ready: "Ready",
  notReady: "NotReady",
  logout: "Logout",
  mute: "mute",
  unmute: "unmute",
};


export class WidgetView {
  /**
   * @param {Document} doc
   * @param {{onReady: Function, onNotReady: (reason: string) => void, onLogout: Function,
   *   onMute: Function, onUnmute: Function, onCancelNext: Function,
   *   onCallAction: (callId: string, action: string, data: any) => Promise<boolean>,
   *   onDial: (data: string|{endpointARN: string}) => Promise<boolean>,
   *   onQuickConnects: () => void}} actions the call actions are CallCards' (call-card.js)
   */
  constructor(doc, actions) {
    const $ = (id) => doc.getElementById(id);
    this.root = $("widget");
    this.agentName = $("agent-name");
    this.hub = $("hub-status");
    this.provider = $("provider-status");
    this.card = $("state-card");
    this.stateName = $("state-name");
    this.stateCoarse = $("state-coarse");
    this.duration = $("state-duration");
    this.muteStatus = $("mute-status");
    this.staleNote = $("state-stale-note");
    this.meta = $("state-meta");
    this.guide = $("state-guide");
    this.nextState = $("state-next");
    this.nextStateText = $("state-next-text");
    this.cancelNext = $("btn-cancel-next");
    this.stateActions = $("state-actions");
    this.calls = new CallCards($("calls"), { onAction: actions.onCallAction,
      onQuickConnects: actions.onQuickConnects });
    this.dialer = $("dialer");
    this.dialPicker = new TargetPicker($("dial-form"), actions.onDial);
    $("dial-keys").append(keypadGrid(doc, "Dial pad", (key) => this.dialPicker.type(key)));
    this.dialer.addEventListener("toggle", () => {
      if (this.dialer.open) actions.onQuickConnects();
    });
    this.buttons = {
      ready: $("btn-ready"),
      notReady: $("btn-notready"),
      logout: $("btn-logout"),
      mute: $("btn-mute"),
      unmute: $("btn-unmute"),
    };
    this.micHint = $("mic-hint");
    this.notices = new Notices($("notices"));
    this.menu = new MenuButton(this.buttons.notReady, $("notready-menu"), actions.onNotReady);
    this.buttons.ready.addEventListener("click", () => actions.onReady());
    this.buttons.logout.addEventListener("click", () => actions.onLogout());
    this.buttons.mute.addEventListener("click", () => actions.onMute());
    this.buttons.unmute.addEventListener("click", () => actions.onUnmute());
    this.cancelNext.addEventListener("click", () => actions.onCancelNext());
    this._since = null;
    this._ticker = setInterval(() => this._tick(), 1000);
  }

  /** The hub connection indicator. */
  showHub(state) {
    this.hub.dataset.status = state;
    this.hub.querySelector(".indicator__text").textContent = hubStatusText(state);
  }

  /** The provider (softphone page) indicator; null = not known yet. */
  showProvider(connected) {
    const status = connected === null ? "unknown" : connected ? "up" : "down";
    this.provider.dataset.status = status;
    this.provider.querySelector(".indicator__text").textContent = {
      unknown: "Softphone: unknown", up: "Softphone: connected", down: "Softphone: offline",
    }[status];
  }

  showAgent(text) {
    this.agentName.textContent = text;
  }

  /**
   * Draw SetAgentState's message (or the equivalent built from StateSync).
   * @param {{event: string, data: object, rules: object|null}} message
   */
  showState(message) {
    const { data } = message;
    this.card.dataset.coarse = data.state;
    this.card.dataset.type = data.type;
    this.stateName.textContent = message.event;
    this.stateCoarse.textContent = stateKindText(data, message.event);
    this.muteStatus.hidden = !data.muted;
    const next = queuedStateText(data.nextState);
    this.nextState.hidden = next === null;
    // "After this call: " then the state, kept on one line when it fits.
    const [lead, what] = next ? next.split(/(?<=: )/) : ["", ""];
    const strong = this.nextStateText.ownerDocument.createElement("strong");
    strong.textContent = what || "";
    this.nextStateText.replaceChildren(lead, strong);
    this._since = Date.parse(data.stateChangeTime);
    this._tick();
    if (data.name) this.showAgent(data.loginName && data.loginName !== data.name
      ? `${data.name} (${data.loginName})` : data.name);
    this.root.dataset.ready = "true";
  }

  /**
   * What the card says instead of a state: what is wrong and what to do
   * (null: there is a state, show it). Without a state the name, kind and
   * time ("— / Unknown · 0:00") would say nothing, so they are hidden.
   * @param {string|null} text
   * @param {"wait"|"error"} [kind] an error (the page cannot work as opened) is drawn in red
   */
  showGuide(text, kind = "wait") {
    this.guide.hidden = text === null;
    if (text === null) delete this.card.dataset.guide;
    else this.card.dataset.guide = kind;
    this.guide.textContent = text || "";
    const empty = this.stateName.textContent === "—";
    this.meta.hidden = empty;
    this.stateName.hidden = empty && text !== null;
  }

  /** Grey the state out when it may no longer be true (softphone gone). */
  markStale(stale) {
    this.card.dataset.stale = String(stale);
    this.staleNote.hidden = !stale || this.stateName.textContent === "—";
  }

  /**
   * Enable, disable or hide each button as rules.ButtonStates says. For a
   * button the rules leave out (the seed sample has no Logout), the rule is
   * derived from the agent data so the widget never offers a no-op.
   * `usable` false disables everything (no hub or no softphone: a click could
   * not be carried out).
   * @param {object|null} message the SetAgentState message, or null
   * @param {boolean} usable
   * @param {Set<string>} busy buttons whose request is in flight
   */
  applyButtons(message, usable, busy = new Set()) {
    const items = (message && message.rules && message.rules.ButtonStates
      && message.rules.ButtonStates.items) || {};
    const data = (message && message.data) || {};
    // One state request at a time: the buttons it conflicts with wait for it too.
    const blocked = blockedButtons(busy);
    // On a contact each state button only queues its state for after it: it says
    // so, and none of them is the filled primary action.
    const queued = stateChangesQueue(message);
    this.stateActions.dataset.queue = String(queued);
    const labels = stateButtonLabels(queued);
    for (const button of ["ready", "notReady", "logout"]) {
      this.buttons[button].querySelector("[data-part='label']").textContent = labels[button];
    }
    const fallback = {
      Ready: data.state === "Ready" ? "Disable" : "Enable",
      NotReady: "Enable",
      Logout: data.state === "Logout" ? "Disable" : "Enable",
      mute: data.muted ? "Hide" : "Enable",
      unmute: data.muted ? "Enable" : "Hide",
    };
    for (const [button, rule] of Object.entries(BUTTON_RULES)) {
      const element = this.buttons[button];
      const verdict = items[rule] || fallback[rule];
      element.hidden = verdict === "Hide";
      element.disabled = !usable || verdict !== "Enable" || blocked.has(button);
      element.setAttribute("aria-busy", String(busy.has(button)));
      element.dataset.rule = verdict;
    }
    this.micHint.hidden = !(this.buttons.mute.hidden && this.buttons.unmute.hidden);
    if (this.buttons.notReady.disabled) this.menu.close();
  }

  /**
   * The queued state's cancel button: shown when the widget knows how to cancel it.
   * @param {{label: string}|null} cancel see widget-text.js cancelQueued
   * @param {boolean} usable hub and softphone connected
   * @param {Set<string>} busy buttons whose request is in flight
   */
  applyCancelNext(cancel, usable, busy = new Set()) {
    this.cancelNext.hidden = cancel === null;
    if (cancel) this.cancelNext.setAttribute("aria-label", cancel.label);
    this.cancelNext.disabled = !usable || blockedButtons(busy).has("cancelNext");
    this.cancelNext.setAttribute("aria-busy", String(busy.has("cancelNext")));
  }

  /**
   * Fill the Not Ready menu.
   * @param {{label: string, type: string}[]} states from GetStates
   * @param {string|null} current the current state's name (shown as current, not selectable)
   */
  showReasons(states, current) {
    const key = JSON.stringify([states, current]);
    if (key === this._reasonsKey) return; // rebuilding would steal focus from an open menu
    this._reasonsKey = key;
    this.menu.setItems(states.filter((s) => s.type === "not_routable").map((s) => ({
      value: s.label, label: s.label, current: s.label === current, disabled: s.label === current,
    })));
  }

  /**
   * Draw the live contacts' cards.
   * @param {Map<string, object>} calls by contact id
   * @param {{usable: boolean, stale: boolean, busy: Map<string, Set<string>>}} context
   */
  showCalls(calls, context) {
    this.calls.render(calls, context);
  }

  /** The quick connects for every picker (null: not loaded yet). */
  showQuickConnects(endpoints) {
    this.calls.setQuickConnects(endpoints);
    this.dialPicker.setQuickConnects(endpoints);
  }

  /**
   * The dial pad's Call button follows the agent's `make_call` rule.
   * @param {object|null} message SetAgentState's message
   * @param {boolean} usable
   * @param {boolean} busy SetMakeCall in flight
   */
  applyDialer(message, usable, busy) {
    const items = (message && message.rules && message.rules.ButtonStates
      && message.rules.ButtonStates.items) || {};
    const verdict = items.make_call || "Enable";
    this.dialer.hidden = verdict === "Hide";
    this.dialPicker.setUsable(usable && verdict === "Enable", busy);
  }

  /**
   * Show an error's msg, or `text` when the page knows better (the technical
   * cause goes in the tooltip).
   */
  showError(error, text = null) {
    this.notices.show(text || error.msg || "The request failed.", {
      kind: "error", errorType: error.errorType, detail: error.errorMessage,
    });
  }

  showInfo(text) {
    this.notices.show(text, { kind: "info" });
  }

  _tick() {
    this.calls.tick();
    if (this._since === null || Number.isNaN(this._since)) return;
    const ms = Date.now() - this._since;
    this.duration.textContent = formatDuration(ms);
    this.duration.setAttribute("datetime", `PT${Math.max(0, Math.floor(ms / 1000))}S`);
  }
}
