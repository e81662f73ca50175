/**
 * What the wallboard knows of the floor, without the DOM: one record per
 * agent built from the frames a supervisor receives (protocol 1.2: every frame
 * names its `agent`), the counts per state kept as events arrive, and the
 * order the list shows (filter, sort, the not-ready limit). Pure; tested with
 * node:test (tests/js/wallboard-model.test.js).
 *
 * Applying an event costs O(1) and touches no DOM: the page applies each frame
 * at once and draws what changed once per animation frame (wallboard-batch.js).
 * @module pages/wallboard-model
 */

import { INBOUND_CALL_STATE_CHANGE, PROVIDER_STATUS, SET_AGENT_STATE } from "../lib/names.js";
import { directionLabel, partyNumber, stateLabel } from "./call-logic.js";

/**
 * The states the floor is counted in, in the order the counts show. Each has a
 * word and an icon (`icon` names a symbol of wallboard.html), never colour alone.
 */
export const CATEGORIES = Object.freeze([
  { id: "ready", label: "Ready", icon: "wb-i-ready" },
  { id: "oncall", label: "On call", icon: "wb-i-call" },
  { id: "acw", label: "After-call work", icon: "wb-i-acw" },
  { id: "notready", label: "Not ready", icon: "wb-i-pause" },
  { id: "offline", label: "Logged out", icon: "wb-i-off" },
  { id: "unknown", label: "No state yet", icon: "wb-i-unknown" },
]);

/** Category id -> its entry of CATEGORIES. */
export const CATEGORY = Object.freeze(Object.fromEntries(CATEGORIES.map((c) => [c.id, c])));

/** The state filter's special values beside the category ids. */
export const ALL = "all";
export const OVERDUE = "overdue";
export const SOFTPHONE_DOWN = "softphone-down";

/** Sort orders: by name, longest in state first, shortest in state first. */
export const SORTS = Object.freeze(["name", "longest", "shortest"]);

/** Default not-ready limit: five minutes. */
export const DEFAULT_NOT_READY_LIMIT_S = 300;

/** Call events of a contact the agent is on (ringing, talking, holding). */
const LIVE_CALL_EVENTS = new Set(["connecting", "connected", "hold"]);
/** Call events after which the contact is no longer the agent's. */
const GONE_CALL_EVENTS = new Set(["Dropped", "missed", "Rejected"]);

/**
 * The category of an agent record: logged out, then on a call (a live contact,
 * or a system state such as Busy), after-call work, ready, not ready.
 * @param {AgentRecord} record
 * @returns {string} a CATEGORIES id
 */
export function categoryOf(record) {
  if (record.type === null) return "unknown";
  if (record.type === "offline" || record.coarse === "Logout") return "offline";
  let acw = false;
  for (const call of record.calls.values()) {
    if (LIVE_CALL_EVENTS.has(call.event)) return "oncall";
    if (call.event === "ACW") acw = true;
  }
  if (acw || record.stateName === "AfterCallWork") return "acw";
  if (record.type === "system") return "oncall";
  if (record.coarse === "Ready") return "ready";
  return "notready";
}

/**
 * @typedef {object} AgentRecord
 * @property {string} login the agent's login name (the frames' `agent`)
 * @property {string} name the display name (SetAgentState `data.name`), else the login
 * @property {string} sortName lower-case `name`, for sorting and finding
 * @property {string|null} stateName the state's name (`message.event`: "Available", "Break", "Busy")
 * @property {string|null} type Streams' state type: routable, not_routable, offline, system, error
 * @property {string|null} coarse Ready, Not_Ready or Logout
 * @property {number} since when the state began, ms since the epoch
 * @property {boolean} muted
 * @property {boolean|null} softphone whether the agent's provider is connected; null before it is known
 * @property {Map<string, object>} calls the live contacts by id (calls.md `Call`)
 * @property {string|null} nextState a state queued for after the call
 * @property {string} category a CATEGORIES id
 * @property {number} seq the order in which the floor first heard of the agent
 */

/**
 * What one applied frame changed, for deciding whether the list's order must
 * be computed again.
 * @typedef {{record: AgentRecord, added: boolean, categoryChanged: boolean,
 *   sinceChanged: boolean, softphoneChanged: boolean}} Change
 */

/** The floor: every agent in scope, and the counts per category. */
export class Floor {
  constructor() {
    /** @type {Map<string, AgentRecord>} */
    this.agents = new Map();
    /** @type {Map<string, number>} category id -> agents in it */
    this.counts = new Map(CATEGORIES.map((c) => [c.id, 0]));
    /** Agents whose softphone page is known to be disconnected. */
    this.softphoneDown = 0;
    this._seq = 0;
  }

  /** The record of `login`, made (as "No state yet") if the floor did not know the agent. */
  record(login) {
    let record = this.agents.get(login);
    if (record === undefined) {
      record = {
        login, name: login, sortName: login.toLowerCase(), stateName: null, type: null, coarse: null,
        since: 0, muted: false, softphone: null, calls: new Map(), nextState: null,
        category: "unknown", seq: this._seq++,
      };
      this.agents.set(login, record);
      this.counts.set("unknown", this.counts.get("unknown") + 1);
    }
    return record;
  }

  /**
   * Apply one frame a supervisor received. Frames without `agent`, and kinds
   * the wallboard does not show, change nothing.
   * @param {object} envelope
   * @param {number} [now] ms since the epoch: the start of a state whose time is missing
   * @returns {Change|null}
   */
  apply(envelope, now = Date.now()) {
    const login = envelope.agent;
    if (typeof login !== "string" || !envelope.message) return null;
    const kind = `${envelope.channel}/${envelope.topic}/${envelope.subtopic}`;
    if (kind !== SET_AGENT_STATE && kind !== PROVIDER_STATUS && kind !== INBOUND_CALL_STATE_CHANGE) return null;
    const added = !this.agents.has(login);
    const record = this.record(login);
    const before = { category: record.category, since: record.since, softphone: record.softphone };
    const { message } = envelope;
    if (kind === SET_AGENT_STATE) {
      const data = message.data || {};
      if (typeof data.name === "string" && data.name !== "") {
        record.name = data.name;
        record.sortName = data.name.toLowerCase();
      }
      record.stateName = typeof message.event === "string" ? message.event : null;
      record.type = data.type || (data.state === "Ready" ? "routable" : data.state === "Logout" ? "offline"
        : "not_routable");
      record.coarse = data.state || null;
      const started = Date.parse(data.stateChangeTime);
      record.since = Number.isFinite(started) ? started : now;
      record.muted = data.muted === true;
      record.nextState = data.nextState && data.nextState.name ? data.nextState.name : null;
    } else if (kind === PROVIDER_STATUS) {
      record.softphone = message.connected === true;
      // A provider that (re)joins publishes its live contacts again, and the hub
      // forgot the ones it retained: a contact that ended meanwhile must not stay.
      if (record.softphone) record.calls.clear();
    } else {
      const call = message.call;
      if (!call || typeof call.id !== "string") return null;
      if (GONE_CALL_EVENTS.has(call.event)) record.calls.delete(call.id);
      else record.calls.set(call.id, call);
    }
    this._recount(record, before);
    return {
      record, added,
      categoryChanged: record.category !== before.category,
      sinceChanged: record.since !== before.since,
      softphoneChanged: record.softphone !== before.softphone,
    };
  }

  /**
   * A new connection: the hub replays every agent it knows (ProviderStatus,
   * SetAgentState, live calls). Calls are dropped here since only the replay
   * says which are still live; states stay until replaced. Agents in `keep`
   * (those whose missed events the connection recovered: no replay) keep theirs.
   * @param {Set<string>} [keep] logins whose calls stay
   * @returns {AgentRecord[]} the records whose category changed
   */
  forgetCalls(keep = new Set()) {
    const changed = [];
    for (const record of this.agents.values()) {
      if (record.calls.size === 0 || keep.has(record.login)) continue;
      const before = { category: record.category, since: record.since, softphone: record.softphone };
      record.calls.clear();
      this._recount(record, before);
      if (record.category !== before.category) changed.push(record);
    }
    return changed;
  }

  _recount(record, before) {
    record.category = categoryOf(record);
    if (record.category !== before.category) {
      this.counts.set(before.category, this.counts.get(before.category) - 1);
      this.counts.set(record.category, this.counts.get(record.category) + 1);
    }
    if ((before.softphone === false) !== (record.softphone === false)) {
      this.softphoneDown += record.softphone === false ? 1 : -1;
    }
  }
}

/**
 * Whether an agent has been in a not-ready state longer than the limit.
 * @param {AgentRecord} record
 * @param {number} now ms since the epoch
 * @param {number} limitMs 0 or less: never
 */
export function isOverdue(record, now, limitMs) {
  return limitMs > 0 && record.category === "notready" && now - record.since > limitMs;
}

/** How many agents are past the not-ready limit now. */
export function countOverdue(floor, now, limitMs) {
  let count = 0;
  for (const record of floor.agents.values()) if (isOverdue(record, now, limitMs)) count += 1;
  return count;
}

/**
 * @typedef {object} Query
 * @property {string} text what the name filter holds (matched in the display and login names)
 * @property {string} state ALL, OVERDUE, SOFTPHONE_DOWN or a category id
 * @property {string} sort one of SORTS
 * @property {number} limitMs the not-ready limit in ms
 */

/** Whether `record` passes the query's filters now. */
export function matches(record, query, now) {
  if (query.text) {
    const text = query.text.trim().toLowerCase();
    if (text && !record.sortName.includes(text) && !record.login.toLowerCase().includes(text)) return false;
  }
  switch (query.state) {
    case ALL: return true;
    case OVERDUE: return isOverdue(record, now, query.limitMs);
    case SOFTPHONE_DOWN: return record.softphone === false;
    default: return record.category === query.state;
  }
}

function byName(a, b) {
  if (a.sortName !== b.sortName) return a.sortName < b.sortName ? -1 : 1;
  if (a.login !== b.login) return a.login < b.login ? -1 : 1;
  return 0;
}

/**
 * The records the list shows, in order. `longest` puts the agent longest in
 * its state first (the earliest `since`); ties and `name` go by name, then login.
 * @param {Iterable<AgentRecord>} records
 * @param {Query} query
 * @param {number} now
 * @returns {AgentRecord[]}
 */
export function orderRecords(records, query, now) {
  const shown = [];
  for (const record of records) if (matches(record, query, now)) shown.push(record);
  if (query.sort === "longest") shown.sort((a, b) => a.since - b.since || byName(a, b));
  else if (query.sort === "shortest") shown.sort((a, b) => b.since - a.since || byName(a, b));
  else shown.sort(byName);
  return shown;
}

/**
 * Whether a change can move agents in or out of the list, or within it: the
 * order is computed again only then (with the name sort and no filter, a state
 * change moves nothing).
 * @param {Change} change
 * @param {Query} query
 */
export function affectsOrder(change, query) {
  if (change.added) return true;
  if (query.sort !== "name" && change.sinceChanged) return true;
  if (query.state === SOFTPHONE_DOWN) return change.softphoneChanged;
  if (query.state !== ALL) return change.categoryChanged || change.sinceChanged;
  return false;
}

/**
 * A settled floor keeps one timer for the whole list: the order under the
 * OVERDUE filter changes as time passes, the others only by events.
 * @param {Query} query
 */
export function orderDependsOnTime(query) {
  return query.state === OVERDUE;
}

/**
 * The contact the row shows: the live one that appeared last, else the first
 * in after-call work, else null.
 * @param {AgentRecord} record
 * @returns {object|null} a calls.md `Call`
 */
export function shownCall(record) {
  let live = null;
  let other = null;
  for (const call of record.calls.values()) {
    if (LIVE_CALL_EVENTS.has(call.event)) live = call;
    else if (other === null) other = call;
  }
  return live ?? other;
}

/**
 * What the row's call cell says: the queue ("Billing"; "Outbound call", "Transferred
 * call · Billing" for the other directions), the caller, the
 * contact's state; `more` counts the agent's other contacts.
 * @param {AgentRecord} record
 * @returns {{title: string, party: string, state: string, since: number, more: number}|null}
 */
export function callSummary(record) {
  const call = shownCall(record);
  if (call === null) return null;
  // The queue names an inbound call well enough; other directions say so first.
  const title = [];
  if (call.CallType !== "inbound" || !(call.queue && call.queue.name)) title.push(directionLabel(call));
  if (call.queue && call.queue.name) title.push(call.queue.name);
  const since = Date.parse(call.since);
  return {
    title: title.join(" · "), party: partyNumber(call), state: stateLabel(call),
    since: Number.isFinite(since) ? since : record.since, more: record.calls.size - 1,
  };
}

/**
 * The scope a page asks for on an open hub: `*` for every agent, or names
 * separated by commas or spaces; an array is taken as it is.
 * @param {string|string[]|undefined} value
 * @returns {string[]} empty when nothing usable was given
 */
export function parseAgents(value) {
  const list = Array.isArray(value) ? value : String(value ?? "").split(/[\s,]+/);
  const names = [...new Set(list.map((name) => String(name).trim()).filter((name) => name !== ""))];
  return names.includes("*") ? ["*"] : names;
}
