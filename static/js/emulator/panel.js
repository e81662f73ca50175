/**
 * Stands in for the CCP's iframe when ccp.html runs emulated: shows the
 * emulated agent and its contacts, and offers the controls a demo needs (pick
 * a state in "the CCP", mute in "the CCP", an administrator removing a state,
 * ring a call, the customer hangs up, the third party answers, make Connect
 * fail or go silent once, with what is armed shown until it is used or
 * cancelled). "Backend calls seen" follows the emulator's "call" event, so it
 * changes the moment a call arrives. Tests drive the same model through
 * `window.ccpEmulator`, or click the panel.
 * @module emulator/panel
 */

import { formatDuration } from "../lib/format.js";
import { CONTACT_METHODS } from "./ccp-emulator.js";

/** Create an element with attributes and children, for markup built in code. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") element.className = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value);
  }
  element.append(...children);
  return element;
}

/** How an armed behaviour reads on its button and in the armed list. */
const ARMED_TEXT = { fail: "will fail", never: "gets no answer" };

/** Screen-pop data a demo call carries. */
const DEMO_ATTRIBUTES = { CustomerId: "C-20411", Reason: "billing" };

/** One line per contact: who, what state, each connection. */
function contactItem(contact) {
  const customer = contact.connections.find((c) => c.initial);
  const direction = contact.initiationMethod === "outbound" ? "Outbound to" : "Inbound from";
  const parties = contact.connections.map((c) => {
    const who = c.type === "agent" ? "agent" : (c.endpoint.phoneNumber || c.endpoint.name || c.type);
    return h("li", { class: "emu__party", "data-status": c.state.type }, `${who}: ${c.state.type}`);
  });
  return h("li", { class: "emu__contact", "data-state": contact.state.type, "data-contact-id": contact.contactId },
    h("span", { class: "emu__contact-head" },
      `${direction} ${customer?.endpoint.phoneNumber ?? "?"} · `,
      h("strong", {}, contact.state.type), ` · ${contact.queue?.name ?? ""}`),
    h("ul", { class: "emu__parties" }, ...parties));
}

/** One sentence on the first contact: ringing, dialling, on the call, after-call work. */
function callSummary(emulator) {
  const contact = emulator.contacts[0];
  if (!contact) return "No call";
  const number = contact.connections.find((c) => c.initial)?.endpoint.phoneNumber ?? "?";
  const agentLeg = contact.connections.find((c) => c.type === "agent");
  if (contact.state.type === "connecting") {
    if (contact.initiationMethod === "outbound") return `Calling ${number}…`;
    return agentLeg?.state.type === "connecting" ? `Ringing: ${number}` : `Connecting ${number}…`;
  }
  if (contact.state.type === "connected") {
    return `On a softphone call with ${number}${emulator.muted ? " · muted" : ""}`;
  }
  if (contact.state.type === "ended") return `After-call work (${number})`;
  return `Call ${contact.state.type} (${number})`;
}

/**
 * Fill `container` with the emulator's panel and keep it current.
 * @param {HTMLElement} container
 * @param {import("./ccp-emulator.js").CcpEmulator} emulator
 */
export function renderEmulatorPanel(container, emulator) {
  const stateName = h("span", { class: "emu__state-name", id: "emu-state-name" });
  const stateTime = h("time", { class: "emu__state-time" });
  const stateLine = h("p", { class: "emu__state", id: "emu-state" }, stateName, stateTime);
  const nextLine = h("p", { class: "emu__next", id: "emu-next" });
  const callLine = h("p", { class: "emu__call", id: "emu-call" });
  const contactList = h("ul", { class: "emu__contacts", id: "emu-contacts", "aria-label": "Contacts" });
  const select = h("select", { id: "emu-select", class: "field" });
  const removeSelect = h("select", { id: "emu-remove-state", class: "field",
    "aria-label": "State the administrator removes" });
  const callsSeen = h("span", { id: "emu-calls" }, "0");
  const lastCall = h("code", { class: "emu__last-call", id: "emu-last-call" }, "none yet");
  const problem = h("p", { class: "emu__problem", id: "emu-problem", role: "status" });

  /** Run a steering action; what Connect would refuse is shown, not thrown. */
  const act = (fn) => () => {
    problem.textContent = "";
    try {
      fn();
    } catch (err) {
      problem.textContent = err.message;
    }
  };
  const button = (id, label, fn) => h("button", { type: "button", class: "btn", id, onclick: act(fn) }, label);

  const caller = h("input", { id: "emu-caller", class: "field", type: "tel", value: "+15555550123",
    "aria-label": "Caller's number" });
  const ring = button("emu-ring", "Ring", () => emulator.incomingCall({ phoneNumber: caller.value.trim(),
    attributes: DEMO_ATTRIBUTES, queue: "Billing" }));
  const hangUp = button("emu-hang-up", "Customer hangs up", () => emulator.customerHangsUp());
  const partyAnswers = button("emu-party-answers", "Third party answers", () => emulator.thirdPartyAnswers());
  const startCall = button("emu-start-call", "Start call", () => emulator.startCall());
  const endCall = button("emu-end-call", "End call", () => emulator.endCall());
  const mute = button("emu-mute", "Mute", () => emulator.agentMutes(true));
  const unmute = button("emu-unmute", "Unmute", () => emulator.agentMutes(false));
  const remove = button("emu-remove", "Remove", () => emulator.removeAgentState(removeSelect.value));
  const method = h("select", { id: "emu-method", class: "field", "aria-label": "Backend call" },
    h("option", { value: "putAgentState" }, "putAgentState (state change)"),
    h("option", { value: "mute" }, "mute (the softphone's mute and unmute)"),
    ...CONTACT_METHODS.map((m) => h("option", { value: m }, m)));
  const fail = button("emu-fail", "Fail it", () => arm("fail"));
  const never = button("emu-never", "Never answer", () => arm("never"));
  const armedLine = h("p", { class: "emu__armed", id: "emu-armed", role: "status" });
  /** Arm `behaviour` for the chosen method, or cancel it when it is armed already. */
  const arm = (behaviour) => {
    const armed = emulator.armed.some((a) => a.method === method.value && a.behaviour === behaviour);
    if (armed) emulator.cancelNext(method.value, behaviour);
    else if (behaviour === "fail") emulator.failNext(method.value);
    else emulator.neverAnswerNext(method.value);
  };

  container.replaceChildren(h("div", { class: "emu" },
    h("div", { class: "emu__head" },
      h("span", { class: "badge" }, "Emulated CCP"),
      h("strong", { class: "emu__agent" }, `${emulator.name} `),
      h("span", { class: "emu__login" }, `(${emulator.username})`)),
    h("p", { class: "emu__hint" },
      "The real Amazon Connect Streams library runs on this page; only its backend is emulated."),
    stateLine, nextLine, callLine, contactList,
    h("div", { class: "emu__row" },
      h("label", { for: "emu-select" }, "Agent picks a state in the CCP"),
      h("div", { class: "emu__inline" }, select, button("emu-apply", "Set", () => emulator.selectState(select.value)))),
    h("div", { class: "emu__row" },
      h("label", { for: "emu-caller" }, "A customer calls"),
      h("div", { class: "emu__inline" }, caller, ring)),
    h("div", { class: "emu__row" },
      h("span", { class: "emu__label" }, "On the call"),
      h("div", { class: "emu__inline" }, hangUp, partyAnswers, startCall, endCall)),
    h("div", { class: "emu__row" },
      h("span", { class: "emu__label" }, "Agent presses in the CCP (softphone call only)"),
      h("div", { class: "emu__inline" }, mute, unmute)),
    h("div", { class: "emu__row" },
      h("label", { for: "emu-remove-state" }, "An administrator removes a state"),
      h("div", { class: "emu__inline" }, removeSelect, remove)),
    h("div", { class: "emu__row" },
      h("label", { for: "emu-method" }, "Next backend call"),
      h("div", { class: "emu__inline" }, method),
      h("div", { class: "emu__inline" }, fail, never),
      armedLine),
    h("p", { class: "emu__quick" }, "Quick connects: ",
      emulator.quickConnects.map((q) => `${q.name}${q.phoneNumber ? ` (${q.phoneNumber})` : ""}`).join(", ")),
    problem,
    h("p", { class: "emu__calls" }, "Backend calls seen: ", callsSeen, " · last: ", lastCall)));

  /** Both state pickers list the agent's states as configured now (a removed one goes). */
  let statesKey = null;
  const updateStates = () => {
    const names = emulator.agentStates.map((s) => s.name);
    if (names.join("\n") === statesKey) return;
    statesKey = names.join("\n");
    const keep = removeSelect.value;
    select.replaceChildren(...names.map((name) => h("option", { value: name }, name)));
    removeSelect.replaceChildren(...names.map((name) => h("option", { value: name }, name)));
    if (names.includes(keep)) removeSelect.value = keep;
    remove.disabled = names.length === 0;
  };
  /** The buttons of the chosen method read as armed until the failure is used or cancelled. */
  const updateArmed = () => {
    const armed = emulator.armed;
    for (const [control, behaviour, idle] of [[fail, "fail", "Fail it"], [never, "never", "Never answer"]]) {
      const on = armed.some((a) => a.method === method.value && a.behaviour === behaviour);
      control.dataset.armed = String(on);
      control.textContent = on ? `Next ${method.value} ${ARMED_TEXT[behaviour]} — cancel` : idle;
    }
    armedLine.textContent = armed.length
      ? `Armed: ${armed.map((a) => `next ${a.method} ${ARMED_TEXT[a.behaviour]}`).join("; ")}`
      : "";
    armedLine.hidden = armed.length === 0;
  };
  /** "Backend calls seen": the count and the latest, the moment a call arrives. */
  const updateCalls = () => {
    callsSeen.textContent = String(emulator.calls.length);
    const last = emulator.calls[emulator.calls.length - 1];
    lastCall.textContent = last ? `${last.method} ${JSON.stringify(last.params?.state?.name ?? last.params ?? "")}` : "none yet";
  };
  const update = () => {
    updateStates();
    const { snapshot } = emulator.agentData();
    stateLine.dataset.type = snapshot.state.type;
    stateName.textContent = snapshot.state.name;
    stateTime.dataset.since = String(snapshot.state.startTimestamp.getTime());
    nextLine.textContent = snapshot.nextState ? `Next state (queued): ${snapshot.nextState.name}` : "";
    nextLine.hidden = !snapshot.nextState;
    const { call } = emulator;
    callLine.textContent = callSummary(emulator);
    contactList.replaceChildren(...emulator.contacts.map(contactItem));
    contactList.hidden = emulator.contacts.length === 0;
    const live = Boolean(call);
    ring.disabled = emulator.contacts.length > 0 || emulator.selected.type !== "routable";
    hangUp.disabled = !live;
    partyAnswers.disabled = !emulator.contacts.some((c) => c.connections.some((p) => !p.initial
      && p.type !== "agent" && p.state.type === "connecting"));
    startCall.disabled = emulator.contacts.length > 0;
    endCall.disabled = emulator.contacts.length === 0;
    mute.disabled = !emulator.hasLiveMedia || emulator.muted;
    unmute.disabled = !emulator.hasLiveMedia || !emulator.muted;
    if (document.activeElement !== select) select.value = emulator.selected.name;
    updateCalls();
    tick();
  };
  const tick = () => {
    const since = Number(stateTime.dataset.since);
    if (since) stateTime.textContent = formatDuration(Date.now() - since);
  };
  emulator.addEventListener("change", update);
  emulator.addEventListener("call", updateCalls);
  emulator.addEventListener("armed", updateArmed);
  method.addEventListener("change", updateArmed);
  setInterval(tick, 1000);
  update();
  updateArmed();
}
