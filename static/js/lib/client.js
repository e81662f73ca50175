/**
 * Browser client for the connect-bridge hub (wire protocol v1).
 *
 * The JavaScript twin of the Python `bridge.client.BridgeClient`: the same
 * names and meanings wherever the languages allow (docs/client.md has the
 * table). It says Hello on every connection, matches answers to requests by
 * `replyTo`, hands events to handlers by kind, keeps the latest event of each
 * kind received on the current connection (`last`), and comes back after a
 * drop with exponential backoff and full jitter. Every role uses it: widgets
 * as `app`, the Streams page as `provider`, the wallboard as `supervisor`
 * (protocol 1.2: one connection following many agents; every frame it gets
 * carries the agent's name in its top-level `agent`, and its requests name
 * their target agent the same way).
 *
 * No event is lost across a reconnect while the hub still has it: the client
 * remembers the last position (`epoch`, `offset`) it saw per agent
 * (`positions`) and asks for every later event in its next Hello
 * (`data.recover`); the hub replays them, marked `recovered: true`, before the
 * live ones, and `recovered` says whether it could (when not, the retained
 * state comes, as on a first connection).
 *
 * @example
 *   const bus = new BridgeClient({ url: "ws://127.0.0.1:8765/ws", agent: "agent1" });
 *   bus.addStateListener((state) => console.log(state));
 *   bus.on("Amazon/Agent/SetAgentState", (env) => render(env.message));
 *   bus.start();
 *   await bus.ready();
 *   await bus.request("Amazon/Agent/SetNotReady", { ReasonCodeId: "Lunch" });
 *
 *   // A supervisor on an open hub: every agent, and the right to send requests.
 *   const floor = new BridgeClient({ url, role: "supervisor", agents: ["*"], control: true });
 *   floor.on("Amazon/Agent/SetAgentState", (env) => show(env.agent, env.message));
 *   await floor.request("Amazon/Agent/SetNotReady", { ReasonCodeId: "Break" }, { agent: "agent7" });
 * @module lib/client
 */

import { isError, kindOf, parseKind } from "./kind.js";
import {
  CloseCode, ErrorType, HELLO, HUMAN_MESSAGES, PROVIDER_STATUS, REFRESH, REFRESHED, REPLACED, WELCOME,
} from "./names.js";
import { tokenExpiry } from "./token.js";

/** Share of a token's remaining life after which a fresh one is presented on the open connection. */
const REFRESH_AT = 0.8;
/** Longest wait between attempts when a refresh fails, in ms. */
const REFRESH_RETRY_MS = 5_000;
/** The most agents a supervisor's Hello may name (the hub's MAX_SCOPE). */
const MAX_SCOPE = 5000;
/** Characters of `recover` entries a supervisor's Hello may carry (its frame is at most 64 KiB). */
const RECOVER_BUDGET = 48 * 1024;
/** The longest epoch the hub sends. */
const MAX_EPOCH = 64;

/**
 * The position a frame carries (top-level `epoch` and `offset`), or null.
 * @param {object} envelope
 * @returns {{epoch: string, offset: number}|null}
 */
function positionOf(envelope) {
  const { epoch, offset } = envelope;
  if (typeof epoch !== "string" || epoch.length < 1 || epoch.length > MAX_EPOCH) return null;
  if (!Number.isInteger(offset) || offset < 0) return null;
  return { epoch, offset };
}

/** A position given by the caller, checked and copied; a TypeError says what is wrong. */
function checkedPosition(value, what) {
  const position = value && typeof value === "object" ? positionOf(value) : null;
  if (position === null) {
    throw new TypeError(`${what} is {epoch, offset}: an epoch of 1 to ${MAX_EPOCH} characters and an offset >= 0`);
  }
  return Object.freeze(position);
}

/**
 * The last position seen per agent and the recovery rules (the Python client's
 * PositionBook): every event with a position moves its agent's entry to the
 * highest offset of the entry's epoch, a new epoch replaces it; a retained
 * replay never lowers it and only starts one; a live or recovered event at or
 * below the entry, same epoch, was delivered already and is dropped.
 * Internal to the client (its methods start with `_`, like the client's own internals).
 */
class PositionBook {
  constructor() {
    /** @type {Map<string, {epoch: string, offset: number}>} the most recently updated last */
    this.byAgent = new Map();
    this.duplicates = 0;
  }

  _set(agent, position) {
    this.byAgent.delete(agent);
    this.byAgent.set(agent, Object.freeze({ epoch: position.epoch, offset: position.offset }));
  }

  /** Note the event's position; false when it must be dropped as a repeat. */
  _admit(agent, envelope) {
    const position = positionOf(envelope);
    if (position === null) return true;
    const known = this.byAgent.get(agent);
    const same = known !== undefined && known.epoch === position.epoch;
    if (envelope.retained === true) {
      if (known === undefined || (same && position.offset > known.offset)) this._set(agent, position);
      return true;
    }
    if (same && position.offset <= known.offset) {
      this.duplicates += 1;
      console.debug(`connect-bridge: dropped an event of ${agent} at ${position.epoch}:${position.offset}, `
        + `seen already (${this.duplicates} so far)`);
      return false;
    }
    this._set(agent, position);
    return true;
  }

  /** After a Welcome: the recovered agents keep their entry (at least what they asked from); the rest go. */
  _keepOnly(recovered) {
    const kept = new Map();
    for (const [agent, asked] of recovered) {
      const mine = this.byAgent.get(agent);
      kept.set(agent, mine && mine.epoch === asked.epoch && mine.offset >= asked.offset ? mine : asked);
    }
    this.byAgent = kept;
  }

  /** A supervisor's `recover`: its agents with a position, in scope, the most recent first, bounded. */
  _supervisorRecover(scope) {
    const wanted = !scope || scope.includes("*") ? null : new Set(scope);
    const asked = new Map();
    let used = 0;
    for (const agent of [...this.byAgent.keys()].reverse()) {
      if (wanted !== null && !wanted.has(agent)) continue;
      const position = this.byAgent.get(agent);
      used += JSON.stringify({ [agent]: position }).length;
      if (used > RECOVER_BUDGET || asked.size >= MAX_SCOPE) break;
      asked.set(agent, position);
    }
    return asked;
  }
}

/**
 * Error types the client raises itself; they never travel on the wire (the
 * Python client's `CONNECTION_LOST`, `CONNECT_FAILED`, `CLIENT_CLOSED`, `REPLACED`).
 */
export const ClientErrorType = Object.freeze({
  CONNECTION_LOST: "CONNECTION_LOST",
  CONNECT_FAILED: "CONNECT_FAILED",
  CLIENT_CLOSED: "CLIENT_CLOSED",
  REPLACED: "REPLACED",
});

/**
 * Any failure the bus reports, on the wire or in the client. `errorType` is
 * the stable code (an `ErrorType` from names.js or a `ClientErrorType`);
 * `errorMessage` the technical cause; `msg` a sentence fit to show a person;
 * `request` the kind of the failed request when known; `envelope` the error
 * frame as received (null for errors the client raised itself, which have
 * `local` true).
 */
export class BridgeError extends Error {
  /**
   * @param {{errorType: string, errorMessage?: string, msg?: string, request?: object}} data
   * @param {object|null} [envelope] the error frame, when there was one
   * @param {{local?: boolean}} [options]
   */
  constructor(data, envelope = null, { local = false } = {}) {
    super(`${data.errorType}: ${data.errorMessage || data.msg || ""}`);
    this.name = "BridgeError";
    /** True for errors the client raised itself rather than received. */
    this.local = local;
    this.errorType = data.errorType;
    this.errorMessage = data.errorMessage || "";
    this.msg = data.msg || "The request failed.";
    this.request = data.request || null;
    this.envelope = envelope;
    /** The agent the error is about (frames to supervisors carry it), else null. */
    this.agent = envelope && typeof envelope.agent === "string" ? envelope.agent : null;
  }
}

/** A client-side error (`local` true). */
function localError(errorType, errorMessage, msg, request = null) {
  return new BridgeError({ errorType, errorMessage, msg, request }, null, { local: true });
}

function closedError() {
  return localError(ClientErrorType.CLIENT_CLOSED, "the client is closed", "The connection was closed.");
}

function timeoutError(message) {
  const error = new Error(message);
  error.name = "TimeoutError";
  return error;
}

/** Connection states: the same names, and the same initial state, as the Python client's. */
export const ConnectionState = Object.freeze({
  IDLE: "idle", // start() not called yet (the initial state)
  CONNECTING: "connecting", // the first connection is being made, retries included
  OPEN: "open", // Welcome received: requests may be sent
  RECONNECTING: "reconnecting", // was open, dropped: waiting (retry event's retryInMs), then trying again
  CLOSED: "closed", // for good: close() was called, replaced, or refused; see closeError
});

/** Timing defaults in ms; the Python client has the same numbers in seconds. */
export const DEFAULTS = Object.freeze({
  requestTimeout: 15000,
  connectTimeout: 10000,
  backoffInitial: 500,
  backoffMax: 30000,
  stableAfter: 10000,
});

/**
 * The delay before reconnect attempt `attempt` (from 0), "full jitter":
 * uniform in [0, min(max, initial * 2**attempt)), so that the widgets one hub
 * restart dropped do not all come back in the same millisecond.
 * @param {number} attempt
 * @param {number} [initial=500] ms
 * @param {number} [max=30000] ms
 * @param {() => number} [random=Math.random] uniform in [0, 1)
 * @returns {number} ms
 */
export function backoffDelay(attempt, initial = DEFAULTS.backoffInitial, max = DEFAULTS.backoffMax,
  random = Math.random) {
  return Math.floor(random() * Math.min(max, initial * 2 ** Math.min(attempt, 30)));
}

/**
 * A unique request id. `crypto.randomUUID` exists only in secure contexts
 * (HTTPS or loopback), so plain-HTTP LAN demos fall back to random bytes.
 */
export function newId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") {
    return globalThis.crypto.randomUUID().replaceAll("-", "");
  }
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class BridgeClient extends EventTarget {
  /**
   * Give either `token` (a secured hub) or `agent` (an open demo hub), not both;
   * a supervisor gives `token` or `agents` (and `control`) instead.
   *
   * @param {object} options
   * @param {string} options.url            the hub's WebSocket URL, e.g. ws://host:port/ws
   * @param {string|(() => string|Promise<string>)} [options.token] signed token, or a function
   *   returning a fresh one, called before every connection (short-lived tokens)
   * @param {string} [options.agent]        agent name (open-mode hub only; apps and providers)
   * @param {"app"|"provider"|"supervisor"} [options.role="app"]
   * @param {string[]} [options.agents]     supervisor on an open-mode hub: the agents to follow, or ["*"]
   * @param {boolean} [options.control]     supervisor on an open-mode hub: ask for the right to send
   *   requests (the hub's default is false); with a token, the token says
   * @param {string} [options.source="browser"] this app's name in `source` (1-64 characters)
   * @param {number} [options.requestTimeout=15000] ms before a request gives up (REQUEST_TIMEOUT,
   *   local); longer than the hub's own 10 s so the hub's error, which names the cause, comes first
   * @param {number} [options.connectTimeout=10000] ms to connect and get Welcome before trying again
   * @param {boolean} [options.reconnect=true]
   * @param {number} [options.backoffInitial=500] ms, see backoffDelay
   * @param {number} [options.backoffMax=30000] ms, see backoffDelay
   * @param {number} [options.stableAfter=10000] ms a connection must stay up for the backoff to
   *   start again from attempt 0
   * @param {{epoch: string, offset: number}|Object<string, {epoch: string, offset: number}>} [options.recover]
   *   a position to start from on the first connection (one kept from an earlier visit, say): the hub
   *   replays every later event it still has. An app gives `{epoch, offset}`; a supervisor
   *   `{agent: {epoch, offset}, ...}` (what `positions` gives). Providers recover nothing.
   * @param {typeof WebSocket} [options.WebSocket] for tests
   * @param {() => number} [options.random] for tests: the backoff's random source
   */
  constructor(options) {
    super();
    if (!options || !options.url) throw new TypeError("BridgeClient needs a url");
    const hasToken = options.token !== undefined && options.token !== null && options.token !== "";
    const hasAgent = options.agent !== undefined && options.agent !== null && options.agent !== "";
    const supervisor = options.role === "supervisor";
    if (supervisor) {
      // A supervisor follows a scope, never one agent: its open-hub Hello names `agents`.
      const hasScope = Array.isArray(options.agents) && options.agents.length > 0;
      if (hasAgent || hasToken === hasScope) {
        throw new TypeError("a supervisor gives exactly one of token (secured hub) or agents (open hub)");
      }
      if (hasToken && options.control !== undefined) {
        throw new TypeError("with a token, the token says whether a supervisor has control");
      }
    } else if (hasToken === hasAgent) {
      throw new TypeError("give exactly one of token (secured hub) or agent (open hub)");
    }
    const start = BridgeClient._checkRecover(options.role || "app", options.recover);
    const source = options.source ?? "browser";
    if (source.length < 1 || source.length > 64) throw new TypeError("source must be 1 to 64 characters");
    this.url = options.url;
    this.role = options.role || "app";
    this.source = source;
    this.requestTimeout = options.requestTimeout ?? DEFAULTS.requestTimeout;
    this.connectTimeout = options.connectTimeout ?? DEFAULTS.connectTimeout;
    this.reconnect = options.reconnect ?? true;
    this.backoffInitial = options.backoffInitial ?? DEFAULTS.backoffInitial;
    this.backoffMax = options.backoffMax ?? DEFAULTS.backoffMax;
    this.stableAfter = options.stableAfter ?? DEFAULTS.stableAfter;
    this._token = hasToken ? options.token : null;
    this._agentName = hasAgent ? options.agent : null;
    this._agents = supervisor && !hasToken ? [...options.agents] : null;
    this._control = supervisor && !hasToken && options.control !== undefined ? Boolean(options.control) : null;
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    this._random = options.random || Math.random;

    this._state = ConnectionState.IDLE;
    this._socket = null;
    this._attempt = 0;
    this._openedAt = null;
    this._retryTimer = null;
    this._connectTimer = null;
    this._closedForGood = false;
    this._closeError = null;
    /** @type {Map<string, {resolve: Function, reject: Function, timer: any, kind: string}>} */
    this._pending = new Map();
    /** @type {Map<string, Set<Function>>} */
    this._handlers = new Map();
    /** @type {Set<Function>} */
    this._errorHandlers = new Set();
    /** @type {Set<Function>} */
    this._requestHandlers = new Set();
    /** @type {Set<Function>} */
    this._stateListeners = new Set();
    /** State changes not yet told to the listeners, and whether they are being told. */
    this._changes = [];
    this._notifying = false;
    /** @type {Set<(error: BridgeError) => void>} called once when the client closes for good */
    this._closeWaiters = new Set();
    /** @type {Map<string, object>} */
    this._last = new Map();
    this._welcome = null;
    this._providerConnected = null;
    this._connections = 0;
    this._refusal = null;
    this._replaced = false;
    /** When the current connection's token expires (ms since the epoch), when known. */
    this._tokenExpiresAt = null;
    this._refreshTimer = null;
    this._book = new PositionBook();
    /** An app's starting position until a Welcome answered it (a token's agent is unknown before). */
    this._start = null;
    if (start instanceof Map) for (const [agent, position] of start) this._book._set(agent, position);
    else this._start = start;
    /** What the Hello of the connection being made asked to recover: a Map, or null. */
    this._asked = null;
    this._recovered = null;
  }

  /** `options.recover`, checked: a position (app), a Map of them (supervisor), or null. */
  static _checkRecover(role, recover) {
    if (recover === undefined || recover === null) return null;
    if (role === "provider") throw new TypeError("a provider recovers nothing: recover is for apps and supervisors");
    if (role !== "supervisor") return checkedPosition(recover, "an app's recover");
    if (typeof recover !== "object" || "epoch" in recover) {
      throw new TypeError("a supervisor's recover maps agent names to {epoch, offset}");
    }
    const start = new Map();
    for (const [agent, position] of Object.entries(recover)) {
      start.set(agent, checkedPosition(position, `recover.${agent}`));
    }
    return start;
  }

  // -- state --------------------------------------------------------------

  /** The current connection state (see ConnectionState). */
  get state() {
    return this._state;
  }

  /** The last Welcome's message ({agent, role, connectionId, providerConnected}), or null. */
  get welcome() {
    return this._welcome;
  }

  /** The agent this client joined (from Welcome), or the one it asked for; null for a supervisor. */
  get agent() {
    return this._welcome ? (this._welcome.agent ?? null) : this._agentName;
  }

  /** A supervisor's scope: the agents granted (Welcome; ["*"] for all), or those asked for; else null. */
  get agents() {
    if (this._welcome && Array.isArray(this._welcome.agents)) return this._welcome.agents;
    return this._agents;
  }

  /** Whether a supervisor may send requests (Welcome), or what it asked for; null for other roles. */
  get control() {
    if (this._welcome && typeof this._welcome.control === "boolean") return this._welcome.control;
    return this._control;
  }

  /** The hub's id for the current (or last) connection, or null. */
  get connectionId() {
    return this._welcome ? this._welcome.connectionId : null;
  }

  /**
   * Whether the agent's provider is connected, from Welcome and ProviderStatus; null before,
   * and always null for a supervisor (each ProviderStatus it gets names its `agent`).
   */
  get providerConnected() {
    return this._providerConnected;
  }

  /** Why the client closed for good, when it was not close(); a BridgeError or null. */
  get closeError() {
    return this._closeError;
  }

  /** How many connections have been made (1 after the first, +1 per reconnect). */
  get connections() {
    return this._connections;
  }

  /**
   * Whether the current (or last) connection recovered the events missed: null when its
   * Hello asked for none (no position known yet); an app's a boolean; a supervisor's
   * `{agent: boolean}` for each agent it asked for.
   * @returns {boolean|Object<string, boolean>|null}
   */
  get recovered() {
    return this._recovered;
  }

  /**
   * The last position seen per agent, `{agent: {epoch, offset}}` (a frozen copy): what
   * the next reconnect asks to recover from. Keep it to start from there later
   * (`recover`: an app gives `positions[agent]`, a supervisor the whole object).
   * @returns {Readonly<Object<string, Readonly<{epoch: string, offset: number}>>>}
   */
  get positions() {
    return Object.freeze(Object.fromEntries(this._book.byAgent));
  }

  /** Events dropped because their position had been delivered already (a guard: the hub sends none). */
  get duplicatesDropped() {
    return this._book.duplicates;
  }

  /**
   * Call `listener(state, detail)` on every change of `state` (the "state"
   * event carries the same detail: {state, previous, code, reason, retryInMs,
   * welcome, error}).
   * @returns {() => void} removes the listener
   */
  addStateListener(listener) {
    this._stateListeners.add(listener);
    return () => this._stateListeners.delete(listener);
  }

  // -- lifecycle ----------------------------------------------------------

  /**
   * Open the connection; it comes back by itself after drops until close().
   * A client starts once. Returns this.
   */
  start() {
    if (this._state !== ConnectionState.IDLE) throw new Error("a BridgeClient starts once; make a new one");
    this._setState(ConnectionState.CONNECTING, { attempt: 0 });
    this._open();
    return this;
  }

  /**
   * Close for good: no more retries; requests in flight reject with CLIENT_CLOSED.
   * Safe to call twice.
   */
  close(reason = "closed by the page") {
    if (this._state === ConnectionState.CLOSED) return;
    this._closedForGood = true;
    clearTimeout(this._retryTimer);
    clearTimeout(this._connectTimer);
    clearTimeout(this._refreshTimer);
    const socket = this._socket;
    this._socket = null;
    if (socket && socket.readyState <= 1) socket.close(CloseCode.NORMAL, "bye");
    this._failPending(ClientErrorType.CLIENT_CLOSED, "the client was closed", "The connection was closed.");
    this._finish(reason);
  }

  /**
   * Resolves with the Welcome message once the connection is open (at once if
   * it already is); rejects with closeError (or CLIENT_CLOSED) if the client
   * closes for good first, and with CONNECT_FAILED after `timeout` ms.
   * @param {number} [timeout] ms; no limit when omitted
   */
  ready(timeout) {
    if (this._state === ConnectionState.OPEN) return Promise.resolve(this._welcome);
    return this._until((resolve) => {
      const off = this.addStateListener((state, detail) => {
        if (state === ConnectionState.OPEN) resolve(detail.welcome);
      });
      return off;
    }, timeout, () => localError(ClientErrorType.CONNECT_FAILED, `no Welcome within ${timeout} ms`,
      "Could not connect to the bridge."));
  }

  // -- apps: requests and events --------------------------------------------

  /**
   * Send a request and wait for its answer.
   * @param {string} kind e.g. "Amazon/Agent/SetNotReady"
   * @param {object} [data]
   * @param {{timeout?: number, id?: string, agent?: string}} [options] timeout in ms (default
   *   requestTimeout); `agent`: a supervisor's target agent, sent as the top-level `agent` key
   * @returns {Promise<object>} the answering event envelope (a supervisor's carries `agent`)
   * @throws {BridgeError} the error frame's, REQUEST_TIMEOUT (local), CONNECTION_LOST or CLIENT_CLOSED
   */
  request(kind, data, options = {}) {
    const name = parseKind(kind);
    if (this._state === ConnectionState.CLOSED) return Promise.reject(this._closeError || closedError());
    if (this._state !== ConnectionState.OPEN || !this._socket) {
      return Promise.reject(localError(ClientErrorType.CONNECTION_LOST,
        `cannot send ${kind}: the connection is ${this._state}`,
        "The connection to the bridge is down; retrying.", name));
    }
    const id = options.id || newId();
    const envelope = { ...name, source: this.source, id };
    if (options.agent !== undefined) envelope.agent = options.agent;
    if (data !== undefined && data !== null) envelope.data = data;
    const timeout = options.timeout ?? this.requestTimeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new BridgeError({ errorType: ErrorType.REQUEST_TIMEOUT,
          errorMessage: `no answer to ${kind} (${id}) within ${timeout} ms (client-side timeout)`,
          msg: HUMAN_MESSAGES.REQUEST_TIMEOUT, request: name }, null, { local: true }));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer, kind });
      this._send(envelope);
    });
  }

  /**
   * Call `handler(envelope)` for every event of `kind` ("channel/topic/subtopic"),
   * or of every kind with "*": the events `last` keeps (Bridge/Session/ProviderStatus
   * included, Welcome not: see `welcome` and the state listeners). Events a
   * reconnect recovered come first, in order, marked `recovered: true`.
   * @returns {() => void} removes the handler
   */
  on(kind, handler) {
    if (kind !== "*") parseKind(kind);
    if (!this._handlers.has(kind)) this._handlers.set(kind, new Set());
    this._handlers.get(kind).add(handler);
    return () => this._handlers.get(kind)?.delete(handler);
  }

  /**
   * Call `handler(error)` with a BridgeError for every error frame that answers
   * no pending request (for instance the hub refusing an event a provider sent).
   * @returns {() => void} removes the handler
   */
  onError(handler) {
    this._errorHandlers.add(handler);
    return () => this._errorHandlers.delete(handler);
  }

  /**
   * The latest event of `kind` received on the current connection (retained
   * replays included), or null. It is forgotten when a new connection opens:
   * the hub replays what it retains right after Welcome; except for an agent
   * whose missed events that connection recovered (`recovered`): nothing is
   * replayed for it, so what was seen stays current. A supervisor names
   * the agent: `last(kind, "agent7")` (without it, the latest of any agent).
   * @param {string} kind
   * @param {string} [agent] the frame's top-level `agent`
   */
  last(kind, agent) {
    return this._last.get(agent === undefined ? kind : `${kind}\n${agent}`) ?? null;
  }

  /**
   * The first event of `kind` for which `predicate` holds. With `current`
   * (the default) the latest one already received (see `last`) counts too.
   * Rejects with a TimeoutError after `timeout` ms, and with closeError (or
   * CLIENT_CLOSED) if the client closes first.
   * @param {string} kind
   * @param {(envelope: object) => boolean} [predicate]
   * @param {{timeout?: number, current?: boolean}} [options]
   */
  waitFor(kind, predicate = () => true, { timeout, current = true } = {}) {
    const seen = this.last(kind);
    if (current && seen !== null && predicate(seen)) return Promise.resolve(seen);
    return this._until((resolve) => this.on(kind, (envelope) => {
      if (predicate(envelope)) resolve(envelope);
    }), timeout, () => timeoutError(`no ${kind} within ${timeout} ms`));
  }

  // -- providers ------------------------------------------------------------

  /**
   * Call `handler(request)` for every request routed to this provider;
   * answer it with `publish(kind, message, {replyTo: request.id})` or `sendError`.
   * @returns {() => void} removes the handler
   */
  onRequest(handler) {
    if (this.role !== "provider") throw new TypeError("only a provider receives requests");
    this._requestHandlers.add(handler);
    return () => this._requestHandlers.delete(handler);
  }

  /**
   * Send an event (providers only: the hub refuses events from apps).
   * @param {string} kind
   * @param {object} message
   * @param {{replyTo?: string}} [options]
   * @returns {boolean} false when not connected (the event is dropped)
   */
  publish(kind, message, options = {}) {
    const envelope = { ...parseKind(kind), message };
    if (options.replyTo) envelope.replyTo = options.replyTo;
    return this.send(envelope);
  }

  /**
   * Answer the request envelope `to` with an error (providers). The error's
   * channel, `request` and `replyTo` come from `to`; `msg` defaults to the
   * protocol's sentence for `errorType`.
   * @param {object} to the request envelope being answered
   * @param {string} errorType an ErrorType from names.js
   * @param {string} errorMessage the technical cause
   * @param {{msg?: string}} [options] a sentence fit to show a person
   * @returns {boolean} false when not connected
   */
  sendError(to, errorType, errorMessage, { msg } = {}) {
    const failed = kindOf(to);
    const data = { errorType, errorMessage, msg: msg ?? HUMAN_MESSAGES[errorType] ?? "The request failed." };
    if (failed !== null) data.request = parseKind(failed);
    const envelope = {
      channel: failed !== null ? to.channel : "Bridge", topic: "Error", subtopic: "ApiError", data,
    };
    if (typeof to.id === "string") envelope.replyTo = to.id;
    return this.send(envelope);
  }

  /**
   * Send one envelope as it is.
   * @returns {boolean} false when not connected (the envelope is dropped)
   */
  send(envelope) {
    if (this._state !== ConnectionState.OPEN || !this._socket) return false;
    this._send(envelope);
    return true;
  }

  // -- internals: connecting --------------------------------------------------

  _setState(state, extra = {}) {
    const previous = this._state;
    if (state === previous) return;
    this._state = state;
    this._changes.push({ state, previous, ...extra });
    // A listener may change the state again (close() on a Welcome it refuses): every
    // listener hears of each change in order, the nested one after the current one.
    if (this._notifying) return;
    this._notifying = true;
    try {
      while (this._changes.length > 0) {
        const detail = this._changes.shift();
        for (const listener of [...this._stateListeners]) {
          try {
            listener(detail.state, detail);
          } catch (err) {
            console.error("connect-bridge: a state listener failed", err);
          }
        }
        this.dispatchEvent(new CustomEvent("state", { detail }));
      }
    } finally {
      this._notifying = false;
    }
  }

  /** Run until `watch(resolve)` resolves, the client closes, or `timeout` ms pass. */
  _until(watch, timeout, onTimeout) {
    if (this._state === ConnectionState.CLOSED) return Promise.reject(this._closeError || closedError());
    return new Promise((resolve, reject) => {
      let timer = null;
      let stop = null;
      const done = (settle, value) => {
        clearTimeout(timer);
        stop?.();
        this._closeWaiters.delete(onClose);
        settle(value);
      };
      const onClose = (error) => done(reject, error);
      this._closeWaiters.add(onClose);
      if (timeout !== undefined) timer = setTimeout(() => done(reject, onTimeout()), timeout);
      stop = watch((value) => done(resolve, value));
    });
  }

  async _open() {
    this._refusal = null;
    this._replaced = false;
    this._openedAt = null;
    let token = null;
    if (this._token !== null) {
      try {
        token = typeof this._token === "function" ? await this._token() : this._token;
      } catch (err) {
        // The page could not get a token now (its backend is down?): try again later.
        if (!this._closedForGood) this._afterClose(null, `no token: ${err && err.message ? err.message : err}`);
        return;
      }
      if (this._closedForGood) return; // close() while the token was being fetched
      this._tokenExpiresAt = tokenExpiry(token);
    }
    let socket;
    try {
      socket = new this._WebSocket(this.url);
    } catch (err) {
      // A malformed URL: retrying cannot help.
      this._closeError = localError(ClientErrorType.CONNECT_FAILED,
        `cannot connect to ${this.url}: ${err && err.message ? err.message : err}`,
        "The bridge cannot be reached.");
      this._finish("bad url");
      return;
    }
    this._socket = socket;
    this._connectTimer = setTimeout(() => {
      if (socket !== this._socket) return;
      socket.close(CloseCode.NORMAL, "no Welcome");
      this._lost(socket, null, `no Welcome within ${this.connectTimeout} ms`);
    }, this.connectTimeout);
    socket.addEventListener("open", () => {
      if (socket !== this._socket) return;
      const data = token !== null ? { role: this.role, token } : this._openHello();
      this._asked = this._toRecover();
      if (this._asked !== null) {
        data.recover = this.role === "supervisor"
          ? Object.fromEntries(this._asked) : this._asked.values().next().value;
      }
      this._send({ ...parseKind(HELLO), source: this.source, id: newId(), data });
    });
    socket.addEventListener("message", (event) => {
      if (socket === this._socket) this._receive(event.data);
    });
    socket.addEventListener("close", (event) => this._lost(socket, event.code, event.reason));
    // An "error" event is always followed by "close"; what to do is decided there.
  }

  /**
   * What this Hello asks to recover from: a Map agent -> position, or null. An app asks
   * from its agent's last position (its key is "" while a token's agent is not known yet).
   */
  _toRecover() {
    if (this.role === "provider") return null;
    if (this.role === "supervisor") {
      const asked = this._book._supervisorRecover(this.agents);
      return asked.size > 0 ? asked : null;
    }
    const agent = this.agent;
    const position = (agent !== null ? this._book.byAgent.get(agent) : undefined) ?? this._start;
    return position ? new Map([[agent ?? "", position]]) : null;
  }

  /**
   * Read Welcome's `recovered` for what this connection asked; returns the agents recovered
   * (an app's: [""] when it was), whose positions and last events stay.
   */
  _recoveryAnswered(message) {
    const asked = this._asked;
    this._asked = null;
    this._start = null;
    const answer = message.recovered;
    if (asked === null) {
      this._recovered = null;
      this._book._keepOnly(new Map());
      return new Set();
    }
    if (this.role === "supervisor") {
      const answers = answer && typeof answer === "object" ? answer : {};
      const recovered = {};
      const kept = new Map();
      for (const [agent, position] of asked) {
        recovered[agent] = answers[agent] === true;
        if (recovered[agent]) kept.set(agent, position);
      }
      this._recovered = recovered;
      this._book._keepOnly(kept);
      return new Set(kept.keys());
    }
    this._recovered = answer === true;
    const position = asked.values().next().value;
    this._book._keepOnly(this._recovered ? new Map([[message.agent ?? this.agent ?? "", position]]) : new Map());
    return new Set(this._recovered ? [""] : []);
  }

  /** Hello's data on an open hub: the agent joined, or a supervisor's scope. */
  _openHello() {
    if (this.role !== "supervisor") return { role: this.role, agent: this._agentName };
    const data = { role: this.role, agents: this._agents };
    if (this._control !== null) data.control = this._control;
    return data;
  }

  /** `socket` is gone (closed, or given up on): fail what was in flight and decide what next. */
  _lost(socket, code, reason) {
    if (socket !== this._socket) return;
    this._socket = null;
    clearTimeout(this._connectTimer);
    clearTimeout(this._refreshTimer);
    this._failPending(ClientErrorType.CONNECTION_LOST,
      `connection to ${this.url} closed (code ${code}${reason ? `: ${reason}` : ""}) with the request in flight`,
      "The connection to the bridge was lost; the request may not have been carried out.");
    this._afterClose(code, reason);
  }

  _afterClose(code, reason) {
    if (this._closedForGood) return;
    if (this._replaced || code === CloseCode.REPLACED) {
      // A newer provider took over; coming back would start a tug of war between two tabs.
      this._closeError = localError(ClientErrorType.REPLACED,
        `replaced by a newer provider for ${this.agent} (close ${CloseCode.REPLACED})`,
        "Another softphone page took over for this agent.");
      this._finish("replaced by a newer provider", code);
      return;
    }
    if (this._refusal && this._refusal.errorType === ErrorType.NOT_AUTHENTICATED
      && typeof this._token !== "function") {
      // A refused token stays refused unless the page can make a fresh one.
      this._closeError = this._refusal;
      this._finish(reason || "refused", code);
      return;
    }
    if (!this.reconnect) {
      this._closeError = this._refusal || (this._connections === 0
        ? localError(ClientErrorType.CONNECT_FAILED, `cannot connect to ${this.url} (code ${code})`,
          "The bridge cannot be reached.")
        : localError(ClientErrorType.CONNECTION_LOST, `connection to ${this.url} closed (code ${code})`,
          "The connection to the bridge was lost."));
      this._finish(reason || "connection closed", code);
      return;
    }
    if (this._openedAt !== null && Date.now() - this._openedAt >= this.stableAfter) this._attempt = 0;
    const retryInMs = backoffDelay(this._attempt, this.backoffInitial, this.backoffMax, this._random);
    const attempt = this._attempt;
    this._attempt += 1;
    const detail = { attempt, retryInMs, code, reason, error: this._refusal };
    this._setState(this._connections > 0 ? ConnectionState.RECONNECTING : ConnectionState.CONNECTING, detail);
    this.dispatchEvent(new CustomEvent("retry", { detail }));
    this._retryTimer = setTimeout(() => this._open(), retryInMs);
  }

  /** Closed for good: settle every waiter and say so. */
  _finish(reason, code = null) {
    this._closedForGood = true;
    const error = this._closeError;
    for (const waiter of [...this._closeWaiters]) waiter(error || closedError());
    this._closeWaiters.clear();
    this._setState(ConnectionState.CLOSED, { code, reason, error });
  }

  // -- internals: frames --------------------------------------------------------

  _receive(text) {
    let envelope;
    try {
      envelope = JSON.parse(text);
    } catch {
      console.warn("connect-bridge: ignoring a frame that is not JSON");
      return;
    }
    const kind = kindOf(envelope);
    if (kind === null) {
      console.warn("connect-bridge: ignoring a frame that is not an envelope");
      return;
    }
    const pending = typeof envelope.replyTo === "string" ? this._pending.get(envelope.replyTo) : undefined;

    if (isError(envelope)) {
      const failure = new BridgeError(envelope.data || {}, envelope);
      if (pending) {
        if (!failure.request) failure.request = parseKind(pending.kind);
        this._settle(envelope.replyTo, pending, pending.reject, failure);
      } else if (this._state !== ConnectionState.OPEN) {
        // An error before Welcome is the hub refusing this Hello (NOT_AUTHENTICATED).
        this._refusal = failure;
      } else {
        console.warn("connect-bridge: error from the hub", failure.message);
        this._call(this._errorHandlers, failure, "an error handler");
      }
      return;
    }
    if (!("message" in envelope)) {
      if (this.role === "provider") this._call(this._requestHandlers, envelope, "a request handler");
      else console.warn(`connect-bridge: ignoring request ${kind} sent to an app`);
      return;
    }
    if (kind === WELCOME) {
      this._welcomed(envelope.message || {});
      return;
    }
    if (kind === REFRESHED) { // session control, not an event of the agent
      if (pending) this._settle(envelope.replyTo, pending, pending.resolve, envelope);
      return;
    }
    const agent = typeof envelope.agent === "string" ? envelope.agent : null;
    if ("offset" in envelope && this.role !== "provider"
      && !this._book._admit(agent ?? this.agent ?? "", envelope)) return; // delivered already
    if (kind === PROVIDER_STATUS && envelope.message && agent === null) {
      this._providerConnected = Boolean(envelope.message.connected);
    }
    if (kind === REPLACED) this._replaced = true;
    this._last.set(kind, envelope);
    if (agent !== null) this._last.set(`${kind}\n${agent}`, envelope);
    if (pending) this._settle(envelope.replyTo, pending, pending.resolve, envelope);
    const handlers = [...(this._handlers.get(kind) || []), ...(this._handlers.get("*") || [])];
    this._call(handlers, envelope, `a handler for ${kind}`);
  }

  _welcomed(message) {
    clearTimeout(this._connectTimer);
    this._welcome = message;
    this._providerConnected = message.role === "supervisor" ? null : Boolean(message.providerConnected);
    this._connections += 1;
    this._openedAt = Date.now();
    const kept = this._recoveryAnswered(message);
    if (kept.size === 0) {
      this._last.clear(); // `last` is per connection: the retained replays follow at once
    } else if (this.role === "supervisor") {
      // Recovered agents get what they missed and no replay: what was seen of them stays current.
      for (const [key, envelope] of [...this._last]) {
        if (!kept.has(envelope.agent)) this._last.delete(key);
      }
    }
    if (typeof this._token === "function") this._scheduleRefresh(this._socket, 0);
    this._setState(ConnectionState.OPEN, { welcome: message });
  }

  /**
   * With a token function, present a fresh token on the open connection
   * (Bridge/Session/Refresh) before the current one expires, so that the hub
   * does not close it (4003). `retryInMs` > 0: a failed attempt, tried again.
   */
  _scheduleRefresh(socket, retryInMs) {
    clearTimeout(this._refreshTimer);
    const expiresAt = this._tokenExpiresAt;
    if (expiresAt === null) return;
    const left = expiresAt - Date.now();
    if (retryInMs > 0 && left <= 0) return; // the hub closes it; the reconnect gets a fresh token
    const delay = retryInMs > 0 ? Math.min(retryInMs, left / 2) : left * REFRESH_AT;
    this._refreshTimer = setTimeout(() => this._refreshToken(socket, expiresAt), Math.max(0, delay));
  }

  async _refreshToken(socket, expiresAt) {
    if (socket !== this._socket) return;
    try {
      const token = await this._token();
      const fresh = tokenExpiry(token);
      if (fresh === null || fresh <= expiresAt) throw new Error("the token function gave no later expiry");
      await this.request(REFRESH, { token });
      if (socket !== this._socket) return;
      this._tokenExpiresAt = fresh;
      this._scheduleRefresh(socket, 0);
    } catch (err) {
      if (socket !== this._socket) return;
      console.warn("connect-bridge: refreshing the token failed; retrying", err && err.message ? err.message : err);
      this._scheduleRefresh(socket, REFRESH_RETRY_MS);
    }
  }

  _settle(id, pending, settle, value) {
    this._pending.delete(id);
    clearTimeout(pending.timer);
    settle(value);
  }

  _call(handlers, value, what) {
    for (const handler of [...handlers]) {
      try {
        handler(value);
      } catch (err) {
        console.error(`connect-bridge: ${what} failed`, err);
      }
    }
  }

  _send(envelope) {
    this._socket.send(JSON.stringify(envelope));
  }

  _failPending(errorType, errorMessage, msg) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(localError(errorType, `${errorMessage}; ${entry.kind} was in flight`, msg,
        parseKind(entry.kind)));
    }
  }
}
