/**
 * Test doubles for the browser modules under Node: a WebSocket whose other
 * end the test plays (the hub), and a Streams `connect.Agent`.
 * Not a test file itself (node --test runs only *.test.js).
 */

/** Let pending promise callbacks run (setImmediate is never mocked by the tests). */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

function event(type, props = {}) {
  return Object.assign(new Event(type), props);
}

/**
 * A WebSocket class for `new BridgeClient({WebSocket})`, and the sockets it made.
 * The test is the hub: `socket.accept()`, `socket.deliver(envelope)`, `socket.drop(code)`.
 */
export function fakeWebSockets() {
  const sockets = [];

  class FakeWebSocket extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = 0;
      /** Frames the client sent, parsed. */
      this.sent = [];
      /** {code, reason} when the client closed it. */
      this.closedWith = null;
      sockets.push(this);
    }

    send(text) {
      if (this.readyState !== 1) throw new Error(`send on a socket in state ${this.readyState}`);
      this.sent.push(JSON.parse(text));
    }

    close(code = 1005, reason = "") {
      if (this.readyState >= 2) return;
      this.closedWith = { code, reason };
      this.readyState = 3;
      this.dispatchEvent(event("close", { code, reason }));
    }

    // -- the hub's side ---------------------------------------------------

    accept() {
      this.readyState = 1;
      this.dispatchEvent(event("open"));
    }

    deliver(envelope) {
      this.dispatchEvent(event("message", { data: JSON.stringify(envelope) }));
    }

    /** Accept, and answer the client's Hello with Welcome. */
    welcome(message = {}) {
      if (this.readyState === 0) this.accept();
      this.deliver({
        channel: "Bridge", topic: "Session", subtopic: "Welcome",
        message: { agent: "agent1", role: "app", connectionId: `c${sockets.indexOf(this)}`,
          providerConnected: true, ...message },
      });
    }

    drop(code = 1006, reason = "") {
      if (this.readyState >= 2) return;
      this.readyState = 3;
      this.dispatchEvent(event("close", { code, reason }));
    }

    /** The frames sent of one kind ("channel/topic/subtopic"). */
    sentOf(kind) {
      return this.sent.filter((f) => `${f.channel}/${f.topic}/${f.subtopic}` === kind);
    }
  }

  FakeWebSocket.CONNECTING = 0;
  FakeWebSocket.OPEN = 1;
  return { WebSocket: FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

const ARN = "arn:aws:connect:us-east-1:123456789012:instance/0f6a2b1c/agent-state";
const QUEUE_ARN = "arn:aws:connect:us-east-1:123456789012:instance/0f6a2b1c";

/** The agent states of the fake instance, as `getAgentStates()` lists them. */
export const AGENT_STATES = Object.freeze([
  { agentStateARN: `${ARN}/1`, type: "routable", name: "Available" },
  { agentStateARN: `${ARN}/2`, type: "not_routable", name: "Break" },
  { agentStateARN: `${ARN}/3`, type: "not_routable", name: "Lunch" },
  { agentStateARN: `${ARN}/4`, type: "offline", name: "Offline" },
]);

/**
 * A `connect.Agent` with the surface the provider uses. Connect's backend is
 * the test: `setStateBehaviour` says how the next setState calls go
 * ("accept": success, then a snapshot with the new state; "accept-only":
 * success and no snapshot; "fail": failure with a JSON string, as Streams
 * does; "never": no callback at all). Every setState call is kept in `setStateCalls`.
 */
export class FakeAgent {
  constructor({ username = "agent1", state = "Available", onCall = false } = {}) {
    this.username = username;
    this.states = AGENT_STATES.map((s) => ({ ...s }));
    this.current = { ...this.stateNamed(state), startTimestamp: new Date("2024-05-01T09:00:00.000Z") };
    this.next = null;
    this.muted = false;
    this.onCall = onCall;
    this.setStateBehaviour = "accept";
    this.setStateCalls = [];
    this.muteCalls = [];
    this.handlers = { refresh: new Set(), stateChange: new Set(), enqueued: new Set(), mute: new Set(),
      contact: new Set() };
    /** @type {FakeContact[]} the voice contacts of the snapshot */
    this.contacts = [];
    /** Contact CTI calls the provider made: {method, contactId?, connectionId?, ...}. */
    this.ctiCalls = [];
    /** method -> "accept" | "fail" | "never" for the next CTI calls of that method. */
    this.ctiBehaviour = {};
    this.quickConnects = [
      { name: "Front desk", type: "phone_number", endpointARN: `${QUEUE_ARN}/transfer-destination/bb22`,
        phoneNumber: "+18005550111", stripPhoneNumber() { return this.phoneNumber; } },
    ];
  }

  /** A contact arrives in the snapshot (connect.contact fires), then the snapshot is pushed. */
  addContact(data) {
    const contact = new FakeContact(this, data);
    this.contacts.push(contact);
    for (const cb of [...this.handlers.contact]) cb(contact);
    this.snapshot();
    return contact;
  }

  /** A contact leaves the snapshot. */
  removeContact(id) {
    this.contacts = this.contacts.filter((c) => c.getContactId() !== id);
    this.snapshot();
  }

  stateNamed(name) {
    return this.states.find((s) => s.name === name);
  }

  // -- the connect.Agent API ------------------------------------------------

  _subscribe(set, callback) {
    set.add(callback);
    return { unsubscribe: () => set.delete(callback) };
  }

  onRefresh(cb) { return this._subscribe(this.handlers.refresh, cb); }
  onStateChange(cb) { return this._subscribe(this.handlers.stateChange, cb); }
  onEnqueuedNextState(cb) { return this._subscribe(this.handlers.enqueued, cb); }
  onMuteToggle(cb) { return this._subscribe(this.handlers.mute, cb); }

  getAgentStates() { return this.states; }
  getState() {
    return this.onCall
      ? { agentStateARN: null, type: "system", name: "Busy", startTimestamp: this.current.startTimestamp }
      : this.current;
  }
  getNextState() { return this.next; }
  getName() { return "Agent One"; }
  getExtension() { return ""; }
  isSoftphoneEnabled() { return true; }
  getConfiguration() { return { username: this.username }; }
  getContacts(type) {
    const contacts = this.onCall && this.contacts.length === 0
      ? [this._legacyCall || (this._legacyCall = new FakeContact(this, fakeContactData({ id: "c-legacy", state: "connected" })))]
      : this.contacts;
    return contacts.filter((c) => !type || c.getType() === type);
  }
  getAllQueueARNs() { return [`${QUEUE_ARN}/agent/1`]; }

  /** agent.connect: kept in `connectCalls`; Connect's side answers through `ctiBehaviour`. */
  connect(endpoint, params) {
    this.ctiCalls.push({ method: "createOutboundContact", endpoint });
    this._answerCti("createOutboundContact", params);
  }

  getEndpoints(queueARNs, callbacks) {
    this.ctiCalls.push({ method: "getEndpoints", queueARNs });
    this._answerCti("getEndpoints", callbacks, { endpoints: this.quickConnects });
  }

  onContactHandlers() { return this.handlers.contact; }

  /** `connect.contact(f)`, bound to this agent's contacts. */
  get contactHook() {
    return (f) => this._subscribe(this.handlers.contact, f);
  }

  /** Answer a CTI call as `ctiBehaviour[method]` says: "accept" (default), "fail", "never". */
  _answerCti(method, callbacks, data = {}) {
    const behaviour = this.ctiBehaviour[method] || "accept";
    if (behaviour === "never") return;
    if (behaviour === "fail") {
      callbacks.failure(JSON.stringify({ type: "InvalidStateException", message: `Cannot ${method} now.` }));
      return;
    }
    callbacks.success(data);
  }

  setState(state, callbacks, options) {
    this.setStateCalls.push({ state, options });
    const behaviour = this.setStateBehaviour;
    if (behaviour === "never") return;
    if (behaviour === "fail") {
      callbacks.failure(JSON.stringify({ type: "InvalidStateException",
        message: "Cannot change agent state: Invalid agent or contact state." }));
      return;
    }
    callbacks.success({});
    if (behaviour === "accept") this.snapshot(state);
  }

  mute() { this.muteCalls.push(true); }
  unmute() { this.muteCalls.push(false); }

  // -- Connect's side ---------------------------------------------------------

  /** A snapshot arrives: with `state`, the agent is now in it (or has it queued, on a call). */
  snapshot(state) {
    if (state && this.onCall) {
      this.next = { ...state };
      for (const cb of [...this.handlers.enqueued]) cb(this);
    } else if (state) {
      const old = this.current.name;
      this.current = { ...state, startTimestamp: new Date("2024-05-01T09:05:00.000Z") };
      for (const cb of [...this.handlers.stateChange]) cb({ agent: this, oldState: old, newState: state.name });
    }
    for (const cb of [...this.handlers.refresh]) cb(this);
  }

  /** The softphone reports a mute change. */
  toggleMute(muted) {
    this.muted = muted;
    for (const cb of [...this.handlers.mute]) cb({ muted });
  }
}

/**
 * The snapshot data of a voice contact as Connect sends it (streams-notes.md,
 * "Contacts"): agent and customer connections, queue, attributes.
 */
export function fakeContactData({ id = "9b1f3a52", state = "connecting", agentState, customerState = "connected",
  direction = "inbound", phoneNumber = "+15555550123", at = "2026-11-28T10:00:00.120Z",
  attributes = { CustomerId: { name: "CustomerId", value: "C-20411" }, Reason: { name: "Reason", value: "billing" } },
  systemPhone = "+18005550199", initiationMethod } = {}) {
  const timestamp = new Date(at);
  return {
    contactId: id,
    type: "voice",
    state: { type: state, timestamp },
    initiationMethod: initiationMethod || direction,
    queue: { name: "Billing", queueARN: `${QUEUE_ARN}/queue/5d1c` },
    attributes,
    connectSystemEndpoint: { type: "phone_number", phoneNumber: systemPhone },
    connections: [
      { connectionId: `${id}-a`, type: "agent", initial: false, endpoint: { type: "agent", phoneNumber: null },
        state: { type: agentState || (state === "connecting" ? "connecting" : "connected"), timestamp } },
      { connectionId: `${id}-c`, type: direction, initial: true,
        endpoint: { type: "phone_number", phoneNumber },
        state: { type: customerState, timestamp } },
    ],
  };
}

/** A connect.Contact over `data`; its CTI calls are recorded on the agent. */
export class FakeContact {
  constructor(agent, data) {
    this.agent = agent;
    this.data = data;
    this.acceptedHandlers = new Set();
  }

  getContactId() { return this.data.contactId; }
  getType() { return this.data.type; }
  getState() { return this.data.state; }
  getInitiationMethod() { return this.data.initiationMethod; }
  getQueue() { return this.data.queue; }
  getAttributes() { return this.data.attributes; }
  getConnectSystemEndpoint() { return this.data.connectSystemEndpoint; }
  isSoftphoneCall() { return true; }
  getConnections() { return this.data.connections.map((c) => new FakeConnection(this, c)); }
  onAccepted(f) {
    this.acceptedHandlers.add(f);
    return { unsubscribe: () => this.acceptedHandlers.delete(f) };
  }

  _cti(method, callbacks, extra = {}) {
    this.agent.ctiCalls.push({ method, contactId: this.getContactId(), ...extra });
    this.agent._answerCti(method, callbacks);
  }

  accept(cb) { this._cti("acceptContact", cb); }
  reject(cb) { this._cti("rejectContact", cb); }
  clear(cb) { this._cti("clearContact", cb); }
  addConnection(endpoint, cb) { this._cti("createAdditionalConnection", cb, { endpoint }); }
  conferenceConnections(cb) { this._cti("conferenceConnections", cb); }
  toggleActiveConnections(cb) { this._cti("toggleActiveConnections", cb); }

  // -- Connect's side -----------------------------------------------------------

  /** Change the contact's data (state, a connection's state...) and push a snapshot. */
  update(change) {
    change(this.data);
    this.agent.snapshot();
  }

  /** Set connection `suffix` ("a", "c", ...) to `state`, at `at`. */
  setConnection(suffix, state, at = "2026-11-28T10:01:10.004Z") {
    const connection = this.data.connections.find((c) => c.connectionId === `${this.getContactId()}-${suffix}`);
    connection.state = { type: state, timestamp: new Date(at) };
  }

  /** Streams broadcasts contact::accepted for this contact. */
  accepted() {
    for (const f of [...this.acceptedHandlers]) f(this);
  }
}

class FakeConnection {
  constructor(contact, data) {
    this.contact = contact;
    this.data = data;
  }

  getConnectionId() { return this.data.connectionId; }
  getType() { return this.data.type; }
  getState() { return this.data.state; }
  isInitialConnection() { return this.data.initial; }
  getEndpoint() {
    const endpoint = this.data.endpoint;
    return { ...endpoint, stripPhoneNumber: () => (endpoint.phoneNumber || "").replace(/sip:([^@]*)@.*/, "$1") };
  }

  _cti(method, callbacks, extra = {}) {
    this.contact.agent.ctiCalls.push({ method, contactId: this.contact.getContactId(),
      connectionId: this.getConnectionId(), ...extra });
    this.contact.agent._answerCti(method, callbacks);
  }

  hold(cb) { this._cti("holdConnection", cb); }
  resume(cb) { this._cti("resumeConnection", cb); }
  destroy(cb) { this._cti("destroyConnection", cb); }
  sendDigits(digits, cb) { this._cti("sendDigits", cb, { digits }); }
}
