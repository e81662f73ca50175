/**
 * Browser client for the connect-bridge hub (wire protocol v1).
 *
 * It does for a page what the Python client does for a service: says Hello,
 * matches answers to requests by `replyTo`, hands frames to handlers by kind,
 * remembers the last frame of each kind, and comes back after a drop with
 * exponential backoff and jitter. Both roles use it: widgets as `app`, the
 * Streams page as `provider`.
 *
 * @example
 *   const client = new BridgeClient({ url: "ws://127.0.0.1:8765/ws", agent: "agent1" });
 *   client.addEventListener("state", (e) => console.log(e.detail.state));
 *   client.on("Amazon/Agent/SetAgentState", (env) => render(env.message));
 *   client.start();
 *   await client.ready();
 *   await client.request("Amazon/Agent/SetNotReady", { ReasonCodeId: "Lunch" });
 * @module bridge-client
 */

import { CloseCode, HELLO, REPLACED, WELCOME, isError, kindOf, parseKind } from "./kinds.js";

/**
 * An error a request ended with: one the hub or provider sent (its `data`
 * copied onto the error), or one the client raised itself, with the same
 * codes as the Python client: `REQUEST_TIMEOUT` with `local` true (no answer
 * in time), `CONNECTION_LOST` (no connection, or it dropped with the request
 * in flight: it may or may not have been carried out), `CLIENT_CLOSED`
 * (stop() was called), `REPLACED`. `msg` is always fit to show a person.
 */
export class BridgeError extends Error {
  /**
   * @param {{errorType: string, errorMessage?: string, msg?: string, request?: object}} data
   * @param {object|null} [envelope] the error frame, when there was one
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
  }
}

/** Connection states; the same names as the Python client's, plus idle. */
export const ConnectionState = Object.freeze({
  IDLE: "idle", // start() not called yet
  CONNECTING: "connecting", // the first connection is being made (no Welcome yet)
  OPEN: "open", // Welcome received: requests may be sent
  RECONNECTING: "reconnecting", // dropped; waiting detail.retryInMs, then trying again
  CLOSED: "closed", // for good: stop() was called, replaced by a newer provider, or refused
});

/**
 * A unique request id. `crypto.randomUUID` exists only in secure contexts
 * (HTTPS or loopback), so plain-HTTP LAN demos fall back to random bytes.
 */
export function newId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") {
    return globalThis.crypto.randomUUID();
  }
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Backoff before retry number `attempt` (0-based): doubles from `min` up to
 * `max`, then keeps a random half of it so that many widgets dropped by one
 * hub restart do not all come back in the same millisecond.
 */
export function backoffDelay(attempt, min, max, random = Math.random) {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export class BridgeClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url            the hub's WebSocket URL, e.g. ws://host:port/ws
   * @param {"app"|"provider"} [options.role="app"]
   * @param {string|(() => string|Promise<string>)} [options.token] signed token (secured hub), or a
   *   function that returns a fresh one, called before every connection (short-lived tokens)
   * @param {string} [options.agent]        agent name (open-mode hub only; ignored with a token)
   * @param {string} [options.source="browser"] this app's name in `source` (1-64 characters)
   * @param {number} [options.requestTimeout=15000] ms before a request gives up (REQUEST_TIMEOUT,
   *   local); longer than the hub's own 10 s so the hub's error, which names the cause, comes first
   * @param {number} [options.helloTimeout=10000] ms to wait for Welcome before trying again
   * @param {boolean} [options.reconnect=true]
   * @param {number} [options.minDelay=250]  first retry delay, ms
   * @param {number} [options.maxDelay=15000] largest retry delay, ms
   * @param {(detail: object) => void} [options.onState] called on every state change
   * @param {typeof WebSocket} [options.WebSocket] for tests
   */
  constructor(options) {
    super();
    if (!options || !options.url) throw new TypeError("BridgeClient needs a url");
    if (!options.token && !options.agent) {
      throw new TypeError("BridgeClient needs a token, or an agent for an open-mode hub");
    }
    this.url = options.url;
    this.role = options.role || "app";
    /** @type {string|Function|null} */
    this.token = options.token || null;
    this.agent = options.agent || null;
    this.source = options.source || "browser";
    this.requestTimeout = options.requestTimeout ?? 15000;
    this.helloTimeout = options.helloTimeout ?? 10000;
    this.reconnect = options.reconnect ?? true;
    this.minDelay = options.minDelay ?? 250;
    this.maxDelay = options.maxDelay ?? 15000;
    this.onState = options.onState || null;
    this._WebSocket = options.WebSocket || globalThis.WebSocket;

    this._state = ConnectionState.IDLE;
    this._socket = null;
    this._attempt = 0;
    this._everOpen = false;
    this._retryTimer = null;
    this._helloTimer = null;
    this._closedForGood = false;
    /** @type {Map<string, {resolve: Function, reject: Function, timer: any, kind: string}>} */
    this._pending = new Map();
    /** @type {Map<string, Set<Function>>} */
    this._handlers = new Map();
    /** @type {Map<string, object>} */
    this._last = new Map();
    this._welcome = null;
    this._refusal = null;
    this._replaced = false;
    this._readyWaiters = [];
  }

  /** The current connection state (see ConnectionState). */
  get state() {
    return this._state;
  }

  /** The last Welcome's message ({agent, role, connectionId, providerConnected}), or null. */
  get welcome() {
    return this._welcome;
  }

  /** Open the connection; it comes back by itself after drops until stop(). Returns this. */
  start() {
    if (this._state === ConnectionState.IDLE || this._state === ConnectionState.CLOSED) {
      this._closedForGood = false;
      this._attempt = 0;
      this._everOpen = false;
      this._open();
    }
    return this;
  }

  /** Close for good: no more retries; requests in flight reject with CLIENT_CLOSED. */
  stop(reason = "closed by the page") {
    this._closedForGood = true;
    clearTimeout(this._retryTimer);
    clearTimeout(this._helloTimer);
    const socket = this._socket;
    this._socket = null;
    if (socket && socket.readyState <= 1) socket.close(CloseCode.NORMAL, "bye");
    this._failPending("CLIENT_CLOSED", reason, "The connection to the bridge was closed.");
    this._rejectReadyWaiters("CLIENT_CLOSED", reason);
    this._setState(ConnectionState.CLOSED, { reason });
  }

  /**
   * Resolves with the Welcome message once the connection is open (at once if
   * it already is); rejects if the client closes for good first.
   * @param {number} [timeout] ms; no limit when omitted
   */
  ready(timeout) {
    if (this._state === ConnectionState.OPEN) return Promise.resolve(this._welcome);
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, timer: null };
      if (timeout !== undefined) {
        waiter.timer = setTimeout(() => {
          this._readyWaiters = this._readyWaiters.filter((w) => w !== waiter);
          reject(new BridgeError({ errorType: "CONNECT_FAILED",
            errorMessage: `no Welcome within ${timeout} ms`,
            msg: "Could not connect to the bridge." }, null, { local: true }));
        }, timeout);
      }
      this._readyWaiters.push(waiter);
    });
  }

  /**
   * Call `handler(envelope)` for every frame of `kind` ("channel/topic/subtopic"),
   * or of every kind with "*". Errors come under "<channel>/Error/ApiError".
   * @returns {() => void} removes the handler
   */
  on(kind, handler) {
    if (!this._handlers.has(kind)) this._handlers.set(kind, new Set());
    this._handlers.get(kind).add(handler);
    return () => this._handlers.get(kind)?.delete(handler);
  }

  /** The last frame received of `kind` (retained replays included), or undefined. */
  last(kind) {
    return this._last.get(kind);
  }

  /**
   * Send a request and wait for its answer.
   * @param {string} kind e.g. "Amazon/Agent/SetNotReady"
   * @param {object} [data]
   * @param {{timeout?: number, id?: string}} [options]
   * @returns {Promise<object>} the answering event envelope
   * @throws {BridgeError} the error frame's, or REQUEST_TIMEOUT (local) / CONNECTION_LOST
   */
  request(kind, data, options = {}) {
    const name = parseKind(kind);
    if (this._state !== ConnectionState.OPEN) {
      return Promise.reject(new BridgeError({ errorType: "CONNECTION_LOST",
        errorMessage: `cannot send ${kind}: the connection is ${this._state}`,
        msg: "Not connected to the bridge.", request: name }, null, { local: true }));
    }
    const id = options.id || newId();
    const envelope = { ...name, source: this.source, id };
    if (data !== undefined && data !== null) envelope.data = data;
    const timeout = options.timeout ?? this.requestTimeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new BridgeError({ errorType: "REQUEST_TIMEOUT",
          errorMessage: `no answer to ${kind} (${id}) within ${timeout} ms (client-side timeout)`,
          msg: "The agent's softphone did not answer in time.", request: name }, null, { local: true }));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer, kind });
      this._send(envelope);
    });
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
    return this._sendIfOpen(envelope);
  }

  /**
   * Answer a request with an error (providers only).
   * @param {object} request the request envelope being answered
   * @param {string} errorType stable UPPER_SNAKE code
   * @param {string} errorMessage the technical cause
   * @param {string} msg a sentence fit to show a person
   * @returns {boolean} false when not connected
   */
  replyError(request, errorType, errorMessage, msg) {
    const envelope = {
      channel: request.channel,
      topic: "Error",
      subtopic: "ApiError",
      data: {
        errorType,
        errorMessage,
        msg,
        request: { channel: request.channel, topic: request.topic, subtopic: request.subtopic },
      },
    };
    if (request.id) envelope.replyTo = request.id;
    return this._sendIfOpen(envelope);
  }

  // -- internals ---------------------------------------------------------

  _setState(state, extra = {}) {
    const previous = this._state;
    this._state = state;
    const detail = { state, previous, ...extra };
    if (this.onState) {
      try {
        this.onState(detail);
      } catch (err) {
        console.error("connect-bridge: onState handler failed", err);
      }
    }
    this.dispatchEvent(new CustomEvent("state", { detail }));
  }

  async _open() {
    clearTimeout(this._retryTimer);
    this._refusal = null;
    this._replaced = false;
    this._setState(this._everOpen ? ConnectionState.RECONNECTING : ConnectionState.CONNECTING,
      { attempt: this._attempt });
    let token = null;
    if (this.token) {
      try {
        token = typeof this.token === "function" ? await this.token() : this.token;
      } catch (err) {
        // The page could not get a token now (its backend is down?): try again later.
        this._afterClose(0, `no token: ${err && err.message ? err.message : err}`);
        return;
      }
      if (this._closedForGood) return; // stop() while the token was being fetched
    }
    let socket;
    try {
      socket = new this._WebSocket(this.url);
    } catch (err) {
      // A malformed URL: retrying cannot help.
      this._closeForGood(0, String(err && err.message ? err.message : err));
      return;
    }
    this._socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this._socket) return;
      const data = token ? { role: this.role, token } : { role: this.role, agent: this.agent };
      this._send({ ...parseKind(HELLO), source: this.source, data });
      this._helloTimer = setTimeout(() => {
        if (socket === this._socket) socket.close(CloseCode.NORMAL, "no Welcome");
      }, this.helloTimeout);
    });
    socket.addEventListener("message", (event) => {
      if (socket === this._socket) this._receive(event.data);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this._socket) return;
      this._socket = null;
      clearTimeout(this._helloTimer);
      this._failPending("CONNECTION_LOST", `connection closed (${event.code}) with the request in flight`,
        "The connection to the bridge was lost; the request may not have been carried out.");
      this._afterClose(event.code, event.reason);
    });
    // An "error" event is always followed by "close"; what to do is decided there.
  }

  _afterClose(code, reason) {
    if (this._closedForGood) return;
    if (this._replaced || code === CloseCode.REPLACED) {
      // A newer provider took over; coming back would start a tug of war between two tabs.
      this._closeForGood(code, "replaced by a newer provider", {
        errorType: "REPLACED", errorMessage: "a newer provider for this agent connected (4001)",
        msg: "Another softphone page took over for this agent.",
      });
      return;
    }
    if (this._refusal) {
      // A refused token or role is refused again on every retry.
      this._closeForGood(code, reason || "refused", this._refusal);
      return;
    }
    if (!this.reconnect) {
      this._closeForGood(code, reason || "connection closed");
      return;
    }
    const retryInMs = backoffDelay(this._attempt, this.minDelay, this.maxDelay);
    this._attempt += 1;
    this._setState(ConnectionState.RECONNECTING, { code, reason, retryInMs });
    this._retryTimer = setTimeout(() => this._open(), retryInMs);
  }

  _closeForGood(code, reason, error = null) {
    this._closedForGood = true;
    this._rejectReadyWaiters(error ? error.errorType : "CONNECTION_LOST", reason);
    this._setState(ConnectionState.CLOSED, { code, reason, error });
  }

  _receive(text) {
    let envelope;
    try {
      envelope = JSON.parse(text);
    } catch {
      console.warn("connect-bridge: ignoring a frame that is not JSON");
      return;
    }
    const kind = kindOf(envelope);
    if (kind === null) return;
    this._last.set(kind, envelope);

    if (kind === WELCOME) {
      clearTimeout(this._helloTimer);
      this._attempt = 0;
      this._everOpen = true;
      this._welcome = envelope.message;
      this._setState(ConnectionState.OPEN, { welcome: envelope.message });
      const waiters = this._readyWaiters;
      this._readyWaiters = [];
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.resolve(envelope.message);
      }
    } else if (kind === REPLACED) {
      this._replaced = true;
    } else if (isError(envelope) && this._state !== ConnectionState.OPEN) {
      // An error before Welcome is the hub refusing this Hello (NOT_AUTHENTICATED).
      this._refusal = envelope.data || { errorType: "NOT_AUTHENTICATED", msg: "Not signed in." };
    }

    const pending = envelope.replyTo ? this._pending.get(envelope.replyTo) : undefined;
    if (pending) {
      this._pending.delete(envelope.replyTo);
      clearTimeout(pending.timer);
      if (isError(envelope)) pending.reject(new BridgeError(envelope.data || {}, envelope));
      else pending.resolve(envelope);
    }
    this._dispatch(kind, envelope);
  }

  _dispatch(kind, envelope) {
    const handlers = [...(this._handlers.get(kind) || []), ...(this._handlers.get("*") || [])];
    for (const handler of handlers) {
      try {
        handler(envelope);
      } catch (err) {
        console.error(`connect-bridge: a handler for ${kind} failed`, err);
      }
    }
  }

  _send(envelope) {
    this._socket.send(JSON.stringify(envelope));
  }

  _sendIfOpen(envelope) {
    if (this._state !== ConnectionState.OPEN || !this._socket) return false;
    this._send(envelope);
    return true;
  }

  _failPending(errorType, errorMessage, msg) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(new BridgeError({ errorType, errorMessage, msg, request: parseKind(entry.kind) },
        null, { local: true }));
    }
  }

  _rejectReadyWaiters(errorType, reason) {
    const waiters = this._readyWaiters;
    this._readyWaiters = [];
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new BridgeError({ errorType, errorMessage: reason,
        msg: "The connection to the bridge was closed." }, null, { local: true }));
    }
  }
}
