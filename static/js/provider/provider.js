/**
 * The provider: carries out the apps' requests on the Streams agent API and
 * publishes the agent's state to the hub.
 *
 * It runs in the agent's Streams page (ccp.html) beside the CCP, or beside the
 * emulated CCP backend; the code is the same, since both expose the real
 * `connect.agent` API. What it must respect (shared/protocol/streams-notes.md):
 * - `setState` takes a state object from `getAgentStates()`, and is called with
 *   `{enqueueNextState: true}` so a change asked for during a call is queued
 *   instead of refused;
 * - `success` only means Connect accepted the call; the change shows up with a
 *   later snapshot, so the answer to a request is sent when the snapshot shows
 *   the new state (or shows it queued as the next state);
 * - `failure` usually gets a JSON string;
 * - a callback may never come (401/403), so every call has its own timeout;
 * - there is no mute getter: `muted` is tracked from `onMuteToggle`.
 *
 * It needs no page: give it a `connect.Agent` (real, or a fake in tests) and
 * a BridgeClient with role "provider".
 * @module provider/provider
 */

import { kindOf } from "../lib/kind.js";
import {
  ErrorType, GET_STATES, HUMAN_MESSAGES, LOGOUT, MUTE, SET_AGENT_STATE, SET_NOT_READY, SET_READY,
  STATE_SYNC, UNMUTE,
} from "../lib/names.js";
import { onSoftphoneCall, setAgentStateMessage, stateOptions, stateSyncMessage } from "./agent-state.js";

const FAILED = ErrorType.UPDATE_AGENT_STATE_FAILED;
const NOT_FOUND = ErrorType.AGENT_STATE_NOT_FOUND;
const MUTE_FAILED = ErrorType.MUTE_FAILED;

/**
 * The readable cause of a Streams `failure` callback: `"Type: message"`.
 * Streams usually passes a JSON string, sometimes an object or an Error.
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

function describe(failure) {
  return failure.type ? `${failure.type}: ${failure.message}` : failure.message;
}

/**
 * Find the state an app asked for by name (what ReasonCodeId carries) or by
 * ARN (what GetStates gives as `code`), among the agent's states of `type`.
 */
function findState(states, type, wanted) {
  const ofType = states.filter((s) => s.type === type);
  if (wanted === undefined) return { state: ofType[0] || null, names: ofType.map((s) => s.name) };
  const state = ofType.find((s) => s.name === wanted || (s.agentStateARN && s.agentStateARN === wanted));
  return { state: state || null, names: ofType.map((s) => s.name) };
}

export class Provider extends EventTarget {
  /**
   * @param {object} options
   * @param {object} options.agent   the connect.Agent from `connect.agent(cb)`
   * @param {import("../lib/client.js").BridgeClient} options.client a client with role "provider"
   * @param {number} [options.callTimeoutMs=8000] how long one Streams call may take; below the
   *   hub's 10 s request timeout so the app gets the provider's precise error first
   */
  constructor({ agent, client, callTimeoutMs = 8000 }) {
    super();
    this.agent = agent;
    this.client = client;
    this.callTimeoutMs = callTimeoutMs;
    /** muted as last reported by onMuteToggle; Streams has no getter. */
    this.muted = false;
    /** @type {Set<object>} state or mute changes waiting to show up in a snapshot */
    this._ops = new Set();
    this._lastPublished = null;
    /** Every frame this provider sent, newest last (for the page and for tests). */
    this.sent = [];
    this._subscriptions = [];
  }

  /** Subscribe to the agent's events and to the client's requests. Call once. */
  start() {
    const agent = this.agent;
    const sync = () => this._sync();
    this._subscriptions.push(
      agent.onRefresh(sync),
      agent.onStateChange(sync),
      agent.onEnqueuedNextState(sync),
      agent.onMuteToggle((event) => {
        this.muted = Boolean(event && event.muted);
        this._sync();
      }),
    );
    const handlers = {
      [SET_NOT_READY]: (req) => this._setNotReady(req),
      [SET_READY]: (req) => this._setReady(req),
      [LOGOUT]: (req) => this._logout(req),
      [MUTE]: (req) => this._mute(req, true),
      [UNMUTE]: (req) => this._mute(req, false),
      [GET_STATES]: (req) => this._reply(req, GET_STATES, { states: stateOptions(this.agent) }),
      [STATE_SYNC]: (req) => this._reply(req, STATE_SYNC, stateSyncMessage(this.agent, this.muted)),
    };
    this._offRequests = this.client.onRequest((envelope) => {
      const kind = kindOf(envelope);
      const handler = handlers[kind];
      if (!handler) {
        this._error(envelope, ErrorType.UNKNOWN_MESSAGE, `this provider does not carry out ${kind}`,
          "The agent's softphone page cannot do this.");
        return;
      }
      try {
        handler(envelope);
      } catch (err) {
        // The Streams API throws StateError when its core is not ready; the app
        // must still get an answer.
        const failure = parseStreamsFailure(err);
        this._error(envelope, kind === MUTE || kind === UNMUTE ? MUTE_FAILED : FAILED, describe(failure),
          "The agent's softphone could not carry out the request.");
      }
    });
    // Every (re)connection gets the current state at once, so the hub's
    // retained state is never older than the provider's last session.
    this._offClientState = this.client.addStateListener((state) => {
      if (state === "open") this.publishState();
    });
    if (this.client.state === "open") this.publishState();
    return this;
  }

  /** Undo start(): unsubscribe everything and fail pending changes. */
  stop() {
    for (const sub of this._subscriptions) sub.unsubscribe();
    this._subscriptions = [];
    this._offRequests?.();
    this._offClientState?.();
    for (const op of this._ops) clearTimeout(op.timer);
    this._ops.clear();
  }

  /** Publish SetAgentState for the current snapshot, optionally answering a request. */
  publishState(replyTo) {
    const message = setAgentStateMessage(this.agent, this.muted);
    const sent = this._send(SET_AGENT_STATE, message, replyTo);
    if (sent) this._lastPublished = JSON.stringify(message);
    return sent;
  }

  // -- requests -----------------------------------------------------------

  _setNotReady(request) {
    const wanted = request.data && request.data.ReasonCodeId;
    const { state, names } = findState(this.agent.getAgentStates(), "not_routable", wanted);
    if (!state) {
      this._error(request, NOT_FOUND,
        `no not-routable agent state named '${wanted}' among: ${names.join(", ") || "(none)"}`,
        HUMAN_MESSAGES[NOT_FOUND]);
      return;
    }
    this._changeState(request, state);
  }

  _setReady(request) {
    const wanted = request.data ? request.data.ReasonCodeId : undefined;
    const { state, names } = findState(this.agent.getAgentStates(), "routable", wanted);
    if (!state) {
      const what = wanted === undefined ? "no routable agent state configured"
        : `no routable agent state named '${wanted}' among: ${names.join(", ") || "(none)"}`;
      this._error(request, NOT_FOUND, what, HUMAN_MESSAGES[NOT_FOUND]);
      return;
    }
    this._changeState(request, state);
  }

  _logout(request) {
    const { state } = findState(this.agent.getAgentStates(), "offline");
    if (!state) {
      this._error(request, FAILED, "no offline agent state configured for this agent",
        "The agent could not be logged out.");
      return;
    }
    this._changeState(request, state);
  }

  /**
   * Ask Connect for `target` and answer `request` once a snapshot shows it as
   * the state or as the queued next state, or with an error on failure or timeout.
   */
  _changeState(request, target) {
    const op = { request, kind: "state", target, accepted: false, timer: null };
    op.timer = setTimeout(() => {
      const stage = op.accepted ? "accepted the change but no snapshot showed it"
        : "did not answer putAgentState";
      this._finish(op, FAILED,
        `Amazon Connect ${stage} for '${target.name}' within ${this.callTimeoutMs} ms`,
        "Amazon Connect did not answer in time; the agent state was not changed.");
    }, this.callTimeoutMs);
    this._ops.add(op);
    this.agent.setState(target, {
      success: () => {
        if (!this._ops.has(op)) return; // already timed out
        op.accepted = true;
        this._sync();
      },
      failure: (err) => {
        const failure = parseStreamsFailure(err);
        const because = failure.message ? ` ${failure.message}` : "";
        this._finish(op, FAILED, `putAgentState '${target.name}' failed: ${describe(failure)}`,
          `Amazon Connect refused the state change.${because}`.trim());
      },
    }, { enqueueNextState: true });
  }

  /** Mute or unmute; only a live softphone call has a microphone to mute. */
  _mute(request, wantMuted) {
    const verb = wantMuted ? "mute" : "unmute";
    if (!onSoftphoneCall(this.agent)) {
      this._error(request, MUTE_FAILED, `cannot ${verb}: the agent has no active softphone call`,
        `There is no active softphone call to ${verb}.`);
      return;
    }
    if (this.muted === wantMuted) {
      this.publishState(request.id);
      return;
    }
    const op = { request, kind: "mute", wantMuted, accepted: true, timer: null };
    op.timer = setTimeout(() => {
      this._finish(op, MUTE_FAILED, `the softphone did not confirm ${verb} within ${this.callTimeoutMs} ms`,
        `The softphone did not confirm ${verb} in time.`);
    }, this.callTimeoutMs);
    this._ops.add(op);
    if (wantMuted) this.agent.mute();
    else this.agent.unmute();
  }

  // -- snapshot handling ---------------------------------------------------

  /** Whether the current snapshot shows what `op` asked for. */
  _reached(op) {
    if (op.kind === "mute") return this.muted === op.wantMuted;
    const current = this.agent.getState();
    const next = this.agent.getNextState();
    const same = (s) => Boolean(s) && s.name === op.target.name
      && (s.agentStateARN || null) === (op.target.agentStateARN || null);
    return same(current) || same(next);
  }

  /**
   * Run on every snapshot and mute toggle: answer the requests whose change
   * has shown up, and publish an unsolicited SetAgentState when what apps see
   * has changed (the same snapshot repeated by onRefresh publishes nothing).
   */
  _sync() {
    let answered = false;
    for (const op of [...this._ops]) {
      if (op.accepted && this._reached(op)) {
        this._ops.delete(op);
        clearTimeout(op.timer);
        this.publishState(op.request.id);
        answered = true;
      }
    }
    if (answered) return;
    const message = JSON.stringify(setAgentStateMessage(this.agent, this.muted));
    if (message !== this._lastPublished) this.publishState();
  }

  _finish(op, errorType, errorMessage, msg) {
    if (!this._ops.delete(op)) return; // answered already
    clearTimeout(op.timer);
    this._error(op.request, errorType, errorMessage, msg);
  }

  // -- sending -------------------------------------------------------------

  _reply(request, kind, message) {
    this._send(kind, message, request.id);
  }

  _send(kind, message, replyTo) {
    const sent = this.client.publish(kind, message, replyTo ? { replyTo } : {});
    this._record({ kind, message, replyTo: replyTo || null, sent });
    return sent;
  }

  _error(request, errorType, errorMessage, msg) {
    const sent = this.client.sendError(request, errorType, errorMessage, { msg });
    this._record({ kind: `${request.channel}/Error/ApiError`, errorType, errorMessage, msg,
      replyTo: request.id || null, sent });
  }

  _record(entry) {
    this.sent.push({ at: new Date().toISOString(), ...entry });
    if (this.sent.length > 200) this.sent.shift();
    this.dispatchEvent(new CustomEvent("sent", { detail: entry }));
  }
}
