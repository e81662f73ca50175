/**
 * Stands in for the CCP's iframe when ccp.html runs emulated: shows the
 * emulated agent and offers the controls a demo needs (pick a state in "the
 * CCP", start or end a call, make Connect fail or go silent once). Tests
 * drive the same model through `window.ccpEmulator` instead.
 * @module emulator/panel
 */

import { formatDuration } from "../lib/format.js";

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
  const select = h("select", { id: "emu-select", class: "field" },
    ...emulator.agentStates.map((s) => h("option", { value: s.name }, s.name)));
  const callsSeen = h("span", { id: "emu-calls" }, "0");
  const lastCall = h("code", { class: "emu__last-call", id: "emu-last-call" }, "none yet");

  const startCall = h("button", { type: "button", class: "btn", id: "emu-start-call",
    onclick: () => emulator.startCall() }, "Start call");
  const endCall = h("button", { type: "button", class: "btn", id: "emu-end-call",
    onclick: () => emulator.endCall() }, "End call");

  container.replaceChildren(h("div", { class: "emu" },
    h("div", { class: "emu__head" },
      h("span", { class: "badge" }, "Emulated CCP"),
      h("strong", { class: "emu__agent" }, `${emulator.name} `),
      h("span", { class: "emu__login" }, `(${emulator.username})`)),
    h("p", { class: "emu__hint" },
      "The real Amazon Connect Streams library runs on this page; only its backend is emulated."),
    stateLine, nextLine, callLine,
    h("div", { class: "emu__row" },
      h("label", { for: "emu-select" }, "Agent picks a state in the CCP"),
      h("div", { class: "emu__inline" }, select,
        h("button", { type: "button", class: "btn", id: "emu-apply",
          onclick: () => emulator.selectState(select.value) }, "Set"))),
    h("div", { class: "emu__row" },
      h("span", { class: "emu__label" }, "Call"),
      h("div", { class: "emu__inline" }, startCall, endCall)),
    h("div", { class: "emu__row" },
      h("span", { class: "emu__label" }, "Next putAgentState"),
      h("div", { class: "emu__inline" },
        h("button", { type: "button", class: "btn", id: "emu-fail",
          onclick: () => emulator.failNext("putAgentState") }, "Fail it"),
        h("button", { type: "button", class: "btn", id: "emu-never",
          onclick: () => emulator.neverAnswerNext("putAgentState") }, "Never answer"))),
    h("p", { class: "emu__calls" }, "Backend calls seen: ", callsSeen, " · last: ", lastCall)));

  const update = () => {
    const { snapshot } = emulator.agentData();
    stateLine.dataset.type = snapshot.state.type;
    stateName.textContent = snapshot.state.name;
    stateTime.dataset.since = String(snapshot.state.startTimestamp.getTime());
    nextLine.textContent = snapshot.nextState ? `Next state (queued): ${snapshot.nextState.name}` : "";
    nextLine.hidden = !snapshot.nextState;
    callLine.textContent = emulator.call
      ? `On a softphone call with ${emulator.call.phoneNumber}${emulator.muted ? " · muted" : ""}`
      : "No call";
    startCall.disabled = Boolean(emulator.call);
    endCall.disabled = !emulator.call;
    if (document.activeElement !== select) select.value = emulator.selected.name;
    callsSeen.textContent = String(emulator.calls.length);
    const last = emulator.calls[emulator.calls.length - 1];
    lastCall.textContent = last ? `${last.method} ${JSON.stringify(last.params?.state?.name ?? last.params ?? "")}` : "none yet";
    tick();
  };
  const tick = () => {
    const since = Number(stateTime.dataset.since);
    if (since) stateTime.textContent = formatDuration(Date.now() - since);
  };
  emulator.addEventListener("change", update);
  setInterval(tick, 1000);
  update();
}
