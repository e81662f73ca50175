/**
 * The agent's widget: joins the hub as an app for one agent, shows the
 * agent's state and offers the state buttons the provider's rules allow.
 *
 * Settings (lib/page-config.js): `?agent=agent1` on an open-mode hub, or
 * `?token=...`; optional `?hub=ws://host:port/ws` (default: this page's host).
 * @module pages/widget
 */

import { BridgeClient } from "../lib/client.js";
import {
  GET_STATES, LOGOUT, MUTE, PROVIDER_STATUS, SET_AGENT_STATE, SET_NOT_READY, SET_READY, STATE_SYNC,
  UNMUTE,
} from "../lib/names.js";
import { readPageConfig } from "../lib/page-config.js";
import { WidgetView } from "./widget-view.js";

/** What the widget knows; every change goes through render(). */
const model = {
  hub: "idle",
  providerConnected: null,
  /** The last SetAgentState message (or one built from StateSync). */
  state: null,
  /** The agent's selectable states from GetStates. */
  states: [],
  /** Buttons whose request is in flight. */
  busy: new Set(),
  /** GetStates was asked since the provider last came up. */
  loaded: false,
};

const settings = readPageConfig();
let client = null;

const view = new WidgetView(document, {
  onReady: () => act("ready", SET_READY),
  onNotReady: (reason) => act("notReady", SET_NOT_READY, { ReasonCodeId: reason }),
  onLogout: () => act("logout", LOGOUT),
  onMute: () => act("mute", MUTE),
  onUnmute: () => act("unmute", UNMUTE),
});

function render() {
  view.showHub(model.hub);
  view.showProvider(model.hub === "open" ? model.providerConnected : null);
  const live = model.hub === "open" && model.providerConnected === true;
  if (model.state) view.showState(model.state);
  view.markStale(!live || model.state === null);
  view.applyButtons(model.state, live && model.state !== null, model.busy);
  view.showReasons(model.states, model.state ? model.state.event : null);
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
    view.showError(error);
  } finally {
    model.busy.delete(button);
    render();
  }
}

/** Fill the Not Ready menu, and the state too if no SetAgentState came with the join. */
async function loadFromProvider() {
  try {
    const answer = await client.request(GET_STATES);
    model.states = answer.message.states;
    if (!model.state) {
      const sync = await client.request(STATE_SYNC);
      const { agentInfo, agentState, rules } = sync.message;
      if (!model.state) model.state = { event: agentState.name, data: agentInfo, rules, source: "event" };
    }
  } catch (error) {
    view.showError(error);
  }
  render();
}

/** The provider came or went: ask it for the menu once each time it comes. */
function providerIs(connected) {
  model.providerConnected = connected;
  if (!connected) model.loaded = false;
  render();
  if (connected && !model.loaded) {
    model.loaded = true;
    loadFromProvider();
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
      view.showAgent(detail.welcome.agent);
      providerIs(client.providerConnected);
      return;
    }
    model.providerConnected = null;
    model.loaded = false;
    // A refused Hello or a lost first connection says why when the client gives up.
    if (state === "closed" && detail.error) view.showError(detail.error);
    render();
  });
  client.on(PROVIDER_STATUS, () => providerIs(client.providerConnected));
  client.on(SET_AGENT_STATE, (envelope) => {
    model.state = envelope.message;
    render();
  });
  // Errors nobody asked about (e.g. RATE_LIMITED on a frame without an id).
  client.onError((error) => view.showError(error));
  window.connectBridgeWidget = { client, model, view };
  render();
  client.start();
}

start();
