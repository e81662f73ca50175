/**
 * The agent's widget: joins the hub as an app for one agent, shows the
 * agent's state and offers the state buttons the provider's rules allow;
 * shows a card per live contact (call-card.js) with the call controls
 * `ButtonStates` allows, and a dial pad.
 *
 * Settings (lib/page-config.js): `?agent=agent1` on an open-mode hub, or
 * `?token=...`; optional `?hub=ws://host:port/ws` (default: this page's host).
 * @module pages/widget
 */

import { BridgeClient } from "../lib/client.js";
import {
  ANSWER, CLEAR_CONTACT, CONFERENCE, CONSULT, DISCONNECT, GET_QUICK_CONNECTS, GET_STATES, HOLD,
  INBOUND_CALL_STATE_CHANGE, INBOUND_CALL_STATE_SYNC, LOGOUT, MUTE, PROVIDER_STATUS, REJECT, RESUME,
  SEND_DTMF, SET_AGENT_STATE, SET_MAKE_CALL, SET_NOT_READY, SET_READY, STATE_SYNC, SWAP, TRANSFER, UNMUTE,
} from "../lib/names.js";
import { readPageConfig } from "../lib/page-config.js";
import { callsAfter, callsFromSync } from "./call-logic.js";
import { WidgetView } from "./widget-view.js";
import {
  cancelQueued, connectionProblemText, emptyStateText, stateChangesQueue, stateRequestErrorText,
} from "./widget-text.js";

/** A call card's action -> the request it sends (call-card.js names the actions). */
const CALL_KINDS = {
  answer: ANSWER,
  reject: REJECT,
  hold: HOLD,
  resume: RESUME,
  disconnect: DISCONNECT,
  clearContact: CLEAR_CONTACT,
  conference: CONFERENCE,
  swap: SWAP,
  dtmf: SEND_DTMF,
  consult: CONSULT,
  transfer: TRANSFER,
};

/** What the widget knows; every change goes through render(). */
const model = {
  hub: "idle",
  providerConnected: null,
  /** The last SetAgentState message (or one built from StateSync). */
  state: null,
  /**
   * The last state seen that was not a contact's system state ({name, type}):
   * the state the agent is in behind a call, which cancels a queued one.
   */
  availability: null,
  /** The agent's selectable states from GetStates. */
  states: [],
  /** The hub's welcome agent name, once connected. */
  agent: null,
  /** Why the connection failed for good (the client's closeError), or null. */
  connectionError: null,
  /** Buttons whose request is in flight. */
  busy: new Set(),
  /** GetStates was asked since the provider last came up. */
  loaded: false,
  /** The live contacts by id, in the order they first appeared (call-logic.js). */
  calls: new Map(),
  /** Call actions in flight, by contact id. */
  callBusy: new Map(),
  /** SetMakeCall in flight. */
  dialing: false,
  /** Quick connects from GetQuickConnects: null until loaded for this provider. */
  quickConnects: null,
  /** A GetQuickConnects is in flight or answered since the provider last came up. */
  quickConnectsAsked: false,
};

const settings = readPageConfig();
let client = null;

const view = new WidgetView(document, {
  onReady: () => act("ready", SET_READY),
  onNotReady: (reason) => act("notReady", SET_NOT_READY, { ReasonCodeId: reason }),
  onLogout: () => act("logout", LOGOUT),
  onMute: () => act("mute", MUTE),
  onUnmute: () => act("unmute", UNMUTE),
  onCancelNext: () => {
    const cancel = cancelQueued(model.state, model.availability);
    if (cancel) act("cancelNext", SET_READY, { ReasonCodeId: cancel.reason });
  },
  onCallAction: callAct,
  onDial: dial,
  onQuickConnects: loadQuickConnects,
});

function render() {
  view.showHub(model.hub);
  view.showProvider(model.hub === "open" ? model.providerConnected : null);
  const live = model.hub === "open" && model.providerConnected === true;
  if (model.state) view.showState(model.state);
  const problem = connectionProblemText(model.connectionError, { token: Boolean(settings.token) });
  if (problem) view.showGuide(problem, "error");
  else view.showGuide(emptyStateText({ hub: model.hub, providerConnected: model.providerConnected,
    agent: model.agent, hasState: model.state !== null }));
  view.markStale(!live || model.state === null);
  view.applyButtons(model.state, live && model.state !== null, model.busy);
  view.applyCancelNext(cancelQueued(model.state, model.availability), live && model.state !== null, model.busy);
  view.showReasons(model.states, model.state ? model.state.event : null);
  view.showCalls(model.calls, { usable: live, stale: !live, busy: model.callBusy });
  view.applyDialer(model.state, live && model.state !== null, model.dialing);
  view.showQuickConnects(model.quickConnects);
}

/**
 * Send one request for a button; the answer (SetAgentState) reaches every
 * widget through the SetAgentState handler, so only errors are handled here.
 */
async function act(button, kind, data) {
  model.busy.add(button);
  render();
  try {
    await client.request(kind, data);
  } catch (error) {
    view.showError(error, stateRequestErrorText(error));
  } finally {
    model.busy.delete(button);
    render();
  }
}

/**
 * Send a call card's request. The answer is the contact's InboundCallStateChange,
 * which reaches every widget through its handler, so only errors are handled here.
 * @returns {Promise<boolean>} true when the request succeeded
 */
async function callAct(callId, action, data) {
  const busy = model.callBusy.get(callId) || new Set();
  model.callBusy.set(callId, busy.add(action));
  render();
  try {
    await client.request(CALL_KINDS[action], data);
    return true;
  } catch (error) {
    view.showError(error);
    return false;
  } finally {
    busy.delete(action);
    if (busy.size === 0) model.callBusy.delete(callId);
    render();
  }
}

/** The dial pad: SetMakeCall with a checked E.164 number or a quick connect. */
async function dial(data) {
  model.dialing = true;
  render();
  try {
    await client.request(SET_MAKE_CALL, data);
    return true;
  } catch (error) {
    view.showError(error);
    return false;
  } finally {
    model.dialing = false;
    render();
  }
}

/** Ask for the quick connects once per provider connection, when a picker first opens. */
async function loadQuickConnects() {
  if (model.quickConnectsAsked || !client || client.state !== "open" || !model.providerConnected) return;
  model.quickConnectsAsked = true;
  try {
    const answer = await client.request(GET_QUICK_CONNECTS);
    model.quickConnects = answer.message.endpoints;
  } catch (error) {
    model.quickConnectsAsked = false; // the next opening tries again
    model.quickConnects = [];
    view.showError(error);
  }
  render();
}

/**
 * The provider's live contacts now. When a provider (re)joins, the hub forgets
 * the calls it retained and the provider publishes its live ones: a contact that
 * ended while no provider was connected never gets its Dropped event, so the
 * widget takes the provider's list instead of keeping a ghost card.
 */
async function syncCalls() {
  try {
    const answer = await client.request(INBOUND_CALL_STATE_SYNC);
    model.calls = callsFromSync(answer.message.calls);
  } catch (error) {
    // Not the agent's business: the cards keep what the events said.
    console.warn("connect-bridge widget: could not sync the calls", error.message);
  }
  render();
}

/** Fill the Not Ready menu, and the state too if no SetAgentState came with the join. */
async function loadFromProvider() {
  try {
    const answer = await client.request(GET_STATES);
    model.states = answer.message.states;
    if (!model.state) {
      const sync = await client.request(STATE_SYNC);
      const { agentInfo, agentState, rules } = sync.message;
      if (!model.state) showAgentState({ event: agentState.name, data: agentInfo, rules, source: "event" });
    }
  } catch (error) {
    view.showError(error);
  }
  render();
}

/** Take a SetAgentState message (or one built from StateSync), noting the state behind any call. */
function showAgentState(message) {
  model.state = message;
  if (!stateChangesQueue(message)) model.availability = { name: message.event, type: message.data.type };
  render();
}

/** The provider came or went: ask it for the menu once each time it comes. */
function providerIs(connected) {
  model.providerConnected = connected;
  if (!connected) {
    model.loaded = false;
    model.quickConnects = null;
    model.quickConnectsAsked = false;
  }
  render();
  if (connected && !model.loaded) {
    model.loaded = true;
    loadFromProvider();
    syncCalls();
  }
}

function start() {
  if (!settings.token && !settings.agent) {
    view.showAgent("No agent");
    view.showError({
      errorType: "CONFIGURATION",
      msg: "Open this page with ?agent=NAME (open-mode hub) or ?token=TOKEN.",
    });
    render();
    view.showGuide("This link names no agent: open the page with ?token=… (or ?agent=NAME on a demo hub).",
      "error");
    return;
  }
  client = new BridgeClient({
    url: settings.hubUrl,
    role: "app",
    // A token when there is one; the agent's name only on an open (demo) hub.
    ...(settings.token ? { token: settings.token } : { agent: settings.agent }),
    source: settings.source || "agent-widget",
    requestTimeout: settings.requestTimeoutMs,
  });
  client.addStateListener((state, detail) => {
    model.hub = state;
    if (state === "open") {
      // The hub replays the retained calls right after Welcome: start from them.
      model.calls = new Map();
      model.connectionError = null;
      model.agent = detail.welcome.agent;
      view.showAgent(detail.welcome.agent);
      providerIs(client.providerConnected);
      return;
    }
    model.providerConnected = null;
    model.loaded = false;
    // A refused Hello or a lost first connection says why when the client gives up.
    // A refused Hello says why in the card, in words, with what to do; the
    // notice keeps the technical cause in its tooltip.
    if (detail && detail.error && (state === "closed" || detail.error.errorType === "NOT_AUTHENTICATED")) {
      model.connectionError = detail.error;
      view.showAgent("Not connected");
    }
    if (state === "closed" && detail.error) view.showError(detail.error);
    render();
  });
  client.on(PROVIDER_STATUS, () => providerIs(client.providerConnected));
  client.on(SET_AGENT_STATE, (envelope) => {
    showAgentState(envelope.message);
  });
  client.on(INBOUND_CALL_STATE_CHANGE, (envelope) => {
    model.calls = callsAfter(model.calls, envelope.message.call);
    render();
  });
  // Errors nobody asked about (e.g. RATE_LIMITED on a frame without an id).
  client.onError((error) => view.showError(error));
  window.connectBridgeWidget = { client, model, view };
  render();
  client.start();
}

start();
