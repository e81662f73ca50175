/**
 * The provider: carries out the apps' requests on the Streams agent and
 * contact API and publishes the agent's state and calls to the hub.
 *
 * It runs in the agent's Streams page (ccp.html) beside the CCP, or beside the
 * emulated CCP backend; the code is the same, since both expose the real
 * `connect.agent` / `connect.contact` API. What it must respect
 * (shared/protocol/streams-notes.md), in provider/pending.js for every call:
 * - `setState` takes a state object from `getAgentStates()`, and is called with
 *   `{enqueueNextState: true}` so a change asked for during a call is queued
 *   instead of refused;
 * - `success` only means Connect accepted the call; the change shows up with a
 *   later snapshot, so the answer to a request is sent when the snapshot shows
 *   it (the new state, the state queued as the next state, the held call...);
 * - `failure` usually gets a JSON string;
 * - a callback may never come (401/403), so every call has its own timeout;
 * - there is no mute getter: `muted` is tracked from `onMuteToggle`.
 * The call family (shared/protocol/calls.md) lives in provider/call-control.js.
 *
 * It needs no page: give it a `connect.Agent` (real, or a fake in tests),
 * `connect.contact`, and a BridgeClient with role "provider".
 * @module provider/provider
 */

import { kindOf } from "../lib/kind.js";
import {
  ErrorType, GET_STATES, HUMAN_MESSAGES, LOGOUT, MUTE, SET_AGENT_STATE, SET_NOT_READY, SET_READY,
  STATE_SYNC, UNMUTE,
} from "../lib/names.js";
import { onSoftphoneCall, setAgentStateMessage, stateOptions, stateSyncMessage } from "./agent-state.js";
import { CallControl } from "./call-control.js";
import { describeFailure, parseStreamsFailure, PendingRequests } from "./pending.js";

export { parseStreamsFailure };

const FAILED = ErrorType.UPDATE_AGENT_STATE_FAILED;
const NOT_FOUND = ErrorType.AGENT_STATE_NOT_FOUND;
const MUTE_FAILED = ErrorType.MUTE_FAILED;

/** The sentence for an error type, as the schemas declare it (names.js). */
function sentence(errorType) {
  return HUMAN_MESSAGES[errorType] || "The agent's softphone could not do this.";
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
   * @param {(f: (contact: object) => void) => object} [options.onContact] `connect.contact`: hands
   *   over each new contact (to follow its onAccepted)
   * @param {import("../lib/client.js").BridgeClient} options.client a client with role "provider"
   * @param {number} [options.callTimeoutMs=8000] how long one Streams call may take; below the
   *   hub's 10 s request timeout so the app gets the provider's precise error first
   */
  constructor({ agent, onContact, client, callTimeoutMs = 8000 }) {
    super();
    this.agent = agent;
    this.client = client;
    this.callTimeoutMs = callTimeoutMs;
    /** muted as last reported by onMuteToggle; Streams has no getter. */
    this.muted = false;
    this.pending = new PendingRequests({
      timeoutMs: callTimeoutMs,
      sendError: (request, errorType, errorMessage, msg) => this._error(request, errorType, errorMessage, msg),
    });
    this.calls = new CallControl({
      agent,
      onContact,
      pending: this.pending,
      send: (kind, message, replyTo) => this._send(kind, message, replyTo),
      sendError: (request, errorType, errorMessage, msg) => this._error(request, errorType, errorMessage, msg),
      sentence,
    });
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
    if (typeof agent.onClearedNextState === "function") this._subscriptions.push(agent.onClearedNextState(sync));
    this.calls.start(sync);
    const handlers = {
      [SET_NOT_READY]: (req) => this._setNotReady(req),
      [SET_READY]: (req) => this._setReady(req),
      [LOGOUT]: (req) => this._logout(req),
      [MUTE]: (req) => this._mute(req, true),
      [UNMUTE]: (req) => this._mute(req, false),
      [GET_STATES]: (req) => this._reply(req, GET_STATES, { states: stateOptions(this.agent) }),
      [STATE_SYNC]: (req) => this._reply(req, STATE_SYNC, stateSyncMessage(this.agent, this.muted)),
      ...this.calls.handlers(),
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
        this._error(envelope, kind === MUTE || kind === UNMUTE ? MUTE_FAILED : FAILED, describeFailure(failure),
          "The agent's softphone could not carry out the request.");
      }
    });
    // Every (re)connection gets the current state and calls at once, so the
    // hub's retained state is never older than the provider's last session.
    this._offClientState = this.client.addStateListener((state) => {
      if (state === "open") this._publishAll();
    });
    if (this.client.state === "open") this._publishAll();
    return this;
  }

  /** Undo start(): unsubscribe everything and forget pending requests. */
  stop() {
    for (const sub of this._subscriptions) sub.unsubscribe();
    this._subscriptions = [];
    this.calls.stop();
    this._offRequests?.();
    this._offClientState?.();
    this.pending.clear();
  }

  /** Publish SetAgentState for the current snapshot, optionally answering a request. */
  publishState(replyTo) {
    const message = setAgentStateMessage(this.agent, this.muted);
    const sent = this._send(SET_AGENT_STATE, message, replyTo);
    if (sent) this._lastPublished = JSON.stringify(message);
    return sent;
  }

  /** On joining: SetAgentState, then one InboundCallStateChange per live contact (calls.md). */
  _publishAll() {
    this.publishState();
    this.calls.publishAll();
  }

  // -- agent-state requests -------------------------------------------------------

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
   * During a contact, asking for the state the agent is in now (say Available
   * again while Lunch is queued) is how Connect cancels a queued state: that
   * request is answered once the snapshot shows no queued state and `target`
   * as the availability state (`getAvailabilityState()`, the state behind the
   * system state of the call).
   */
  _changeState(request, target) {
    const same = (s) => Boolean(s) && s.name === target.name
      && (s.agentStateARN || null) === (target.agentStateARN || null);
    const stays = () => {
      const agent = this.agent;
      if (typeof agent.getAvailabilityState !== "function" || agent.getNextState()) return false;
      const availability = agent.getAvailabilityState();
      return agent.getState().type === "system" && Boolean(availability) && availability.state === target.name;
    };
    const { callbacks } = this.pending.wait({
      request,
      errorType: FAILED,
      action: `putAgentState '${target.name}'`,
      reached: () => same(this.agent.getState()) || same(this.agent.getNextState()) || stays(),
      answer: () => this.publishState(request.id),
      failureMsg: (failure) => `Amazon Connect refused the state change.${failure.message ? ` ${failure.message}` : ""}`,
      timeoutMsg: "Amazon Connect did not answer in time; the agent state may or may not change.",
    });
    this.agent.setState(target, callbacks, { enqueueNextState: true });
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
    // The softphone's confirmation (onMuteToggle) is the only answer there is.
    this.pending.wait({
      request,
      errorType: MUTE_FAILED,
      action: `the softphone's ${verb}`,
      accepted: true,
      reached: () => this.muted === wantMuted,
      answer: () => this.publishState(request.id),
      failureMsg: () => `The softphone could not ${verb}.`,
      timeoutMsg: `The softphone did not confirm ${verb} in time.`,
    });
    if (wantMuted) this.agent.mute();
    else this.agent.unmute();
  }

  // -- snapshot handling ---------------------------------------------------

  /**
   * Run on every snapshot, mute toggle and accepted contact: answer the
   * requests whose effect has shown up, publish each call that changed, then
   * an unsolicited SetAgentState when what apps see of the agent has changed
   * (the same snapshot repeated by onRefresh publishes nothing). Calls come
   * first: a cleared contact's Dropped precedes the state it leads to.
   */
  _sync() {
    this.pending.check();
    this.calls.sync();
    const message = JSON.stringify(setAgentStateMessage(this.agent, this.muted));
    if (message !== this._lastPublished) this.publishState();
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
