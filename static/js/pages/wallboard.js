/**
 * The wallboard: joins the hub as a supervisor (protocol 1.2) and shows every
 * agent in scope, live; with control, offers Ready, Not Ready (with a reason)
 * and Log out per agent, sent as supervisor requests naming the agent.
 *
 * Each frame is applied to the model at once (wallboard-model.js, O(1)); the
 * rows are drawn once per animation frame (wallboard-batch.js), only those in
 * view and only the agents that changed (wallboard-list.js).
 *
 * Settings (lib/page-config.js): `?agents=*` (or `agents=agent1,agent2`) and
 * `control=1` on an open-mode hub, or `?token=<supervisor token>`; optional
 * `hub`, `notReadyLimit` (seconds, default 300; 0 turns the highlight off),
 * `batch=0` (draw at every event: the benchmark's baseline), `perf=1` (frame
 * timing in `window.wallboardPerf`).
 * @module pages/wallboard
 */

import { BridgeClient } from "../lib/client.js";
import { GET_STATES, LOGOUT, SET_NOT_READY, SET_READY } from "../lib/names.js";
import { readPageConfig } from "../lib/page-config.js";
import { FrameBatch } from "./wallboard-batch.js";
import {
  ALL, DEFAULT_NOT_READY_LIMIT_S, Floor, affectsOrder, countOverdue, orderDependsOnTime, orderRecords,
  parseAgents,
} from "./wallboard-model.js";
import { FrameProbe } from "./wallboard-perf.js";
import { WallboardView } from "./wallboard-view.js";

const settings = readPageConfig({ defaults: { notReadyLimitS: DEFAULT_NOT_READY_LIMIT_S, batch: true } });

const floor = new Floor();
/** @type {import("./wallboard-model.js").Query} */
const query = { text: "", state: ALL, sort: "name", limitMs: settings.notReadyLimitS * 1000 };
/** Agents with a request in flight -> the words their Actions button shows meanwhile. */
const busy = new Map();
/** Agents -> their states from GetStates (a promise while asked), until their softphone comes or goes. */
const states = new Map();
const session = { control: false, usable: false };
/** Frames applied to the model since the page started (the benchmark's events per second). */
let applied = 0;
let client = null;

const view = new WallboardView(document, { floor, query, busy, session }, {
  onQuery: (changed) => {
    Object.assign(query, changed);
    batch.invalidate({ reorder: true });
  },
  onMenu: (login) => openMenu(login),
  onAction: (login, value) => act(login, value),
});

const batch = new FrameBatch(draw, { enabled: settings.batch !== false });

/** One draw: the order when it may have changed, the counts, the rows in view that changed. */
function draw({ dirty, reorder, all }) {
  const now = Date.now();
  if (reorder) view.setOrder(orderRecords(floor.agents.values(), query, now));
  view.showCounts(floor, countOverdue(floor, now, query.limitMs));
  view.drawRows(all ? null : dirty, now);
}

/** Every frame the hub sends a supervisor carries its agent; the model keeps what the rows show. */
function receive(envelope) {
  const change = floor.apply(envelope);
  if (change === null) return;
  applied += 1;
  if (change.softphoneChanged) states.delete(change.record.login);
  batch.mark(change.record.login, affectsOrder(change, query));
}

/**
 * The menu's items for one agent: Ready, each not-ready state, Log out.
 * @param {object} record
 * @param {{label: string, code: string, type: string}[]|null} list the agent's states; null while asked
 */
function menuItems(record, list) {
  const items = [{ value: "ready", label: "Ready", disabled: record.category === "ready" }];
  if (list === null) items.push({ value: "", label: "Not Ready: loading reasons…", disabled: true });
  for (const state of (list || []).filter((s) => s.type === "not_routable")) {
    const current = record.type === "not_routable" && record.stateName === state.code;
    items.push({ value: `notready:${state.code}`, label: `Not Ready: ${state.label}`, disabled: current, current });
  }
  items.push({ value: "logout", label: "Log out", disabled: record.category === "offline" });
  return items;
}

/**
 * The menu opens for `login`: its items now, and the agent's not-ready reasons
 * asked of its softphone (once per softphone connection), listed when they come.
 */
function openMenu(login) {
  const record = floor.agents.get(login);
  const known = states.get(login);
  if (known !== undefined && !(known instanceof Promise)) return menuItems(record, known);
  fillMenu(login, record);
  return menuItems(record, null);
}

async function fillMenu(login, record) {
  let known = states.get(login);
  if (known === undefined) {
    known = client.request(GET_STATES, undefined, { agent: login }).then((answer) => answer.message.states);
    states.set(login, known);
  }
  try {
    const list = await known;
    if (states.get(login) === known) states.set(login, list);
    view.menuItems(login, menuItems(record, list));
  } catch (error) {
    states.delete(login);
    view.menuItems(login, menuItems(record, []));
    view.showError(error, record.name);
  }
}

/** Send one action for an agent; the agent's new state reaches the page as its SetAgentState. */
async function act(login, value) {
  const record = floor.agents.get(login);
  const [action, ...rest] = value.split(":");
  const reason = rest.join(":");
  const request = {
    ready: [SET_READY, undefined, "Setting Ready…"],
    notready: [SET_NOT_READY, { ReasonCodeId: reason }, "Setting Not Ready…"],
    logout: [LOGOUT, undefined, "Logging out…"],
  }[action];
  if (!request || !record) return;
  const [kind, data, doing] = request;
  busy.set(login, doing);
  view.redrawAgent(login);
  try {
    await client.request(kind, data, { agent: login });
  } catch (error) {
    view.showError(error, record.name);
  } finally {
    busy.delete(login);
    view.redrawAgent(login);
  }
}

function start() {
  view.showLimit(query.limitMs);
  const agents = parseAgents(settings.agents);
  if (!settings.token && agents.length === 0) {
    view.showScopeText("Not configured");
    view.showError({ errorType: "CONFIGURATION",
      msg: "Open this page with ?agents=* (open-mode hub; add &control=1 for actions) or ?token=TOKEN." });
    batch.invalidate({ reorder: true });
    return;
  }
  client = new BridgeClient({
    url: settings.hubUrl,
    role: "supervisor",
    // A token when there is one; the scope only on an open (demo) hub, where the page asks for it.
    ...(settings.token ? { token: settings.token } : { agents, control: settings.control === true }),
    source: settings.source || "wallboard",
    requestTimeout: settings.requestTimeoutMs,
  });
  client.addStateListener((state, detail) => {
    view.showHub(state);
    session.usable = state === "open";
    if (state === "open") {
      session.control = detail.welcome.control === true;
      view.showScope(detail.welcome);
      // The hub replays every agent it knows right after Welcome: calls start again from it,
      // except for the agents whose missed events it recovered (no replay for them).
      const recovered = Object.entries(client.recovered ?? {}).filter(([, done]) => done === true);
      if (client.connections > 1) floor.forgetCalls(new Set(recovered.map(([login]) => login)));
      states.clear();
    }
    if (state === "closed" && detail.error) view.showError(detail.error);
    batch.invalidate({ reorder: true });
  });
  client.on("*", receive);
  client.onError((error) => view.showError(error, error.agent ?? undefined));
  window.connectBridgeWallboard = { client, floor, query, view, batch };
  if (settings.perf) {
    window.wallboardPerf = new FrameProbe({ events: () => applied, draws: () => batch.draws,
      drawMs: () => batch.drawMs });
  }
  // Times in state move on by themselves: every second, redraw the rows in view and the counts.
  setInterval(() => batch.invalidate({ reorder: orderDependsOnTime(query) }), 1000);
  batch.invalidate({ reorder: true });
  client.start();
}

start();
