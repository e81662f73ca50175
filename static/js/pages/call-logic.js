/**
 * What the widget's call cards show and send, without the DOM: the live
 * contacts from `InboundCallStateChange` events, what each button may do
 * (`ButtonStates`), the target of each request, and the checks made on typed
 * input before anything is sent. Pure functions, tested with node:test.
 *
 * The shapes are calls.md's (protocol 1.1): a `Call` has `id`, `event`,
 * `CallType`, `CallVariables`, `ButtonStates`, `connections`, `queue`, `since`.
 * @module pages/call-logic
 */

/** E.164 as the schemas check it (calls.md): "+", a non-zero digit, at most 15 digits in all. */
export const E164 = /^\+[1-9][0-9]{1,14}$/;

/** The digits SendDTMF carries (calls.md): 0-9, *, # and "," (a pause), 1 to 64 of them. */
export const DTMF = /^[0-9*#,]{1,64}$/;

/**
 * The card's actions, in the order they are laid out, with the `ButtonStates`
 * item each one follows and its label. `keypad`, `consult` and `transfer` open
 * a panel; the others send a request at once.
 */
export const CALL_ACTIONS = Object.freeze([
  { action: "answer", rule: "answer", label: "Answer" },
  { action: "reject", rule: "reject", label: "Reject" },
  { action: "hold", rule: "hold", label: "Hold" },
  { action: "resume", rule: "resume", label: "Resume" },
  { action: "keypad", rule: "numberpad", label: "Keypad" },
  { action: "consult", rule: "consult", label: "Consult" },
  { action: "conference", rule: "conference", label: "Conference" },
  { action: "swap", rule: "swap", label: "Swap" },
  { action: "transfer", rule: "transfer", label: "Transfer" },
  { action: "disconnect", rule: "disconnect", label: "Hang up" },
  { action: "clearContact", rule: "clearContact", label: "Clear after-call work" },
]);

/** Actions that open a panel on the card instead of sending a request. */
export const PANEL_ACTIONS = Object.freeze(new Set(["keypad", "consult", "transfer"]));

/** `event` -> what the agent reads; `connecting` depends on the direction (see stateLabel). */
const STATE_LABELS = {
  connected: "Connected",
  hold: "On hold",
  missed: "Missed",
  Rejected: "Rejected",
  ACW: "After-call work",
  Dropped: "Ended",
};

const DIRECTION_LABELS = { inbound: "Inbound call", outbound: "Outbound call", transfer: "Transferred call" };

/**
 * The live contacts after one event: a `Dropped` contact leaves, any other
 * event replaces (or adds) its contact. A Map keeps the order in which the
 * contacts first appeared, as the hub replays them.
 * @param {Map<string, object>} calls the current contacts by id (not changed)
 * @param {object} call the event's `message.call`
 * @returns {Map<string, object>} a new map
 */
export function callsAfter(calls, call) {
  const next = new Map(calls);
  if (call.event === "Dropped") next.delete(call.id);
  else next.set(call.id, call);
  return next;
}

/**
 * The contacts of a StateSync answer (`message.calls`), as a map by id: what
 * the provider sees now, so contacts it no longer has are gone.
 * @param {object[]} list
 */
export function callsFromSync(list) {
  return (list || []).reduce((calls, call) => callsAfter(calls, call), new Map());
}

/** The customer's connection (inbound or outbound party), or null. */
export function customerConnection(call) {
  return (call.connections || []).find((c) => c.type === "inbound" || c.type === "outbound") || null;
}

/** The agent's own connection, or null. */
export function agentConnection(call) {
  return (call.connections || []).find((c) => c.type === "agent") || null;
}

/**
 * The number that names the call for the agent: the caller on an inbound (or
 * transferred) call, the dialled customer on an outbound one; from the
 * customer's connection when the variables lack it. "Unknown number" when
 * nothing says.
 */
export function partyNumber(call) {
  const vars = call.CallVariables || {};
  const fromVars = call.CallType === "outbound" ? vars.DNIS : vars.ANI;
  const customer = customerConnection(call);
  return fromVars || (customer && customer.phoneNumber) || "Unknown number";
}

/** The contact's state as the agent reads it ("Ringing", "Dialing", "On hold", ...). */
export function stateLabel(call) {
  if (call.event === "connecting") return call.CallType === "outbound" ? "Dialing" : "Ringing";
  return STATE_LABELS[call.event] || call.event;
}

/** "Inbound call", "Outbound call" or "Transferred call". */
export function directionLabel(call) {
  return DIRECTION_LABELS[call.CallType] || "Call";
}

/**
 * The screen-pop data to list on the card: every contact attribute, the
 * customer's number (ANI, or DNIS on an outbound call) left out since the
 * card's title shows it already.
 * @returns {[string, string][]} name, value pairs in the order Connect gave them
 */
export function screenPopEntries(call) {
  const shown = call.CallType === "outbound" ? "DNIS" : "ANI";
  return Object.entries(call.CallVariables || {}).filter(([name]) => name !== shown);
}

/**
 * What each action's button does now: `hidden` (ButtonStates says Hide, or
 * leaves the button out), `disabled` (Disable, not `usable`, or its request in
 * flight) and `busy`.
 * @param {object} call
 * @param {{usable: boolean, busy?: Set<string>}} context `busy` holds the actions in flight
 * @returns {Record<string, {rule: string, hidden: boolean, disabled: boolean, busy: boolean}>}
 */
export function buttonStates(call, { usable, busy = new Set() }) {
  const items = (call.ButtonStates && call.ButtonStates.items) || {};
  const states = {};
  for (const { action, rule } of CALL_ACTIONS) {
    const verdict = items[rule] || "Hide";
    const isBusy = busy.has(action);
    states[action] = {
      rule: verdict,
      hidden: verdict === "Hide",
      disabled: !usable || verdict !== "Enable" || isBusy,
      busy: isBusy,
    };
  }
  return states;
}

/**
 * The `data` of the request an action sends for this contact, or undefined
 * for none. Every request names its target (calls.md: a contact id for
 * Answer/Reject/ClearContact, a connection id for Hold/Resume/Disconnect) so
 * that it still acts on the right contact when the agent has two.
 * @param {string} action an entry of CALL_ACTIONS (not a panel action)
 * @param {object} call
 */
export function requestData(action, call) {
  switch (action) {
    case "answer":
    case "reject":
    case "clearContact":
      return call.id;
    case "hold": {
      const held = customerConnection(call);
      return held ? held.connectionId : undefined;
    }
    case "resume": {
      const onHold = (call.connections || []).find((c) => c.type !== "agent" && c.status === "hold");
      const target = onHold || customerConnection(call);
      return target ? target.connectionId : undefined;
    }
    case "disconnect": {
      // The agent's own connection: hanging it up ends the agent's part of the call.
      const own = agentConnection(call);
      return own ? own.connectionId : undefined;
    }
    default:
      return undefined; // conference, swap: act on the contact the provider has
  }
}

/**
 * Check a typed phone number before it is sent (the hub would refuse it with
 * SCHEMA_VIOLATION). Spaces, dashes, dots and brackets are dropped; the rest
 * must be E.164.
 * @param {string} text
 * @returns {{ok: true, value: string} | {ok: false, problem: string}}
 */
export function checkPhoneNumber(text) {
  const value = String(text ?? "").replace(/[\s\-.()]/g, "");
  if (value === "") return { ok: false, problem: "Type a phone number." };
  if (!value.startsWith("+")) {
    return { ok: false, problem: "Start the number with + and the country code, e.g. +16013261548." };
  }
  if (!E164.test(value)) {
    return { ok: false, problem: "A phone number is + and 2 to 15 digits, the first not 0." };
  }
  return { ok: true, value };
}

/**
 * Check keypad digits before they are sent: 0-9, *, # and "," (a pause), 1 to 64.
 * @param {string} text
 * @returns {{ok: true, value: string} | {ok: false, problem: string}}
 */
export function checkDtmf(text) {
  const value = String(text ?? "").replace(/\s/g, "");
  if (value === "") return { ok: false, problem: "Type the digits to send." };
  if (value.length > 64) return { ok: false, problem: "Send at most 64 digits at once." };
  if (!DTMF.test(value)) return { ok: false, problem: "Only 0-9, *, # and , (a pause) can be sent." };
  return { ok: true, value };
}

/**
 * The `data` for Transfer, Consult or SetMakeCall from the agent's choice: a
 * quick connect (its ARN) when one is picked, else the typed number, checked.
 * @param {{endpointARN?: string|null, number?: string}} choice
 * @returns {{ok: true, value: string|{endpointARN: string}} | {ok: false, problem: string}}
 */
export function targetData({ endpointARN = null, number = "" } = {}) {
  if (endpointARN) return { ok: true, value: { endpointARN } };
  return checkPhoneNumber(number);
}

/**
 * The queued next state of SetAgentState's message, as the agent reads it, or
 * null when nothing is queued (calls.md: `message.data.nextState`).
 * @param {object|null} message
 */
export function nextStateName(message) {
  const next = message && message.data && message.data.nextState;
  return next && next.name ? next.name : null;
}
