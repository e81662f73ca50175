/**
 * The widget's sentences that depend on what it knows: the state's kind, the
 * empty and error states, and the notice for a state request that timed out.
 * Pure functions (no DOM), so node:test checks them (tests/js/widget-text.test.js).
 * @module pages/widget-text
 */

import { coarseLabel } from "../lib/format.js";
import { ErrorType } from "../lib/names.js";

/**
 * The line under the state's name: what the agent is doing, in words.
 * A system state (Busy, PendingBusy, CallingCustomer…) means a contact holds the
 * agent, whatever its coarse state says, so it reads as a call, not "Not ready".
 * @param {{state?: string, type?: string}} data SetAgentState's data
 * @param {string} [name] the state's name (SetAgentState's event)
 */
export function stateKindText(data, name = "") {
  if (data.type !== "system") return coarseLabel(data.state);
  if (name === "AfterCallWork") return "After-call work";
  return "On a call";
}

/**
 * What the state card says when it has no state to show, or null when it has one.
 * @param {{hub: string, providerConnected: boolean|null, agent: string|null, hasState: boolean}} facts
 *   hub: the connection state; agent: the agent's name once the hub welcomed the page
 */
export function emptyStateText({ hub, providerConnected, agent, hasState }) {
  if (hasState) return null;
  if (hub !== "open") return null; // the connection's own message says what is wrong
  const who = agent ? `${agent}'s` : "the agent's";
  if (providerConnected === false) {
    return `Waiting for ${who} softphone: open the CCP page for this agent.`;
  }
  return "Asking the softphone for the agent's state…";
}

/**
 * Why the page cannot connect, and what to do, when the hub refused its Hello
 * (or the client gave up). Null when there is nothing to say.
 * @param {{errorType?: string, errorMessage?: string, msg?: string}|null} error the client's closeError
 * @param {{token: boolean}} how the page was opened: with a token or an agent name
 */
export function connectionProblemText(error, { token }) {
  if (!error) return null;
  const cause = trimStop(error.errorMessage || error.msg || error.errorType || "no reason given");
  if (error.errorType === ErrorType.NOT_AUTHENTICATED) {
    return token
      ? `The bridge refused this page's token: ${cause}. Ask for a new link.`
      : `The bridge refused this page: ${cause}. Open it with a token (?token=…) from your administrator.`;
  }
  if (error.errorType === ErrorType.FORBIDDEN) {
    return `The bridge refused this page: ${cause}. Ask for a link for this agent.`;
  }
  return `Cannot reach the bridge: ${cause}. Check the link's hub address, then reload the page.`;
}

/**
 * The notice for a failed state request (Ready, Not Ready, Log out). A timeout
 * means nobody heard back: the change may still happen, so the notice says so
 * instead of claiming the state is unchanged; any other error keeps its `msg`.
 * @param {{errorType?: string, errorMessage?: string, msg?: string}} error
 */
export function stateRequestErrorText(error) {
  if (isTimeout(error)) {
    return "The softphone did not answer in time, so this page cannot tell whether the state changed. "
      + "The card above shows the state as soon as the softphone reports it.";
  }
  return error.msg || "The request failed.";
}

/** A timeout: the hub's or the client's REQUEST_TIMEOUT, or the provider's own call timeout. */
export function isTimeout(error) {
  if (error.errorType === ErrorType.REQUEST_TIMEOUT) return true;
  // The provider answers with its kind's error when Connect never answered (provider/pending.js).
  return /did not answer .* within \d+ ms|no snapshot showed its effect within/.test(error.errorMessage || "");
}

/**
 * Buttons to disable while others are in flight: the state buttons conflict
 * with each other (one state at a time), and mute with unmute.
 * @param {Iterable<string>} busy buttons whose request is in flight
 * @returns {Set<string>} busy buttons and the buttons they conflict with
 */
export function blockedButtons(busy) {
  const groups = [["ready", "notReady", "logout", "cancelNext"], ["mute", "unmute"]];
  const blocked = new Set();
  for (const button of busy) {
    blocked.add(button);
    for (const group of groups) if (group.includes(button)) group.forEach((b) => blocked.add(b));
  }
  return blocked;
}

function trimStop(text) {
  return String(text).trim().replace(/[.\s]+$/, "");
}

/**
 * Whether the agent is on a contact now: a system state (Busy, PendingBusy,
 * CallingCustomer, AfterCallWork…). Connect then queues a state change for
 * after the contact instead of making it (`enqueueNextState`).
 * @param {object|null} message SetAgentState's message
 */
export function stateChangesQueue(message) {
  return Boolean(message && message.data && message.data.type === "system");
}

/**
 * The state buttons' labels: during a contact each would only queue its state,
 * and says so.
 * @param {boolean} queued see stateChangesQueue
 * @returns {{ready: string, notReady: string, logout: string}}
 */
export function stateButtonLabels(queued) {
  return queued
    ? { ready: "Ready after call", notReady: "Not Ready after call", logout: "Log out after call" }
    : { ready: "Ready", notReady: "Not Ready", logout: "Log out" };
}

/**
 * The queued state in words: "After this call: Not Ready (Lunch)", or null.
 * @param {{name: string, type: string}|null|undefined} next `message.data.nextState`
 */
export function queuedStateText(next) {
  if (!next || !next.name) return null;
  if (next.type === "routable") return `After this call: Ready (${next.name})`;
  if (next.type === "offline") return "After this call: Logged out";
  return `After this call: Not Ready (${next.name})`;
}

/**
 * How to cancel the queued state, or null when the widget cannot. Streams has
 * no call that clears a queued state; Connect clears it when the agent picks,
 * during the contact, the state they are in behind the call (the CCP's "How to
 * cancel Next status": back to Available). The protocol does not carry that
 * state, so the widget uses the last non-system state it saw (`availability`),
 * and offers the cancel only when that was a routable one (the case Connect
 * documents; every routed inbound call starts from one).
 * @param {object|null} message SetAgentState's message
 * @param {{name: string, type: string}|null} availability the last state seen before the contact
 * @returns {{reason: string, label: string}|null} SetReady's ReasonCodeId and the button's accessible name
 */
export function cancelQueued(message, availability) {
  if (!stateChangesQueue(message) || !message.data.nextState) return null;
  if (!availability || availability.type !== "routable") return null;
  return { reason: availability.name, label: `Cancel: stay ${availability.name} after this call` };
}
