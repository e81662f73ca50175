/**
 * An emulated Amazon Connect backend for the real Streams library.
 *
 * The page loads the real `connect-streams-min.js`; instead of calling
 * `connect.core.initCCP` (which needs an Amazon Connect instance), this module
 * replaces the library's internal seams, as the library's own tests do:
 * - `connect.core.eventBus` and `connect.core.agentDataProvider`: fresh ones,
 *   fed with agent snapshots (`agent::update`) built by the model below;
 * - `connect.core.client.call(method, params, callbacks)`: receives the CTI
 *   calls (`putAgentState`) and answers them like Connect would, late;
 * - `connect.core.upstream.sendUpstream(event, data)`: receives broadcasts,
 *   such as mute, and answers with `agent::mute_toggle` like the softphone;
 * - `connect.core.mediaFactory`: the library's own MediaFactory, which initCCP
 *   would create; every Connection with softphone media asks it for a media
 *   controller when constructed (for softphone it only echoes the media info,
 *   no network), so without it `contact.getConnections()` throws on a call.
 * Everything above the seams (connect.agent, Agent.setState, onStateChange,
 * onRefresh, onMuteToggle, Contact...) is the real library. The seams are
 * internal, hence the exact version pin on amazon-connect-streams.
 *
 * Voice contacts are modelled too, behind the same seams: the contact CTI
 * calls (acceptContact, holdConnection, createOutboundContact, ...) change
 * the model, and the contacts travel in the agent snapshots
 * (`snapshot.contacts[]`) as Connect sends them, so `connect.contact`,
 * `Contact.accept`, `Connection.hold`, `Agent.connect`... are the library's.
 * Contacts are softphone contacts (their agent connection carries
 * `softphoneMediaInfo`, which the MediaFactory echoes without any media).
 *
 * Tests and the demo steer the model: failNext, neverAnswerNext, cancelNext
 * (what is armed: `armed`), incomingCall, customerHangsUp, thirdPartyAnswers,
 * startCall, endCall, selectState, agentMutes, removeAgentState; every call is
 * recorded in `calls`. Events: "change" (the model changed; a snapshot went
 * out), "call" (a backend call was seen, at once), "armed" (what is armed changed).
 * @module emulator/ccp-emulator
 */

const REGION = "us-east-1";
const ACCOUNT = "123456789012";
const INSTANCE = "0f6a2b1c-3d4e-4f50-8a61-72b3c4d5e6f7";
const INSTANCE_ARN = `arn:aws:connect:${REGION}:${ACCOUNT}:instance/${INSTANCE}`;

/** The agent states configured on the emulated instance. */
export const DEFAULT_AGENT_STATES = Object.freeze([
  { type: "routable", name: "Available", id: "5ab3ee2c-1f71-4c0f-9a58-0c2f4f2f7a01" },
  { type: "not_routable", name: "Break", id: "5ab3ee2c-1f71-4c0f-9a58-0c2f4f2f7a02" },
  { type: "not_routable", name: "Lunch", id: "5ab3ee2c-1f71-4c0f-9a58-0c2f4f2f7a03" },
  { type: "not_routable", name: "Training", id: "5ab3ee2c-1f71-4c0f-9a58-0c2f4f2f7a04" },
  { type: "offline", name: "Offline", id: "5ab3ee2c-1f71-4c0f-9a58-0c2f4f2f7a05" },
].map(({ type, name, id }) => Object.freeze({
  agentStateARN: `${INSTANCE_ARN}/agent-state/${id}`, type, name,
})));

/** The error Connect sends when a state change is not allowed now. */
const INVALID_STATE = {
  type: "InvalidStateException",
  message: "Cannot change agent state: Invalid agent or contact state.",
};

/** The contact center's number, Connect's `connectSystemEndpoint` of every call. */
export const SYSTEM_PHONE = "+18005550199";

/** The quick connects of the emulated instance (what `getEndpoints` lists). */
export const DEFAULT_QUICK_CONNECTS = Object.freeze([
  { name: "Billing queue", type: "queue", phoneNumber: null, id: "aa11" },
  { name: "Front desk", type: "phone_number", phoneNumber: "+18005550111", id: "bb22" },
  { name: "Agent 2", type: "agent", phoneNumber: null, id: "cc33" },
].map(({ name, type, phoneNumber, id }) => Object.freeze({
  endpointARN: `${INSTANCE_ARN}/transfer-destination/${id}`, type, name, phoneNumber,
  agentLogin: null, queue: null,
})));

/** The CTI calls on contacts that the model answers (and failNext / neverAnswerNext steer). */
export const CONTACT_METHODS = Object.freeze(["acceptContact", "rejectContact", "holdConnection",
  "resumeConnection", "destroyConnection", "createOutboundContact", "sendDigits", "clearContact",
  "createAdditionalConnection", "conferenceConnections", "toggleActiveConnections", "getEndpoints"]);

/** An ARN for a queue name ("Billing" -> .../queue/billing). */
function queueArn(name) {
  return `${INSTANCE_ARN}/queue/${name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
}

/** A contact id as Connect gives them (a UUID). */
function newContactId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") return globalThis.crypto.randomUUID();
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Deep copy that keeps Date objects (snapshots hold Dates, as Streams parses them). */
function clone(value) {
  return typeof structuredClone === "function" ? structuredClone(value) : reviveDates(JSON.parse(JSON.stringify(value)));
}

/** Turn the ISO strings of timestamp fields back into Dates (after JSON). */
function reviveDates(value) {
  if (Array.isArray(value)) return value.map(reviveDates);
  if (value && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      value[key] = /timestamp$/i.test(key) && typeof item === "string" ? new Date(item) : reviveDates(item);
    }
  }
  return value;
}

/** "agent2" -> "Agent 2": a display name like the ones Connect admins give. */
function displayName(username) {
  const match = /^([a-z]+)(\d+)$/i.exec(username);
  if (!match) return username;
  return `${match[1][0].toUpperCase()}${match[1].slice(1)} ${match[2]}`;
}

function copy(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}


/** An InvalidStateException as Connect sends it (a JSON string to `failure`). */
function invalidState(message) {
  return JSON.stringify({ type: "InvalidStateException", message });
}

/** Connection states in which a party is on the call. */
const ACTIVE = new Set(["connecting", "connected", "hold"]);
/** Contact states after which only clearContact is left. */
const FINISHED = new Set(["ended", "missed", "rejected", "error"]);

export class CcpEmulator extends EventTarget {
  /**
   * @param {object} options
   * @param {object} options.connect        the global `connect` of the Streams bundle
   * @param {string} [options.username="agent1"] the login name (Streams username)
   * @param {string} [options.name]         display name; derived from username when omitted
   * @param {string} [options.initialState="Available"] state name on first load
   * @param {number} [options.latencyMs=40] how late Connect answers and pushes snapshots
   * @param {number} [options.refreshMs=5000] unchanged snapshots pushed this often, as the CCP
   *   polls (0 = never)
   * @param {number} [options.answerDelayMs=1500] how long the customer of an outbound call takes to answer
   * @param {object[]} [options.quickConnects] what `getEndpoints` lists ({endpointARN, type, name, phoneNumber})
   * @param {Storage|null} [options.storage=sessionStorage] keeps the agent's state and contacts across
   *   a page reload, as Connect keeps them server-side
   */
  constructor({ connect, username = "agent1", name, initialState = "Available", latencyMs = 40,
    refreshMs = 5000, answerDelayMs = 1500, quickConnects = DEFAULT_QUICK_CONNECTS,
    storage = globalThis.sessionStorage ?? null }) {
    super();
    this.connect = connect;
    this.username = username;
    this.name = name || displayName(username);
    this.latencyMs = latencyMs;
    this.refreshMs = refreshMs;
    this.answerDelayMs = answerDelayMs;
    this.storage = storage;
    this.agentStates = DEFAULT_AGENT_STATES.map((s) => ({ ...s }));
    /** The quick connects `getEndpoints` lists. */
    this.quickConnects = quickConnects.map((q) => ({ ...q }));
    /** Every call and broadcast the library sent to the backend, oldest first. */
    this.calls = [];
    /** Digits sent with sendDigits, per connection: {contactId, connectionId, digits}. */
    this.digitsSent = [];
    /** method -> list of pending behaviours ("fail" | "never") for the next calls. */
    this._next = new Map();
    this._timers = new Set();

    const saved = this._load();
    const initial = this._stateByName(saved?.state ?? initialState) || this.agentStates[0];
    /** The state the agent picked (what Connect calls agentAvailabilityState). */
    this.selected = { ...initial, startTimestamp: saved ? new Date(saved.since) : new Date() };
    /** A state queued for after the contacts (enqueueNextState), or null. */
    this.nextState = saved?.next ? this._stateByName(saved.next) : null;
    /** The voice contacts, as the snapshot carries them (Dates included). */
    this.contacts = saved?.contacts ? reviveDates(saved.contacts) : [];
    /** The system state shown while contacts exist ({name, since}), or null. */
    this._system = saved?.system ? { name: saved.system.name, since: new Date(saved.system.since) } : null;
    this.muted = false;
  }

  /**
   * Replace the library's seams and push the first snapshot. Call before
   * `connect.agent(...)`: until then the library has no event bus at all.
   */
  install() {
    const { connect } = this;
    connect.agent.initialized = false; // global in the library; a fresh bus needs a fresh start
    connect.core.eventBus = new connect.EventBus();
    connect.core.agentDataProvider = new connect.core.AgentDataProvider(connect.core.eventBus);
    connect.core.client = { call: (method, params, callbacks) => this._onCall(method, params, callbacks) };
    connect.core.upstream = { sendUpstream: (event, data) => this._onUpstream(event, data) };
    connect.core.mediaFactory = new connect.MediaFactory({});
    this.push();
    if (this.refreshMs > 0) this._refreshTimer = setInterval(() => this.push(), this.refreshMs);
    // An outbound call still ringing when the page was reloaded gets answered all the same.
    for (const contact of this.contacts) {
      if (this._isOutboundDial(contact)) this._scheduleAnswer(contact.contactId);
    }
    return this;
  }

  /** Stop timers (the seams stay in place). */
  uninstall() {
    clearInterval(this._refreshTimer);
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.clear();
  }

  // -- steering (tests, demo controls) -------------------------------------

  /** The next call of `method` (a CTI method, or "mute") fails like Connect would. */
  failNext(method = "putAgentState") {
    this._queueBehaviour(method, "fail");
  }

  /** The next call of `method` is swallowed: no callback, ever (like a 401/403). */
  neverAnswerNext(method = "putAgentState") {
    this._queueBehaviour(method, "never");
  }

  /**
   * Take back what failNext / neverAnswerNext armed for `method` and not yet used.
   * @param {string} method
   * @param {"fail"|"never"} [behaviour] only this one (default: both)
   */
  cancelNext(method, behaviour) {
    const queue = this._next.get(method);
    if (!queue) return;
    const left = behaviour ? queue.filter((b) => b !== behaviour) : [];
    if (left.length) this._next.set(method, left);
    else this._next.delete(method);
    this.dispatchEvent(new CustomEvent("armed"));
  }

  /** What is armed for the next calls, oldest first: `[{method, behaviour}]`. */
  get armed() {
    return [...this._next].flatMap(([method, queue]) => queue.map((behaviour) => ({ method, behaviour })));
  }

  /**
   * The agent presses mute (or unmute) in the CCP itself: the softphone
   * toggles and Streams reports it (`onMuteToggle`), as for a mute asked by an
   * app. Like the softphone, it needs a live call; failNext("mute") and
   * neverAnswerNext("mute") make it do nothing.
   * @param {boolean} muted
   */
  agentMutes(muted) {
    if (!this._hasLiveMedia()) throw new Error("Mute works only during a connected softphone call.");
    this._record("mute", { mute: Boolean(muted), from: "ccp" });
    if (this._takeBehaviour("mute")) return;
    this._toggleMute(Boolean(muted));
  }

  /**
   * A customer calls: Connect routes the call to this agent and it rings
   * (contact `connecting`, the agent's connection `connecting`).
   * @param {object} [call]
   * @param {string} [call.phoneNumber="+15555550123"] the caller (ANI)
   * @param {Object<string, unknown>} [call.attributes] contact attributes (the screen-pop data)
   * @param {string} [call.queue="BasicQueue"] the queue it came through
   * @returns {string} the contact id
   */
  incomingCall({ phoneNumber = "+15555550123", attributes = {}, queue = "BasicQueue" } = {}) {
    if (this.contacts.length > 0) throw new Error("the agent already has a voice contact (concurrency 1)");
    if (this.selected.type !== "routable") {
      throw new Error(`Connect routes calls only to a routable agent; ${this.username} is ${this.selected.name}`);
    }
    const contact = this._newContact({ phoneNumber, attributes, queue, direction: "inbound" });
    this.contacts.push(contact);
    this._changed();
    return contact.contactId;
  }

  /**
   * The customer hangs up: a ringing call is missed (and leaves the snapshot
   * soon after), a live one goes to after-call work unless a third party is
   * still on it.
   * @param {string} [contactId] default: the first live contact
   */
  customerHangsUp(contactId) {
    const contact = contactId ? this._contact(contactId)
      : this.contacts.find((c) => !FINISHED.has(c.state.type));
    if (!contact || FINISHED.has(contact.state.type)) throw new Error("no live contact to hang up");
    if (this._isRinging(contact)) {
      this._setContactState(contact, "missed");
      this._setConnection(this._agentConnection(contact), "disconnected");
      this._setConnection(this._customer(contact), "disconnected");
      this._changed();
      this._later(() => this._remove(contact.contactId));
      return;
    }
    const customer = this._customer(contact);
    this._setConnection(customer, "disconnected");
    if (this._thirdParties(contact).length === 0) this._endForAgent(contact);
    this._changed();
  }

  /** The third party of a consult or transfer picks up. */
  thirdPartyAnswers(contactId) {
    const contact = contactId ? this._contact(contactId) : this.contacts.find((c) => this._thirdParties(c).length);
    const party = contact && this._thirdParties(contact).find((c) => c.state.type === "connecting");
    if (!party) throw new Error("no third party is being called");
    this._setConnection(party, "connected");
    this._changed();
  }

  /** Shortcut: an inbound softphone call already answered (system state Busy; mute works). */
  startCall(phoneNumber = "+15555550123") {
    if (this.contacts.length > 0) return;
    const contact = this._newContact({ phoneNumber, attributes: {}, queue: "BasicQueue", direction: "inbound" });
    this._setContactState(contact, "connected");
    this._setConnection(this._agentConnection(contact), "connected");
    this.contacts.push(contact);
    this._changed();
  }

  /** Shortcut: every contact ends and is cleared; the queued state applies, mute is released. */
  endCall() {
    if (this.contacts.length === 0) return;
    this.contacts = [];
    this._afterContacts();
    this._changed();
    if (this.muted) this._toggleMute(false);
  }

  /** Whether a call has live media now: mute (from an app or the CCP) acts only then. */
  get hasLiveMedia() {
    return this._hasLiveMedia();
  }

  /** The first contact still on the call (not ended), for the panel and the old API. */
  get call() {
    const contact = this.contacts.find((c) => !FINISHED.has(c.state.type));
    if (!contact) return null;
    const customer = this._customer(contact);
    return { contactId: contact.contactId, phoneNumber: customer?.endpoint.phoneNumber ?? null,
      since: contact.state.timestamp };
  }

  /** The agent picks a state in the CCP itself (not through the bridge). */
  selectState(name) {
    const state = this._stateByName(name);
    if (!state) throw new Error(`no agent state named ${name}`);
    if (this.contacts.length > 0) {
      this._enqueue(state);
      return;
    }
    this._apply(state);
  }

  /**
   * An administrator removes a state from the agent's configuration (it
   * disappears from getAgentStates() with the next snapshot). Pages that
   * listed the states earlier still offer it: asking for it must fail cleanly.
   */
  removeAgentState(name) {
    this.agentStates = this.agentStates.filter((s) => s.name !== name);
    this.push();
  }

  /** The current agent data, as the next `agent::update` carries it. */
  agentData() {
    const now = new Date();
    const { selected } = this;
    const systemName = this._systemStateName();
    if (!systemName) this._system = null;
    else if (!this._system || this._system.name !== systemName) this._system = { name: systemName, since: now };
    const state = this._system
      ? { agentStateARN: null, type: "system", name: this._system.name, startTimestamp: this._system.since }
      : { agentStateARN: selected.agentStateARN, type: selected.type, name: selected.name,
        startTimestamp: selected.startTimestamp };
    return {
      snapshot: {
        state,
        agentAvailabilityState: { state: selected.name, timeStamp: selected.startTimestamp },
        nextState: this.nextState
          ? { agentStateARN: this.nextState.agentStateARN, type: this.nextState.type,
            name: this.nextState.name, startTimestamp: null }
          : null,
        // A copy per snapshot: Streams diffs the previous snapshot's contacts against these.
        contacts: clone(this.contacts),
        snapshotTimestamp: now,
        localTimestamp: now.getTime(),
        skew: 0,
      },
      configuration: this._configuration(),
    };
  }

  /** Push a snapshot now: drives connect.agent, onRefresh, onStateChange, connect.contact... */
  push() {
    this.connect.core.getEventBus().trigger(this.connect.AgentEvents.UPDATE, this.agentData());
    this.dispatchEvent(new CustomEvent("change"));
  }

  // -- the backend side of the seams ----------------------------------------

  _onCall(method, params, callbacks = {}) {
    this._record(method, params);
    const behaviour = this._takeBehaviour(method);
    if (behaviour === "never") return;
    if (behaviour === "fail") {
      this._later(() => callbacks.failure?.(JSON.stringify({ ...INVALID_STATE, emulated: true })));
      return;
    }
    if (method === "putAgentState") {
      this._putAgentState(params, callbacks);
      return;
    }
    const handler = CONTACT_METHODS.includes(method) ? this[`_${method}`] : null;
    if (!handler) {
      // Answer like a backend that lacks the operation so a caller's failure
      // path runs instead of hanging.
      this._later(() => callbacks.failure?.(JSON.stringify({
        type: "UnsupportedOperationException", message: `${method} is not emulated`,
      })));
      return;
    }
    // Connect checks the request when it gets it (a moment later), answers,
    // and the effect arrives with the snapshot right after the answer.
    this._later(() => {
      let outcome;
      try {
        outcome = handler.call(this, params || {});
      } catch (err) {
        outcome = { refuse: invalidState(err.message) };
      }
      if (outcome.refuse) {
        callbacks.failure?.(outcome.refuse);
        return;
      }
      callbacks.success?.(outcome.data ?? {});
      if (outcome.effect) {
        outcome.effect();
        this._changed();
      }
    });
  }

  _putAgentState(params, callbacks) {
    const wanted = params && params.state;
    const state = wanted && typeof wanted === "object"
      ? this.agentStates.find((s) => s.agentStateARN === wanted.agentStateARN && s.name === wanted.name)
      : null;
    if (!state) {
      this._later(() => callbacks.failure?.(JSON.stringify({
        type: "InvalidParameterException", message: "state must be one of the agent's states",
      })));
      return;
    }
    if (this.contacts.length > 0 && !params.enqueueNextState) {
      this._later(() => callbacks.failure?.(JSON.stringify(INVALID_STATE)));
      return;
    }
    // Connect accepts first; the change arrives with a later snapshot.
    this._later(() => {
      callbacks.success?.({});
      this._later(() => {
        if (this.contacts.length > 0) {
          this._enqueue(state);
        } else {
          this._apply(state);
        }
      });
    });
  }

  // Each contact method checks the request and returns {effect, data}, or throws Connect's refusal.

  _acceptContact({ contactId }) {
    const contact = this._contactOrThrow(contactId);
    if (!this._isRinging(contact)) throw new Error("Contact is not ringing; it cannot be accepted.");
    return {
      effect: () => {
        this._setContactState(contact, "connected");
        this._setConnection(this._agentConnection(contact), "connected");
      },
    };
  }

  _rejectContact({ contactId }) {
    const contact = this._contactOrThrow(contactId);
    if (!this._isRinging(contact)) throw new Error("Contact is not ringing; it cannot be rejected.");
    return {
      effect: () => {
        this._setContactState(contact, "rejected");
        this._setConnection(this._agentConnection(contact), "disconnected");
        this._later(() => this._remove(contact.contactId));
      },
    };
  }

  _holdConnection({ contactId, connectionId }) {
    const connection = this._connectionOrThrow(contactId, connectionId);
    if (connection.type === "agent" || connection.state.type !== "connected") {
      throw new Error("Cannot hold connection in current state.");
    }
    return { effect: () => this._setConnection(connection, "hold") };
  }

  _resumeConnection({ contactId, connectionId }) {
    const connection = this._connectionOrThrow(contactId, connectionId);
    if (connection.state.type !== "hold") throw new Error("Cannot resume connection in current state.");
    return { effect: () => this._setConnection(connection, "connected") };
  }

  _destroyConnection({ contactId, connectionId }) {
    const contact = this._contactOrThrow(contactId);
    const connection = this._connectionOrThrow(contactId, connectionId);
    if (!ACTIVE.has(connection.state.type) || FINISHED.has(contact.state.type)) {
      throw new Error("Connection is not active.");
    }
    if (connection.type === "agent") {
      if (this._isRinging(contact)) throw new Error("A ringing contact is rejected, not hung up.");
      // The agent leaves: the call is over for the agent (after-call work);
      // a third party stays with the customer (a transfer).
      return { effect: () => this._endForAgent(contact) };
    }
    return {
      effect: () => {
        this._setConnection(connection, "disconnected");
        contact.connections = contact.connections.filter((c) => c !== connection || c.initial);
        const customerGone = !ACTIVE.has(this._customer(contact)?.state.type);
        if (customerGone && this._thirdParties(contact).length === 0) this._endForAgent(contact);
      },
    };
  }

  _createOutboundContact({ endpoint }) {
    if (this.contacts.length > 0) throw new Error("The agent already has a voice contact.");
    if (this.selected.type === "offline") throw new Error("An offline agent cannot place calls.");
    const target = this._endpointTarget(endpoint);
    return {
      effect: () => {
        const contact = this._newContact({ phoneNumber: target.phoneNumber, attributes: {},
          queue: "BasicQueue", direction: "outbound" });
        // The agent's leg is up and hears ringback; the customer's phone rings.
        this._setConnection(this._agentConnection(contact), "connected");
        this._setConnection(this._customer(contact), "connecting");
        this.contacts.push(contact);
        this._scheduleAnswer(contact.contactId);
      },
    };
  }

  _sendDigits({ contactId, connectionId, digits }) {
    const connection = this._connectionOrThrow(contactId, connectionId);
    if (connection.state.type !== "connected") throw new Error("Cannot send digits to a connection not connected.");
    if (!/^[0-9*#,]+$/.test(String(digits))) throw new Error("digits may only hold 0-9 * # ,");
    return { effect: () => this.digitsSent.push({ contactId, connectionId, digits }) };
  }

  _clearContact({ contactId }) {
    const contact = this._contactOrThrow(contactId);
    if (!FINISHED.has(contact.state.type)) throw new Error("Only a contact in after-call work can be cleared.");
    return { effect: () => this._remove(contactId, { push: false }) };
  }

  _createAdditionalConnection({ contactId, endpoint }) {
    const contact = this._contactOrThrow(contactId);
    if (contact.state.type !== "connected") throw new Error("Contact is not connected.");
    if (this._thirdParties(contact).length > 0) throw new Error("A third party is already on the call.");
    const target = this._endpointTarget(endpoint);
    return {
      effect: () => {
        const customer = this._customer(contact);
        if (customer && customer.state.type === "connected") this._setConnection(customer, "hold");
        const index = contact.connections.length;
        contact.connections.push({
          connectionId: `${contact.contactId}-party-${index}`,
          endpoint: { endpointARN: target.endpointARN, phoneNumber: target.phoneNumber, agentLogin: null,
            name: target.name, queue: null, type: target.type || "phone_number" },
          state: { type: "connecting", timestamp: new Date() },
          type: "outbound",
          initial: false,
        });
      },
    };
  }

  _conferenceConnections({ contactId }) {
    const contact = this._contactOrThrow(contactId);
    if (this._thirdParties(contact).length === 0) throw new Error("There is no third party to conference.");
    return {
      effect: () => {
        for (const c of contact.connections) {
          if (c.type !== "agent" && c.state.type === "hold") this._setConnection(c, "connected");
        }
      },
    };
  }

  _toggleActiveConnections({ contactId }) {
    const contact = this._contactOrThrow(contactId);
    const parties = [this._customer(contact), ...this._thirdParties(contact)].filter(Boolean);
    const held = parties.filter((c) => c.state.type === "hold");
    const live = parties.filter((c) => c.state.type === "connected");
    if (parties.length < 2 || held.length === 0 || live.length === 0) {
      throw new Error("Nothing to swap: one party must be on hold and one connected.");
    }
    return {
      effect: () => {
        for (const c of held) this._setConnection(c, "connected");
        for (const c of live) this._setConnection(c, "hold");
      },
    };
  }

  _getEndpoints() {
    return { data: { endpoints: this.quickConnects.map((q) => ({ ...q })), nextToken: null } };
  }

  _onUpstream(event, data) {
    if (event !== "broadcast" || !data || data.event !== "mute") {
      this._record(`upstream:${event}`, event === "broadcast" && data ? { event: data.event } : data);
      // The shared worker sends every broadcast back down to the page's bus
      // (contact::accepted after Contact.accept, for one), a moment later.
      if (event === "broadcast" && data && data.event) {
        this._later(() => this.connect.core.getEventBus().trigger(data.event, data.data));
      }
      return;
    }
    const mute = Boolean(data.data && data.data.mute);
    this._record("mute", { mute });
    const behaviour = this._takeBehaviour("mute");
    if (behaviour) return; // a softphone that fails to mute says nothing
    // Like the softphone: without a live call's media stream, mute is ignored.
    if (!this._hasLiveMedia()) return;
    this._later(() => this._toggleMute(mute));
  }

  _toggleMute(muted) {
    this.muted = muted;
    this.connect.core.getEventBus().trigger(this.connect.AgentEvents.MUTE_TOGGLE, { muted });
    this.dispatchEvent(new CustomEvent("change"));
  }

  /**
   * A state picked during a contact, as Connect takes it: queued as the next
   * state, or, when it is the state the agent is in now (say Available again),
   * the queued one is cancelled (the CCP's "How to cancel Next status").
   */
  _enqueue(state) {
    this.nextState = state.agentStateARN === this.selected.agentStateARN ? null : state;
    this._changed();
  }

  _apply(state) {
    if (state.agentStateARN !== this.selected.agentStateARN) {
      this.selected = { ...state, startTimestamp: new Date() };
    }
    this.nextState = null;
    this._changed();
  }

  // -- the contact model ------------------------------------------------------

  _newContact({ phoneNumber, attributes, queue, direction }) {
    const now = new Date();
    const contactId = newContactId();
    const queueName = typeof queue === "string" ? queue : queue?.name || "BasicQueue";
    const arn = typeof queue === "object" && queue?.queueARN ? queue.queueARN : queueArn(queueName);
    return {
      contactId,
      initialContactId: contactId,
      type: "voice",
      initiationMethod: direction,
      state: { type: "connecting", timestamp: now },
      queue: { queueARN: arn, queueId: arn, name: queueName },
      queueTimestamp: now,
      connectSystemEndpoint: { endpointARN: null, type: "phone_number", name: null, phoneNumber: SYSTEM_PHONE,
        agentLogin: null, queue: null },
      connections: [
        {
          connectionId: `${contactId}-agent`,
          endpoint: { endpointARN: null, phoneNumber: null, agentLogin: this.username, name: this.name,
            queue: null, type: "agent" },
          state: { type: "connecting", timestamp: now },
          type: "agent",
          initial: false,
          softphoneMediaInfo: { callType: "audio_only", autoAccept: false,
            mediaLegContextToken: "emulated", callContextToken: "emulated", callConfigJson: "{}" },
        },
        {
          connectionId: `${contactId}-customer`,
          endpoint: { endpointARN: null, phoneNumber, agentLogin: null, name: null, queue: null,
            type: "phone_number" },
          state: { type: "connected", timestamp: now },
          type: direction,
          initial: true,
        },
      ],
      attributes: Object.fromEntries(Object.entries(attributes || {}).map(([key, value]) => [key,
        { name: key, value: value === null || value === undefined ? null : String(value) }])),
      contactDuration: "0",
    };
  }

  _contact(contactId) {
    return this.contacts.find((c) => c.contactId === contactId) || null;
  }

  _contactOrThrow(contactId) {
    const contact = this._contact(contactId);
    if (!contact) throw new Error(`Contact ${contactId} does not exist.`);
    return contact;
  }

  _connectionOrThrow(contactId, connectionId) {
    const contact = this._contactOrThrow(contactId);
    const connection = contact.connections.find((c) => c.connectionId === connectionId);
    if (!connection) throw new Error(`Connection ${connectionId} does not exist.`);
    return connection;
  }

  _agentConnection(contact) {
    return contact.connections.find((c) => c.type === "agent");
  }

  _customer(contact) {
    return contact.connections.find((c) => c.initial) || null;
  }

  _thirdParties(contact) {
    return contact.connections.filter((c) => c.type !== "agent" && !c.initial && ACTIVE.has(c.state.type));
  }

  _isRinging(contact) {
    return contact.initiationMethod !== "outbound" && contact.state.type === "connecting"
      && this._agentConnection(contact)?.state.type === "connecting";
  }

  _isOutboundDial(contact) {
    return contact.initiationMethod === "outbound" && contact.state.type === "connecting";
  }

  _hasLiveMedia() {
    return this.contacts.some((c) => c.state.type === "connected"
      && this._agentConnection(c)?.state.type === "connected");
  }

  _setContactState(contact, type) {
    contact.state = { type, timestamp: new Date() };
  }

  _setConnection(connection, type) {
    if (connection) connection.state = { type, timestamp: new Date() };
  }

  /** The agent's part of the call is over: after-call work (Connect's contact state `ended`). */
  _endForAgent(contact) {
    this._setContactState(contact, "ended");
    for (const c of contact.connections) {
      if (c.state.type !== "disconnected") this._setConnection(c, "disconnected");
    }
    if (this.muted) this._later(() => this._toggleMute(false));
  }

  /** The outbound call's customer answers after answerDelayMs. */
  _scheduleAnswer(contactId) {
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      const contact = this._contact(contactId);
      if (!contact || !this._isOutboundDial(contact)) return;
      this._setContactState(contact, "connected");
      this._setConnection(this._customer(contact), "connected");
      this._changed();
    }, this.answerDelayMs);
    this._timers.add(timer);
  }

  /** The contact leaves the snapshot; with no contact left, the queued state applies. */
  _remove(contactId, { push = true } = {}) {
    const before = this.contacts.length;
    this.contacts = this.contacts.filter((c) => c.contactId !== contactId);
    if (this.contacts.length === before) return;
    if (this.contacts.length === 0) this._afterContacts();
    if (push) this._changed();
  }

  /** The last contact is gone: the queued next state applies, or the picked one resumes. */
  _afterContacts() {
    if (this.nextState) {
      this.selected = { ...this.nextState, startTimestamp: new Date() };
      this.nextState = null;
    } else {
      this.selected = { ...this.selected, startTimestamp: new Date() };
    }
  }

  /** The system state Connect shows while contacts exist, or null. */
  _systemStateName() {
    const contact = this.contacts.find((c) => !["missed", "rejected"].includes(c.state.type));
    if (!contact) return null;
    if (contact.state.type === "ended" || contact.state.type === "error") return "AfterCallWork";
    if (this._isRinging(contact)) return "PendingBusy";
    if (this._isOutboundDial(contact)) return "CallingCustomer";
    return "Busy";
  }

  /** What a Streams endpoint dials: a number, or a quick connect's. */
  _endpointTarget(endpoint) {
    const wanted = endpoint || {};
    if (wanted.endpointARN) {
      const quick = this.quickConnects.find((q) => q.endpointARN === wanted.endpointARN);
      if (!quick) throw new Error(`No quick connect ${wanted.endpointARN}.`);
      return { ...quick, phoneNumber: quick.phoneNumber };
    }
    if (!wanted.phoneNumber) throw new Error("The endpoint has no phone number.");
    return { endpointARN: null, type: "phone_number", name: wanted.name || null, phoneNumber: wanted.phoneNumber };
  }

  /** Save and push: the model changed. */
  _changed() {
    this._save();
    this.push();
  }

  // -- helpers ---------------------------------------------------------------

  /** Record a backend call and say so at once (the panel's "Backend calls seen"). */
  _record(method, params) {
    const entry = { method, params: copy(params), at: new Date().toISOString() };
    this.calls.push(entry);
    this.dispatchEvent(new CustomEvent("call", { detail: entry }));
  }

  _queueBehaviour(method, behaviour) {
    if (!this._next.has(method)) this._next.set(method, []);
    this._next.get(method).push(behaviour);
    this.dispatchEvent(new CustomEvent("armed"));
  }

  /** The behaviour armed for this call of `method`, used up (an "armed" event says so), or null. */
  _takeBehaviour(method) {
    const queue = this._next.get(method);
    if (!queue || !queue.length) return null;
    const behaviour = queue.shift();
    if (!queue.length) this._next.delete(method);
    this.dispatchEvent(new CustomEvent("armed"));
    return behaviour;
  }

  _later(fn) {
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      fn();
    }, this.latencyMs);
    this._timers.add(timer);
  }

  _stateByName(name) {
    return this.agentStates.find((s) => s.name === name) || null;
  }

  _storageKey() {
    return `connect-bridge:ccp-emulator:${this.username}`;
  }

  _load() {
    try {
      const text = this.storage?.getItem(this._storageKey());
      return text ? JSON.parse(text) : null;
    } catch {
      return null;
    }
  }

  _save() {
    try {
      this.storage?.setItem(this._storageKey(), JSON.stringify({
        state: this.selected.name,
        since: this.selected.startTimestamp.toISOString(),
        next: this.nextState ? this.nextState.name : null,
        contacts: this.contacts,
        system: this._system ? { name: this._system.name, since: this._system.since.toISOString() } : null,
      }));
    } catch {
      // Storage can be unavailable (private windows); the model then just resets on reload.
    }
  }

  _configuration() {
    const routingProfileId = `${INSTANCE_ARN}/routing-profile/7c1e3a5b-9d2f-4b6a-8c0e-1f3a5b7c9d20`;
    const agentQueue = `${INSTANCE_ARN}/queue/agent/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c60`;
    const basicQueue = `${INSTANCE_ARN}/queue/2d4f6a8b-0c1e-4f3a-9b5d-7e9f1a3c5e70`;
    return {
      name: this.name,
      username: this.username,
      softphoneEnabled: true,
      softphoneAutoAccept: false,
      extension: "",
      agentStates: this.agentStates.map((s) => ({ ...s })),
      routingProfile: {
        name: "Basic Routing Profile",
        routingProfileARN: routingProfileId,
        routingProfileId,
        defaultOutboundQueue: { queueARN: basicQueue, queueId: basicQueue, name: "BasicQueue" },
        queues: [{ queueARN: agentQueue, queueId: agentQueue, name: null }],
        channelConcurrencyMap: { VOICE: 1, CHAT: 0, TASK: 0 },
      },
      permissions: ["outboundCall"],
      dialableCountries: ["us"],
      agentPreferences: { LANGUAGE: "en_US" },
      agentARN: `${INSTANCE_ARN}/agent/3b5d7f9a-1c3e-4a5b-8d7f-9a1c3e5b7d90`,
    };
  }
}
