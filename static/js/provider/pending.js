/**
 * Requests waiting for Amazon Connect: the one rule every Streams call of the
 * provider follows (shared/protocol/streams-notes.md).
 *
 * - `success` only means Connect accepted the call: the answer waits for the
 *   snapshot that shows the effect (`reached()`), checked on every snapshot;
 * - `failure` usually gets a JSON string, parsed into Connect's own text;
 * - a callback may never come (401/403, a lost conduit message), so every
 *   request has the provider's own timeout and then gets its kind's error.
 *
 * Agent-state requests (SetNotReady, Mute...) and call requests (Answer,
 * Hold...) both go through one `PendingRequests`.
 * @module provider/pending
 */

/**
 * The readable cause of a Streams `failure` callback.
 * Streams usually passes a JSON string, sometimes an object, an Error, or a
 * bare word (`contact.accept` passes `"error"`).
 * @param {unknown} err
 * @returns {{type: string, message: string}}
 */
export function parseStreamsFailure(err) {
  let value = err;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return { type: "", message: value };
    }
  }
  if (value && typeof value === "object") {
    const type = typeof value.type === "string" ? value.type : (value.name || "");
    const message = typeof value.message === "string" ? value.message : JSON.stringify(value);
    return { type: String(type), message };
  }
  return { type: "", message: String(value) };
}

/** `"Type: message"`, or the message alone when Connect gave no type. */
export function describeFailure(failure) {
  return failure.type ? `${failure.type}: ${failure.message}` : failure.message;
}

/**
 * @typedef {object} Pending
 * @property {object} request     the request envelope being carried out
 * @property {string} errorType   the error on failure or timeout
 * @property {string} action      names the Streams call in error texts, e.g. "holdConnection"
 * @property {() => boolean} reached   whether the current snapshot shows the effect
 * @property {() => void} answer  publishes the answer (replyTo = request.id)
 * @property {(failure: {type: string, message: string}) => string} failureMsg the `msg` for a refusal
 * @property {string} timeoutMsg  the `msg` when Connect never answers
 * @property {boolean} accepted   Connect said success (reached() is only asked then)
 */

export class PendingRequests {
  /**
   * @param {object} options
   * @param {number} options.timeoutMs how long one request may wait for Connect
   * @param {(request: object, errorType: string, errorMessage: string, msg: string) => void} options.sendError
   */
  constructor({ timeoutMs, sendError }) {
    this.timeoutMs = timeoutMs;
    this._sendError = sendError;
    /** @type {Set<Pending>} */
    this._pending = new Set();
  }

  /** How many requests are waiting. */
  get size() {
    return this._pending.size;
  }

  /**
   * Start waiting for `spec` and return it with Streams callbacks to hand to
   * the Streams call: `callbacks.success` marks it accepted and answers it at
   * once if the snapshot already shows the effect; `callbacks.failure` ends it
   * with the kind's error and Connect's text.
   * @param {Omit<Pending, "accepted"> & {accepted?: boolean}} spec
   * @returns {{pending: Pending, callbacks: {success: Function, failure: Function}}}
   */
  wait(spec) {
    const pending = { accepted: false, ...spec, timer: null };
    pending.timer = setTimeout(() => {
      const stage = pending.accepted ? "accepted the request but no snapshot showed its effect"
        : `did not answer ${pending.action}`;
      this.finish(pending, pending.errorType, `Amazon Connect ${stage} within ${this.timeoutMs} ms`,
        pending.timeoutMsg);
    }, this.timeoutMs);
    this._pending.add(pending);
    return { pending, callbacks: this.callbacks(pending) };
  }

  /**
   * Streams callbacks for one step of `pending` (a request may need several
   * Streams calls in turn, as Transfer does).
   */
  callbacks(pending) {
    return {
      success: () => {
        if (!this._pending.has(pending)) return; // timed out already
        pending.accepted = true;
        this._check(pending);
      },
      failure: (err) => {
        const failure = parseStreamsFailure(err);
        this.finish(pending, pending.errorType, `${pending.action} failed: ${describeFailure(failure)}`,
          pending.failureMsg(failure));
      },
    };
  }

  /** Answer every accepted request whose effect the current snapshot shows. Returns how many. */
  check() {
    let answered = 0;
    for (const pending of [...this._pending]) {
      if (this._check(pending)) answered += 1;
    }
    return answered;
  }

  _check(pending) {
    if (!pending.accepted || !this._pending.has(pending) || !pending.reached()) return false;
    this._pending.delete(pending);
    clearTimeout(pending.timer);
    pending.answer();
    return true;
  }

  /** End `pending` with an error, unless it was answered already. */
  finish(pending, errorType, errorMessage, msg) {
    if (!this._pending.delete(pending)) return;
    clearTimeout(pending.timer);
    this._sendError(pending.request, errorType, errorMessage, msg);
  }

  /** Forget every waiting request (their timers too), without answering. */
  clear() {
    for (const pending of this._pending) clearTimeout(pending.timer);
    this._pending.clear();
  }
}
