/**
 * Turns Streams voice contacts (`connect.Contact`) into the `Call` of wire
 * protocol v1.1 (shared/protocol/calls.md): the `call` of
 * InboundCallStateChange and the entries of InboundCall/StateSync.
 *
 * Two steps, so the mapping is testable without Streams: `readContact` reads
 * what matters from the live Streams objects into a plain view, then pure
 * functions of that view decide `event`, `ButtonStates`, `CallType`,
 * `CallVariables` and the rest. Shapes follow shared/protocol/samples/calls/.
 * @module provider/calls
 */

import { isoTime } from "./agent-state.js";

/** The API's 11 buttons, in its order. */
export const BUTTONS = Object.freeze(["answer", "reject", "disconnect", "hold", "resume", "clearContact",
  "consult", "numberpad", "swap", "transfer", "conference"]);

/** Streams connection states -> the protocol's four statuses. */
const CONNECTION_STATUS = {
  init: "connecting",
  connecting: "connecting",
  connected: "connected",
  hold: "hold",
  disconnected: "disconnected",
  silent_monitor: "connected",
  barge: "connected",
};

/** Contact states in which an inbound contact is still being offered to the agent. */
const OFFERED_STATES = new Set(["init", "incoming", "pending", "connecting"]);

/** Streams initiation methods of a contact transferred to this agent. */
const TRANSFERRED = new Set(["transfer", "queue_transfer"]);

/** `"sip:+15555550123@host"` -> `"+15555550123"`; empty -> null. */
function phoneOf(endpoint) {
  if (!endpoint) return null;
  const raw = typeof endpoint.stripPhoneNumber === "function" ? endpoint.stripPhoneNumber()
    : String(endpoint.phoneNumber || "").replace(/sip:([^@]*)@.*/, "$1");
  return raw || null;
}

/** A getter Streams may lack on older contacts; null instead of throwing. */
function optional(contact, method) {
  return typeof contact[method] === "function" ? contact[method]() ?? null : null;
}

/**
 * What the mapping needs from a Streams contact, read once.
 * @param {object} contact a connect.Contact (voice)
 * @returns {ContactView}
 *
 * @typedef {object} ContactView
 * @property {string} id
 * @property {string} state          Streams contact state type (connecting, connected, ended...)
 * @property {string|null} stateSince ISO time the contact state began
 * @property {string|null} initiationMethod
 * @property {{id: string, type: string, status: string, since: string|null, phoneNumber: string|null,
 *   initial: boolean}[]} connections
 * @property {Object<string, {name?: string, value?: unknown}>} attributes
 * @property {{name?: string, queueARN?: string}|null} queue
 * @property {string|null} systemPhone the contact center's number (connectSystemEndpoint)
 */
export function readContact(contact) {
  const state = contact.getState();
  const connections = contact.getConnections().map((connection) => {
    const connectionState = connection.getState();
    const type = connection.getType();
    return {
      id: connection.getConnectionId(),
      type,
      status: CONNECTION_STATUS[connectionState.type] || "disconnected",
      since: isoTime(connectionState.timestamp),
      phoneNumber: type === "agent" || type === "monitoring" ? null : phoneOf(connection.getEndpoint()),
      initial: Boolean(connection.isInitialConnection()),
    };
  });
  return {
    id: contact.getContactId(),
    state: state.type,
    stateSince: isoTime(state.timestamp),
    initiationMethod: optional(contact, "getInitiationMethod"),
    connections,
    attributes: contact.getAttributes() || {},
    queue: contact.getQueue() || null,
    systemPhone: phoneOf(optional(contact, "getConnectSystemEndpoint")),
  };
}

/** The agent's own connection of a contact view, or null. */
export function agentConnection(view) {
  return view.connections.find((c) => c.type === "agent" || c.type === "monitoring") || null;
}

/** The customer's connection: the initial one (Connect marks it), else the first other party. */
export function customerConnection(view) {
  return view.connections.find((c) => c.initial && c.type !== "agent" && c.type !== "monitoring")
    || view.connections.find((c) => c.type === "inbound" || c.type === "outbound") || null;
}

/** Parties beside the agent and the customer still on the call (consult, conference). */
export function thirdParties(view) {
  const customer = customerConnection(view);
  return view.connections.filter((c) => c !== customer && c.type !== "agent" && c.type !== "monitoring"
    && c.status !== "disconnected");
}

/** `inbound`, `outbound`, or `transfer` (a contact transferred to this agent). */
export function callType(view) {
  if (TRANSFERRED.has(view.initiationMethod)) return "transfer";
  const customer = customerConnection(view);
  if (customer && customer.type === "outbound") return "outbound";
  if (!customer && view.initiationMethod === "outbound") return "outbound";
  return "inbound";
}

/**
 * Whether the contact is being offered to the agent and not yet accepted:
 * only then may it be answered or rejected.
 * @param {ContactView} view
 * @param {boolean} accepted Streams reported `contact::accepted` for it
 */
export function isRinging(view, accepted = false) {
  if (accepted || !OFFERED_STATES.has(view.state) || callType(view) === "outbound") return false;
  const agent = agentConnection(view);
  return !agent || agent.status === "connecting";
}

/**
 * The contact's state for the agent, spelled as the API does: `connecting`,
 * `connected`, `hold` (the customer is on hold), `missed`, `Rejected`, `ACW`.
 * (`Dropped` is decided by the caller: the contact left the snapshot.)
 * @param {ContactView} view
 */
export function callEvent(view) {
  switch (view.state) {
    case "missed":
    case "error": // Streams fires onMissed for connecting -> error
      return "missed";
    case "rejected":
      return "Rejected";
    case "ended": // Connect's after-call work
      return "ACW";
    case "connected":
    case "paused": {
      const customer = customerConnection(view);
      return customer && customer.status === "hold" ? "hold" : "connected";
    }
    default:
      return "connecting";
  }
}

/** Every button hidden: `ButtonStates` of a contact nothing can be done with. */
export function hiddenButtons() {
  const items = Object.fromEntries(BUTTONS.map((name) => [name, "Hide"]));
  return { items, count: BUTTONS.length };
}

/**
 * Which of the API's 11 buttons Connect allows now.
 * @param {ContactView} view
 * @param {boolean} accepted
 */
export function buttonStates(view, accepted = false) {
  const { items } = hiddenButtons();
  const event = callEvent(view);
  if (isRinging(view, accepted)) {
    items.answer = "Enable";
    items.reject = "Enable";
  } else if (event === "connecting") {
    items.disconnect = "Enable"; // an outbound dial, or an accepted call still setting up
  } else if (event === "connected" || event === "hold") {
    const customer = customerConnection(view);
    const status = customer ? customer.status : "disconnected";
    const others = thirdParties(view);
    items.disconnect = "Enable";
    items.hold = status === "connected" ? "Enable" : "Hide";
    items.resume = status === "hold" ? "Enable" : "Hide";
    items.numberpad = status === "connected" ? "Enable" : status === "hold" ? "Disable" : "Hide";
    if (others.length === 0) {
      items.consult = status === "disconnected" ? "Hide" : "Enable";
      items.transfer = items.consult;
    } else {
      const statuses = [status, ...others.map((c) => c.status)];
      const held = statuses.includes("hold");
      items.swap = held && statuses.includes("connected") ? "Enable" : "Hide";
      items.conference = held ? "Enable" : "Hide";
    }
  } else if (event === "ACW") {
    items.clearContact = "Enable";
  }
  return { items, count: BUTTONS.length };
}

/**
 * `ANI`, `DNIS`, then every contact attribute as a string: the screen-pop data.
 * @param {ContactView} view
 */
export function callVariables(view) {
  const customer = customerConnection(view);
  const customerPhone = customer ? customer.phoneNumber : null;
  const [ani, dnis] = callType(view) === "outbound" ? [view.systemPhone, customerPhone]
    : [customerPhone, view.systemPhone];
  const variables = {};
  if (ani) variables.ANI = ani;
  if (dnis) variables.DNIS = dnis;
  for (const [key, attribute] of Object.entries(view.attributes)) {
    const name = attribute && typeof attribute.name === "string" ? attribute.name : key;
    // ANI and DNIS say who called whom; an attribute of that name does not overwrite them.
    if (name in variables) continue;
    const value = attribute && typeof attribute === "object" ? attribute.value : attribute;
    variables[name] = value === null || value === undefined ? "" : String(value);
  }
  return variables;
}

/**
 * When `event` last changed, from the snapshot alone (so a reloaded page
 * tells the same): a hold or resume changes the customer's connection, not
 * the contact's state.
 * @param {ContactView} view
 */
export function eventSince(view) {
  const event = callEvent(view);
  const customer = customerConnection(view);
  if (event === "hold" && customer && customer.since) return customer.since;
  if (event === "connected" && customer && customer.since && view.stateSince) {
    return customer.since > view.stateSince ? customer.since : view.stateSince;
  }
  return view.stateSince || new Date().toISOString();
}

/**
 * The protocol's `Call` for a contact view.
 * @param {ContactView} view
 * @param {{accepted?: boolean}} [options]
 */
export function callOf(view, { accepted = false } = {}) {
  const queue = view.queue && view.queue.queueARN
    ? { name: view.queue.name || "", arn: view.queue.queueARN } : null;
  return {
    id: view.id,
    event: callEvent(view),
    CallType: callType(view),
    CallVariables: callVariables(view),
    ButtonStates: buttonStates(view, accepted),
    connections: view.connections.map((c) => ({
      connectionId: c.id,
      type: c.type,
      phoneNumber: c.phoneNumber,
      status: c.status,
      since: c.since || view.stateSince || new Date().toISOString(),
    })),
    queue,
    since: eventSince(view),
  };
}

/**
 * The last event of a contact that has left the agent: the last known call,
 * every connection disconnected, no buttons.
 * @param {object} last the call last published for it
 * @param {string} now ISO time
 */
export function droppedCall(last, now) {
  return {
    ...last,
    event: "Dropped",
    ButtonStates: hiddenButtons(),
    connections: last.connections.map((c) => ({ ...c, status: "disconnected", since: now })),
    since: now,
  };
}

/**
 * `message.endpoints` of the GetQuickConnects event, from `agent.getEndpoints`.
 * @param {{name?: string, type?: string, endpointARN?: string, phoneNumber?: string}[]} endpoints
 */
export function quickConnects(endpoints) {
  return endpoints.map((endpoint) => ({
    name: endpoint.name || "",
    type: endpoint.type,
    endpointARN: endpoint.endpointARN,
    phoneNumber: phoneOf(endpoint),
  }));
}
