/**
 * Turns a Streams agent (the `connect.Agent` handed out by `connect.agent`)
 * into the messages of wire protocol v1: SetAgentState, StateSync, GetStates.
 *
 * Pure functions of the agent's current snapshot plus `muted`, which Streams
 * has no getter for (the provider tracks it from `onMuteToggle`). Kept apart
 * from the provider so the exact shape integrations depend on lives in one
 * place; see shared/protocol/samples/seed-SetAgentState.event.json.
 * @module provider/agent-state
 */

/**
 * Contact states in which a softphone call has live media (mute acts on it):
 * a ringing contact is "connecting" too, and has none yet.
 */
const LIVE_CALL_STATES = new Set(["connected"]);

/**
 * ISO-8601 UTC with milliseconds, as the schemas demand, or null.
 * Streams hands out Date objects; strings and epoch numbers are accepted too.
 * @param {Date|string|number|null|undefined} value
 * @returns {string|null}
 */
export function isoTime(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/**
 * The coarse state integrations switch on.
 * @param {string} type Streams' agent state type
 * @returns {"Ready"|"Logout"|"Not_Ready"}
 */
export function coarseState(type) {
  if (type === "routable") return "Ready";
  if (type === "offline") return "Logout";
  return "Not_Ready"; // not_routable, and system (Busy on a call), error, init
}

/**
 * Whether the agent has a softphone call with live media right now.
 * Streams has no direct getter; this reads the contacts of the snapshot.
 * @param {object} agent a connect.Agent
 */
export function onSoftphoneCall(agent) {
  return agent.getContacts("voice").some((contact) => {
    const state = contact.getState();
    return contact.isSoftphoneCall() && state && LIVE_CALL_STATES.has(state.type);
  });
}

/** Any voice contact at all (a desk-phone agent's call still blocks make_call). */
function onAnyCall(agent) {
  return agent.getContacts("voice").length > 0;
}

/**
 * Which desktop buttons make sense now (`rules.ButtonStates`), the same rules
 * as the Python virtual agent (bridge/sim/agent_model.py) so that apps see one
 * behaviour whichever provider runs: Ready is pointless when already
 * routable; Not Ready stays enabled (Break -> Lunch, and on a call the change
 * is queued); mute and unmute exist only during a softphone call, and only the
 * one that changes something is shown; no call can be placed while on one or
 * logged out.
 * @param {object} agent a connect.Agent
 * @param {boolean} muted
 * @returns {{items: Object<string, "Enable"|"Disable"|"Hide">, count: number}}
 */
export function buttonStates(agent, muted) {
  const type = agent.getState().type;
  const softphoneCall = onSoftphoneCall(agent);
  const items = {
    NotReady: "Enable",
    Ready: type === "routable" ? "Disable" : "Enable",
    make_call: type === "offline" || onAnyCall(agent) ? "Disable" : "Enable",
    mute: softphoneCall && !muted ? "Enable" : "Hide",
    unmute: softphoneCall && muted ? "Enable" : "Hide",
  };
  return { items, count: Object.keys(items).length };
}

/**
 * `agent.getState()` as the protocol's agentState (`rules.ResponseActual`).
 * @param {object} agent a connect.Agent
 */
export function responseActual(agent) {
  const state = agent.getState();
  return {
    agentStateARN: state.agentStateARN ?? null,
    type: state.type,
    name: state.name,
    startTimestamp: isoTime(state.startTimestamp),
  };
}

/** `message.rules` of SetAgentState and StateSync. */
export function rules(agent, muted) {
  return { ButtonStates: buttonStates(agent, muted), ResponseActual: responseActual(agent) };
}

/**
 * The agent as integrations see it (`message.data` of SetAgentState).
 * @param {object} agent a connect.Agent
 * @param {boolean} muted
 */
export function agentData(agent, muted) {
  const state = agent.getState();
  const config = agent.getConfiguration();
  const data = {
    muted: Boolean(muted),
    name: agent.getName() || "",
    extension: agent.getExtension() || "",
    loginName: config.username,
    softphoneEnabled: Boolean(agent.isSoftphoneEnabled()),
    state: coarseState(state.type),
  };
  if (state.type === "not_routable") data.reasonCode = { id: state.name };
  // A snapshot without a start time cannot happen in Connect; fall back to now
  // rather than send a frame the schema refuses.
  data.stateChangeTime = isoTime(state.startTimestamp) || new Date().toISOString();
  data.type = state.type;
  // A Ready or Not Ready asked for during a call is queued by Connect
  // (calls.md, "The agent's state on a call").
  const next = typeof agent.getNextState === "function" ? agent.getNextState() : null;
  if (next && next.name) data.nextState = { name: next.name, type: next.type };
  return data;
}

/**
 * `message` of the SetAgentState event.
 * @param {object} agent a connect.Agent
 * @param {boolean} muted
 */
export function setAgentStateMessage(agent, muted) {
  return {
    rules: rules(agent, muted),
    data: agentData(agent, muted),
    event: agent.getState().name,
    source: "event",
  };
}

/**
 * `message` of the StateSync event: the full picture for an app that joins late.
 * @param {object} agent a connect.Agent
 * @param {boolean} muted
 */
export function stateSyncMessage(agent, muted) {
  return {
    loginState: agent.getState().type === "offline" ? "LoggedOut" : "LoggedIn",
    agentInfo: agentData(agent, muted),
    agentState: responseActual(agent),
    rules: rules(agent, muted),
  };
}

/**
 * `message.states` of the GetStates event: the states the agent may pick.
 * `code` is the name too, which is what ReasonCodeId takes back (as in the
 * Python virtual agent); the provider also accepts a state's ARN there.
 * @param {object} agent a connect.Agent
 */
export function stateOptions(agent) {
  return agent
    .getAgentStates()
    .filter((s) => s.type === "routable" || s.type === "not_routable" || s.type === "offline")
    .map((s) => ({ label: s.name, code: s.name, type: s.type }));
}
