/**
 * Screen pop: when a call rings, open the CRM's page for it. The pattern for
 * integrators; the page is `screenpop.html?agent=agent1&template=URL` (or
 * `?token=...`, or `window.CONNECT_BRIDGE_CONFIG = {token, template}`), where
 * each `{Name}` in the template is the call's attribute `Name`, URL-encoded:
 * `https://crm.example.com/customers/{CustomerId}`. docs/browser.md says more.
 * @module pages/screenpop
 */

import { BridgeClient } from "../lib/client.js";
import { INBOUND_CALL_STATE_CHANGE } from "../lib/names.js";
import { readPageConfig } from "../lib/page-config.js";
import { fillTemplate, isRingingInbound } from "./screenpop-url.js";

const settings = readPageConfig();
const popped = new Set(); // contact ids: a reconnect's replay of a ringing call pops nothing twice

function start() {
  const bus = new BridgeClient({ url: settings.hubUrl, role: "app", source: "screen-pop",
    ...(settings.token ? { token: settings.token } : { agent: settings.agent }) });
  bus.on(INBOUND_CALL_STATE_CHANGE, ({ message: { call } }) => {
    if (!isRingingInbound(call) || popped.has(call.id)) return;
    popped.add(call.id);
    const pop = fillTemplate(settings.template, call.CallVariables);
    if (pop.ok) window.open(pop.url, "_blank", "noopener,noreferrer");
    show(call, pop);
  });
  bus.addStateListener((state) => showHub(state));
  bus.start();
}

// -- what the page shows: not part of the pattern ----------------------------------

/** One line per pop, with the link: the agent's way in when the browser blocked the pop-up. */
function show(call, pop) {
  const caller = `${call.CallVariables.ANI || "A call"} rings: `;
  const missing = pop.missing.length > 0 ? ` (not in the call, left empty: ${pop.missing.join(", ")})` : "";
  if (!pop.ok) return note("error", call.id, caller, `not opened: ${pop.problem}`, missing);
  const link = Object.assign(document.createElement("a"), { href: pop.url, target: "_blank",
    rel: "noopener noreferrer", textContent: pop.url });
  return note("info", call.id, caller, link, missing);
}

function note(kind, callId, ...parts) {
  const item = document.createElement("li");
  item.className = `notice notice--${kind}`;
  item.dataset.callId = callId;
  const text = document.createElement("span");
  text.className = "notice__text";
  text.append(...parts);
  item.append(text);
  document.getElementById("pops").prepend(item);
}

function showHub(state) {
  document.getElementById("hub-status").dataset.status = state;
  document.getElementById("hub-text").textContent = `Bridge: ${state === "open" ? "connected" : state}`;
}

document.getElementById("template").textContent = settings.template || "none";
if (settings.template && (settings.token || settings.agent)) start();
else note("error", "", "Open this page with ?agent=NAME (or ?token=TOKEN) and ?template=URL.");
