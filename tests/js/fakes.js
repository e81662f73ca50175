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
    this.handlers = { refresh: new Set(), stateChange: new Set(), enqueued: new Set(), mute: new Set() };
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
  getContacts() {
    if (!this.onCall) return [];
    return [{ isSoftphoneCall: () => true, getState: () => ({ type: "connected" }) }];
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
