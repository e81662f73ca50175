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
 * Tests and the demo steer the model: failNext, neverAnswerNext, startCall,
 * endCall, selectState; every call is recorded in `calls`.
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

/** "agent2" -> "Agent 2": a display name like the ones Connect admins give. */
function displayName(username) {
  const match = /^([a-z]+)(\d+)$/i.exec(username);
  if (!match) return username;
  return `${match[1][0].toUpperCase()}${match[1].slice(1)} ${match[2]}`;
}

function copy(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

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
   * @param {Storage|null} [options.storage=sessionStorage] keeps the agent's state across a page
   *   reload, as Connect keeps it server-side
   */
  constructor({ connect, username = "agent1", name, initialState = "Available", latencyMs = 40,
    refreshMs = 5000, storage = globalThis.sessionStorage ?? null }) {
    super();
    this.connect = connect;
    this.username = username;
    this.name = name || displayName(username);
    this.latencyMs = latencyMs;
    this.refreshMs = refreshMs;
    this.storage = storage;
    this.agentStates = DEFAULT_AGENT_STATES.map((s) => ({ ...s }));
    /** Every call and broadcast the library sent to the backend, oldest first. */
    this.calls = [];
    /** method -> list of pending behaviours ("fail" | "never") for the next calls. */
    this._next = new Map();
    this._timers = new Set();

    const saved = this._load();
    const initial = this._stateByName(saved?.state ?? initialState) || this.agentStates[0];
    /** The state the agent picked (what Connect calls agentAvailabilityState). */
    this.selected = { ...initial, startTimestamp: saved ? new Date(saved.since) : new Date() };
    /** A state queued for after the call (enqueueNextState), or null. */
    this.nextState = saved?.next ? this._stateByName(saved.next) : null;
    /** The call in progress, or null. */
    this.call = saved?.call ? { ...saved.call, since: new Date(saved.call.since) } : null;
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
    return this;
  }

  /** Stop timers (the seams stay in place). */
  uninstall() {
    clearInterval(this._refreshTimer);
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.clear();
  }

  // -- steering (tests, demo controls) -------------------------------------

  /** The next call of `method` ("putAgentState", "mute") fails like Connect would. */
  failNext(method = "putAgentState") {
    this._queueBehaviour(method, "fail");
  }

  /** The next call of `method` is swallowed: no callback, ever (like a 401/403). */
  neverAnswerNext(method = "putAgentState") {
    this._queueBehaviour(method, "never");
  }

  /** An inbound softphone call is connected: system state Busy; mute works. */
  startCall(phoneNumber = "+15555550123") {
    if (this.call) return;
    this.call = { contactId: `c-${Date.now().toString(36)}`, phoneNumber, since: new Date() };
    this._save();
    this.push();
  }

  /** The call ends: the queued next state applies, mute is released. */
  endCall() {
    if (!this.call) return;
    this.call = null;
    if (this.nextState) {
      this.selected = { ...this.nextState, startTimestamp: new Date() };
      this.nextState = null;
    } else {
      this.selected = { ...this.selected, startTimestamp: new Date() };
    }
    this._save();
    this.push();
    if (this.muted) this._toggleMute(false);
  }

  /** The agent picks a state in the CCP itself (not through the bridge). */
  selectState(name) {
    const state = this._stateByName(name);
    if (!state) throw new Error(`no agent state named ${name}`);
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
    const { selected, call } = this;
    const state = call
      ? { agentStateARN: null, type: "system", name: "Busy", startTimestamp: call.since }
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
        contacts: call ? [this._contact(call)] : [],
        snapshotTimestamp: now,
        localTimestamp: now.getTime(),
        skew: 0,
      },
      configuration: this._configuration(),
    };
  }

  /** Push a snapshot now: drives connect.agent, onRefresh, onStateChange... */
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
    // The provider makes no other calls; answer like a backend that lacks the
    // operation so a caller's failure path runs instead of hanging.
    this._later(() => callbacks.failure?.(JSON.stringify({
      type: "UnsupportedOperationException", message: `${method} is not emulated`,
    })));
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
    if (this.call && !params.enqueueNextState) {
      this._later(() => callbacks.failure?.(JSON.stringify(INVALID_STATE)));
      return;
    }
    // Connect accepts first; the change arrives with a later snapshot.
    this._later(() => {
      callbacks.success?.({});
      this._later(() => {
        if (this.call) {
          this.nextState = state;
          this._save();
          this.push();
        } else {
          this._apply(state);
        }
      });
    });
  }

  _onUpstream(event, data) {
    if (event !== "broadcast" || !data || data.event !== "mute") {
      this._record(`upstream:${event}`, data);
      return;
    }
    const mute = Boolean(data.data && data.data.mute);
    this._record("mute", { mute });
    const behaviour = this._takeBehaviour("mute");
    if (behaviour) return; // a softphone that fails to mute says nothing
    // Like the softphone: without a live call's media stream, mute is ignored.
    if (!this.call) return;
    this._later(() => this._toggleMute(mute));
  }

  _toggleMute(muted) {
    this.muted = muted;
    this.connect.core.getEventBus().trigger(this.connect.AgentEvents.MUTE_TOGGLE, { muted });
    this.dispatchEvent(new CustomEvent("change"));
  }

  _apply(state) {
    if (state.agentStateARN !== this.selected.agentStateARN) {
      this.selected = { ...state, startTimestamp: new Date() };
    }
    this.nextState = null;
    this._save();
    this.push();
  }

  // -- helpers ---------------------------------------------------------------

  _record(method, params) {
    this.calls.push({ method, params: copy(params), at: new Date().toISOString() });
  }

  _queueBehaviour(method, behaviour) {
    if (!this._next.has(method)) this._next.set(method, []);
    this._next.get(method).push(behaviour);
  }

  _takeBehaviour(method) {
    const queue = this._next.get(method);
    return queue && queue.length ? queue.shift() : null;
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
        call: this.call ? { ...this.call, since: this.call.since.toISOString() } : null,
      }));
    } catch {
      // Storage can be unavailable (private windows); the model then just resets on reload.
    }
  }

  _contact(call) {
    const at = call.since;
    return {
      contactId: call.contactId,
      initialContactId: call.contactId,
      type: "voice",
      state: { type: "connected", timestamp: at },
      queue: { queueARN: `${INSTANCE_ARN}/queue/2d4f6a8b-0c1e-4f3a-9b5d-7e9f1a3c5e70`, name: "BasicQueue",
        queueId: `${INSTANCE_ARN}/queue/2d4f6a8b-0c1e-4f3a-9b5d-7e9f1a3c5e70` },
      queueTimestamp: at,
      connections: [
        {
          connectionId: `${call.contactId}-agent`,
          endpoint: { endpointARN: null, phoneNumber: null, agentLogin: this.username, name: this.name,
            queue: null, type: "agent" },
          state: { type: "connected", timestamp: at },
          type: "agent",
          initial: false,
          softphoneMediaInfo: { callType: "audio_only", autoAccept: false,
            mediaLegContextToken: "emulated", callContextToken: "emulated", callConfigJson: "{}" },
        },
        {
          connectionId: `${call.contactId}-customer`,
          endpoint: { endpointARN: null, phoneNumber: call.phoneNumber, agentLogin: null, name: null,
            queue: null, type: "telephone_number" },
          state: { type: "connected", timestamp: at },
          type: "inbound",
          initial: true,
        },
      ],
      attributes: {},
      contactDuration: "0",
    };
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
