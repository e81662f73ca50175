/**
 * The call half of the provider (shared/protocol/calls.md): publishes an
 * InboundCallStateChange for every change of every voice contact, and
 * carries out the InboundCall requests on the real Streams contact API.
 *
 * - Contacts come from the agent's snapshot (`agent.getContacts("voice")`),
 *   read on every snapshot; `connect.contact` hands each new contact over so
 *   its `onAccepted` can be followed (an accepted softphone call still
 *   setting up looks like a ringing one in the snapshot).
 * - A contact that leaves the snapshot gets its last event, `Dropped`.
 * - Requests: contact.accept/reject/clear/addConnection/conferenceConnections/
 *   toggleActiveConnections, connection.hold/resume/destroy/sendDigits,
 *   agent.connect, agent.getEndpoints; answered through `PendingRequests`
 *   once a snapshot shows the effect.
 * @module provider/call-control
 */

import {
  ANSWER, CLEAR_CONTACT, CONFERENCE, CONSULT, DISCONNECT, ErrorType, GET_QUICK_CONNECTS, HOLD,
  INBOUND_CALL_STATE_CHANGE, INBOUND_CALL_STATE_SYNC, REJECT, RESUME, SEND_DTMF, SET_MAKE_CALL, SWAP, TRANSFER,
} from "../lib/names.js";
import {
  agentConnection, callEvent, callOf, callType, customerConnection, droppedCall, isRinging, quickConnects,
  readContact,
} from "./calls.js";

/** Each call-control request's error type (calls.md, "Requests"). */
export const CALL_ERRORS = Object.freeze({
  [ANSWER]: ErrorType.ANSWER_CALL_FAILED,
  [REJECT]: ErrorType.REJECT_CALL_FAILED,
  [HOLD]: ErrorType.HOLD_CALL_FAILED,
  [RESUME]: ErrorType.RESUME_CALL_FAILED,
  [DISCONNECT]: ErrorType.DISCONNECT_CALL_FAILED,
  [SET_MAKE_CALL]: ErrorType.MAKE_CALL_FAILED,
  [SEND_DTMF]: ErrorType.SEND_DTMF_FAILED,
  [CLEAR_CONTACT]: ErrorType.CLEAR_CONTACT_FAILED,
  [CONSULT]: ErrorType.CONSULT_CALL_FAILED,
  [CONFERENCE]: ErrorType.CONFERENCE_CALL_FAILED,
  [SWAP]: ErrorType.SWAP_CALL_FAILED,
  [TRANSFER]: ErrorType.TRANSFER_CALL_FAILED,
  // calls.md gives GetQuickConnects no error type; a getEndpoints that fails
  // or never answers still gets an answer, under this one.
  [GET_QUICK_CONNECTS]: "GET_QUICK_CONNECTS_FAILED",
});
const CALL_NOT_FOUND = ErrorType.CALL_NOT_FOUND;

/** Events after which a contact can no longer be acted on (it is leaving). */
const ENDING = new Set(["missed", "Rejected"]);
/** Events after which the agent's part of the call is over. */
const OVER = new Set(["ACW", "Dropped", "missed", "Rejected"]);

/** A request naming a contact or connection that does not exist. */
class CallNotFound extends Error {}

/** A Streams endpoint for a request's target: an E.164 number or `{endpointARN}`. */
function endpointFor(target, known) {
  if (typeof target === "string") return { type: "phone_number", phoneNumber: target, name: null };
  const match = known.find((e) => e.endpointARN === target.endpointARN);
  // A quick connect listed by getEndpoints carries its type and name; else the ARN alone.
  return match ? { ...match } : { endpointARN: target.endpointARN, type: null, name: null };
}

export class CallControl {
  /**
   * @param {object} options
   * @param {object} options.agent the connect.Agent
   * @param {(f: (contact: object) => void) => object} [options.onContact] `connect.contact`
   * @param {import("./pending.js").PendingRequests} options.pending
   * @param {(kind: string, message: object, replyTo?: string) => boolean} options.send
   * @param {(request: object, errorType: string, errorMessage: string, msg: string) => void} options.sendError
   * @param {(errorType: string) => string} options.sentence the `msg` of an error type
   */
  constructor({ agent, onContact, pending, send, sendError, sentence }) {
    this.agent = agent;
    this.pending = pending;
    this._onContact = onContact;
    this._send = send;
    this._sendError = sendError;
    this._sentence = sentence;
    /** contactId -> the Call last published, in the order contacts first appeared. */
    this._published = new Map();
    /** Contacts Streams reported accepted (`contact::accepted`). */
    this._accepted = new Set();
    /** The quick connects last listed, so a Transfer to an ARN carries its full endpoint. */
    this._endpoints = [];
    this._subscriptions = [];
    this._followed = new Set();
  }

  /** Follow new contacts; `onChange` runs when Streams reports one accepted. */
  start(onChange) {
    this._onChange = onChange;
    if (this._onContact) this._subscriptions.push(this._onContact((contact) => this._follow(contact)));
    for (const contact of this._contacts()) this._follow(contact);
  }

  stop() {
    for (const sub of this._subscriptions) sub?.unsubscribe?.();
    this._subscriptions = [];
  }

  /** Request handlers by kind, for the provider's dispatch. */
  handlers() {
    const on = (kind, fn) => [kind, (request) => this._guard(request, kind, fn)];
    return Object.fromEntries([
      on(ANSWER, (r) => this._answer(r)),
      on(REJECT, (r) => this._reject(r)),
      on(HOLD, (r) => this._holdOrResume(r, "hold")),
      on(RESUME, (r) => this._holdOrResume(r, "resume")),
      on(DISCONNECT, (r) => this._disconnect(r)),
      on(SET_MAKE_CALL, (r) => this._makeCall(r)),
      on(SEND_DTMF, (r) => this._sendDigits(r)),
      on(CLEAR_CONTACT, (r) => this._clear(r)),
      on(CONSULT, (r) => this._consult(r)),
      on(CONFERENCE, (r) => this._conference(r)),
      on(SWAP, (r) => this._swap(r)),
      on(TRANSFER, (r) => this._transfer(r)),
      on(GET_QUICK_CONNECTS, (r) => this._getQuickConnects(r)),
      on(INBOUND_CALL_STATE_SYNC, (r) => this._send(INBOUND_CALL_STATE_SYNC, { calls: this.currentCalls() }, r.id)),
    ]);
  }

  // -- publishing ------------------------------------------------------------

  /** Every contact in the snapshot as a Call, in the order they first appeared. */
  currentCalls() {
    return this._views().map((view) => this._callOf(view));
  }

  /**
   * Run on every snapshot: publish each contact whose call changed, and
   * `Dropped` for each contact that has left the snapshot.
   */
  sync() {
    const views = this._views();
    const present = new Set(views.map((v) => v.id));
    for (const id of [...this._published.keys()]) {
      if (!present.has(id)) this.publish(id);
    }
    for (const view of views) {
      const call = this._callOf(view);
      const last = this._published.get(view.id);
      if (!last || JSON.stringify(last) !== JSON.stringify(call)) this._publishCall(call);
    }
  }

  /**
   * Publish every live contact now, unasked: what a provider does on joining
   * (the hub forgot this agent's retained calls when it joined).
   */
  publishAll() {
    this._published.clear();
    for (const view of this._views()) this._publishCall(this._callOf(view));
  }

  /** Publish contact `id`'s current event (its `Dropped` if it has left), optionally as an answer. */
  publish(id, replyTo) {
    const view = this._views().find((v) => v.id === id);
    if (view) {
      this._publishCall(this._callOf(view), replyTo);
      return;
    }
    const last = this._published.get(id);
    this._published.delete(id);
    this._accepted.delete(id);
    this._followed.delete(id);
    if (last) this._send(INBOUND_CALL_STATE_CHANGE, { call: droppedCall(last, new Date().toISOString()), source: "event" }, replyTo);
  }

  _publishCall(call, replyTo) {
    // Keep first-appearance order: a contact already known keeps its place.
    this._published.set(call.id, call);
    this._send(INBOUND_CALL_STATE_CHANGE, { call, source: "event" }, replyTo);
  }

  _callOf(view) {
    return callOf(view, { accepted: this._accepted.has(view.id) });
  }

  _follow(contact) {
    const id = contact.getContactId();
    if (this._followed.has(id)) return;
    this._followed.add(id);
    if (typeof contact.onAccepted !== "function") return;
    contact.onAccepted(() => {
      this._accepted.add(id);
      this._onChange?.();
    });
  }

  // -- reading the snapshot -------------------------------------------------------

  _contacts() {
    return this.agent.getContacts("voice");
  }

  _views() {
    const views = this._contacts().map(readContact);
    const order = [...this._published.keys()];
    const rank = (id) => (order.includes(id) ? order.indexOf(id) : order.length);
    return views.map((view, index) => ({ view, index }))
      .sort((a, b) => rank(a.view.id) - rank(b.view.id) || a.index - b.index)
      .map(({ view }) => view);
  }

  _view(id) {
    return this._views().find((v) => v.id === id) || null;
  }

  /** The event contact `id` shows now, `Dropped` once it has left the snapshot. */
  _eventOf(id) {
    const view = this._view(id);
    return view ? callEvent(view) : "Dropped";
  }

  _streamsContact(id) {
    const contact = this._contacts().find((c) => c.getContactId() === id);
    if (!contact) throw new CallNotFound(`no contact ${id}`);
    return contact;
  }

  _streamsConnection(contactId, connectionId) {
    const connection = this._streamsContact(contactId).getConnections()
      .find((c) => c.getConnectionId() === connectionId);
    if (!connection) throw new CallNotFound(`no connection ${connectionId} on contact ${contactId}`);
    return connection;
  }

  /** The contacts a request without `data` may mean: those not already leaving. */
  _liveViews() {
    return this._views().filter((v) => !ENDING.has(callEvent(v)));
  }

  /** The one live contact, for a request that names none. */
  _onlyLive() {
    const live = this._liveViews();
    if (live.length === 1) return live[0];
    throw new CallNotFound(live.length === 0 ? "the agent has no live contact"
      : `the agent has ${live.length} live contacts; name one (data)`);
  }

  /** The contact named by `data` (a contactId), or the one live contact. */
  _targetContact(request) {
    if (typeof request.data === "string") {
      const view = this._view(request.data);
      if (!view) throw new CallNotFound(`no contact ${request.data}`);
      return view;
    }
    return this._onlyLive();
  }

  /**
   * The connection named by `data` (a connectionId, on any contact), or
   * `pick(view)` of the one live contact.
   */
  _targetConnection(request, pick) {
    if (typeof request.data === "string") {
      for (const view of this._views()) {
        const connection = view.connections.find((c) => c.id === request.data);
        if (connection) return { view, connection };
      }
      throw new CallNotFound(`no connection ${request.data}`);
    }
    const view = this._onlyLive();
    const connection = pick(view);
    if (!connection) throw new CallNotFound(`contact ${view.id} has no such connection`);
    return { view, connection };
  }

  // -- requests --------------------------------------------------------------------

  /** Run a handler; a missing target is CALL_NOT_FOUND, a Streams exception the kind's error. */
  _guard(request, kind, handler) {
    try {
      handler(request);
    } catch (err) {
      if (err instanceof CallNotFound) {
        this._sendError(request, CALL_NOT_FOUND, err.message, this._sentence(CALL_NOT_FOUND));
        return;
      }
      // Streams throws StateError when its data is gone (a contact removed meanwhile).
      const errorType = CALL_ERRORS[kind];
      this._sendError(request, errorType, `${request.subtopic}: ${err && err.message ? err.message : String(err)}`,
        this._sentence(errorType));
    }
  }

  /**
   * Wait for Connect on `request` (see PendingRequests): the answer is the
   * contact's event once `reached()`; `lost()` ends it early when the effect
   * can no longer show (the call ended meanwhile).
   */
  _wait(request, kind, action, { contactId, reached, lost = () => null, answer }) {
    const errorType = CALL_ERRORS[kind];
    const msg = this._sentence(errorType);
    const spec = {
      request,
      errorType,
      action,
      failureMsg: () => msg,
      timeoutMsg: msg,
      reached: () => {
        const why = lost();
        if (why) {
          this.pending.finish(spec.self, errorType, why, msg);
          return false;
        }
        return reached();
      },
      answer: answer || (() => this.publish(typeof contactId === "function" ? contactId() : contactId, request.id)),
    };
    const { pending, callbacks } = this.pending.wait(spec);
    spec.self = pending;
    return { pending, callbacks };
  }

  _endedLost(contactId) {
    return () => (OVER.has(this._eventOf(contactId)) ? `contact ${contactId} ended first (${this._eventOf(contactId)})` : null);
  }

  _answer(request) {
    const view = this._targetContact(request);
    const contact = this._streamsContact(view.id);
    const { callbacks } = this._wait(request, ANSWER, "acceptContact", {
      contactId: view.id,
      reached: () => {
        const now = this._view(view.id);
        return !now || !isRinging(now, this._accepted.has(view.id));
      },
    });
    contact.accept(callbacks);
  }

  _reject(request) {
    const view = this._targetContact(request);
    const contact = this._streamsContact(view.id);
    const { callbacks } = this._wait(request, REJECT, "rejectContact", {
      contactId: view.id,
      reached: () => ["Rejected", "Dropped", "missed"].includes(this._eventOf(view.id)),
    });
    contact.reject(callbacks);
  }

  _holdOrResume(request, verb) {
    const kind = verb === "hold" ? HOLD : RESUME;
    const { view, connection } = this._targetConnection(request, customerConnection);
    const streams = this._streamsConnection(view.id, connection.id);
    const wanted = verb === "hold" ? "hold" : "connected";
    const { callbacks } = this._wait(request, kind, `${verb}Connection`, {
      contactId: view.id,
      reached: () => this._connectionStatus(view.id, connection.id) === wanted,
      lost: () => {
        const status = this._connectionStatus(view.id, connection.id);
        if (status === "disconnected" || status === null) return `connection ${connection.id} ended first`;
        return this._endedLost(view.id)();
      },
    });
    streams[verb](callbacks);
  }

  _connectionStatus(contactId, connectionId) {
    const view = this._view(contactId);
    const connection = view && view.connections.find((c) => c.id === connectionId);
    return connection ? connection.status : null;
  }

  _disconnect(request) {
    const { view, connection } = this._targetConnection(request, agentConnection);
    const streams = this._streamsConnection(view.id, connection.id);
    const ownPart = connection.type === "agent" || connection.type === "monitoring";
    const { callbacks } = this._wait(request, DISCONNECT, "destroyConnection", {
      contactId: view.id,
      reached: () => {
        if (OVER.has(this._eventOf(view.id))) return true;
        if (ownPart) return false;
        const status = this._connectionStatus(view.id, connection.id);
        return status === null || status === "disconnected";
      },
    });
    streams.destroy(callbacks);
  }

  _makeCall(request) {
    const before = new Set(this._contacts().map((c) => c.getContactId()));
    const fresh = () => this._views().find((v) => !before.has(v.id) && callType(v) === "outbound") || null;
    const { callbacks } = this._wait(request, SET_MAKE_CALL, "createOutboundContact", {
      contactId: () => fresh().id,
      reached: () => fresh() !== null,
    });
    this.agent.connect(endpointFor(request.data, this._endpoints), { ...callbacks });
  }

  _sendDigits(request) {
    const view = this._onlyLive();
    const customer = customerConnection(view);
    if (!customer) throw new CallNotFound(`contact ${view.id} has no customer connection`);
    const streams = this._streamsConnection(view.id, customer.id);
    // The digits are not echoed: Connect's success is the answer, with the contact's current event.
    const { callbacks } = this._wait(request, SEND_DTMF, "sendDigits", { contactId: view.id, reached: () => true });
    streams.sendDigits(request.data, callbacks);
  }

  _clear(request) {
    const view = this._targetContact(request);
    const contact = this._streamsContact(view.id);
    const { callbacks } = this._wait(request, CLEAR_CONTACT, "clearContact", {
      contactId: view.id,
      reached: () => this._view(view.id) === null,
    });
    contact.clear(callbacks);
  }

  _connectionIds(contactId) {
    const view = this._view(contactId);
    return view ? view.connections.map((c) => c.id) : [];
  }

  _consult(request) {
    const view = this._onlyLive();
    const contact = this._streamsContact(view.id);
    const before = new Set(view.connections.map((c) => c.id));
    const { callbacks } = this._wait(request, CONSULT, "createAdditionalConnection", {
      contactId: view.id,
      reached: () => this._connectionIds(view.id).some((id) => !before.has(id)),
      lost: this._endedLost(view.id),
    });
    contact.addConnection(endpointFor(request.data, this._endpoints), callbacks);
  }

  _conference(request) {
    const view = this._onlyLive();
    const contact = this._streamsContact(view.id);
    const { callbacks } = this._wait(request, CONFERENCE, "conferenceConnections", {
      contactId: view.id,
      reached: () => {
        const now = this._view(view.id);
        const active = now ? now.connections.filter((c) => c.status !== "disconnected") : [];
        return active.length > 0 && active.every((c) => c.status === "connected");
      },
      lost: this._endedLost(view.id),
    });
    contact.conferenceConnections(callbacks);
  }

  _swap(request) {
    const view = this._onlyLive();
    const contact = this._streamsContact(view.id);
    const statuses = () => JSON.stringify((this._view(view.id)?.connections || [])
      .filter((c) => c.type !== "agent" && c.type !== "monitoring").map((c) => [c.id, c.status]));
    const before = statuses();
    const { callbacks } = this._wait(request, SWAP, "toggleActiveConnections", {
      contactId: view.id,
      reached: () => statuses() !== before,
      lost: this._endedLost(view.id),
    });
    contact.toggleActiveConnections(callbacks);
  }

  /** Blind transfer: add the party; once it shows, the agent leaves; answered at ACW. */
  _transfer(request) {
    const view = this._onlyLive();
    const contact = this._streamsContact(view.id);
    const before = new Set(view.connections.map((c) => c.id));
    let leaving = false;
    const { pending, callbacks } = this._wait(request, TRANSFER, "createAdditionalConnection", {
      contactId: view.id,
      reached: () => {
        if (leaving) return OVER.has(this._eventOf(view.id));
        if (!this._connectionIds(view.id).some((id) => !before.has(id))) return false;
        // The party is on the call: now the agent's own connection hangs up.
        leaving = true;
        pending.accepted = false;
        pending.action = "destroyConnection (agent)";
        const own = agentConnection(this._view(view.id));
        this._streamsConnection(view.id, own.id).destroy(this.pending.callbacks(pending));
        return false;
      },
      lost: () => (leaving ? null : this._endedLost(view.id)()),
    });
    contact.addConnection(endpointFor(request.data, this._endpoints), callbacks);
  }

  _getQuickConnects(request) {
    let endpoints = null;
    const { callbacks } = this._wait(request, GET_QUICK_CONNECTS, "getEndpoints", {
      reached: () => endpoints !== null,
      answer: () => {
        this._endpoints = endpoints;
        this._send(GET_QUICK_CONNECTS, { endpoints: quickConnects(endpoints) }, request.id);
      },
    });
    this.agent.getEndpoints(this.agent.getAllQueueARNs(), {
      success: (data) => {
        endpoints = (data && data.endpoints) || [];
        callbacks.success();
      },
      failure: callbacks.failure,
    });
  }
}

