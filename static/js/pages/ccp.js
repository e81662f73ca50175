/**
 * Entry point of ccp.html: brings up the CCP (real or emulated), waits for
 * the logged-in agent, then connects the provider to the hub as that agent.
 *
 * Settings come from window.CONNECT_BRIDGE_CONFIG or the query string
 * (lib/page-config.js): ccpUrl, region, hubUrl (?hub), token, callTimeoutMs
 * (?callTimeout), and for the emulator emulate=1, agent, state, latency.
 * @module pages/ccp
 */

import { CcpEmulator } from "../emulator/ccp-emulator.js";
import { renderEmulatorPanel } from "../emulator/panel.js";
import { BridgeClient } from "../lib/client.js";
import { readPageConfig } from "../lib/page-config.js";
import { tokenSubject } from "../lib/token.js";
import { Provider } from "../provider/provider.js";
import { CcpStatus } from "./ccp-status.js";
import { ccpRefusalText } from "./ccp-text.js";

const settings = readPageConfig();
const status = new CcpStatus(document);
const container = document.getElementById("ccp-container");

/** Bring up the emulated backend or the real CCP; false when neither can run. */
function startCcp(connect) {
  if (settings.emulate) {
    const emulator = new CcpEmulator({
      connect,
      username: settings.agent || "agent1",
      name: settings.name,
      initialState: settings.initialState,
      latencyMs: settings.latencyMs,
      refreshMs: settings.refreshMs,
    });
    emulator.install();
    window.ccpEmulator = emulator;
    renderEmulatorPanel(container, emulator);
    status.showMode("Emulated Amazon Connect backend · real Streams library");
    return true;
  }
  if (!settings.ccpUrl) {
    status.showMode("Not configured");
    status.showError("No CCP URL: set window.CONNECT_BRIDGE_CONFIG.ccpUrl (see docs/browser.md), "
      + "or open this page with ?emulate=1 for the emulated CCP.");
    return false;
  }
  connect.core.initCCP(container, {
    ccpUrl: settings.ccpUrl,
    region: settings.region,
    loginPopup: true,
    loginPopupAutoClose: true,
    softphone: { allowFramedSoftphone: true },
    ...(settings.initCCP || {}),
  });
  status.showMode(`Amazon Connect · ${new URL(settings.ccpUrl).host}`);
  return true;
}

function refuseMismatch(tokenAgent, username) {
  status.showError(`The bridge token is for agent ${tokenAgent}, but ${username} is logged in `
    + "to the CCP. Get a token for the logged-in agent.");
}

/** Connect the provider for the agent the CCP says is logged in. */
function startProvider(agent) {
  const username = agent.getConfiguration().username;
  status.showAgent(`${agent.getName()} (${username})`);
  // A token names its agent; publishing one agent's state as another's would
  // mislead every app of that agent (and take over its provider slot), so a
  // mismatch stops the page before it connects.
  const tokenAgent = typeof settings.token === "string" ? tokenSubject(settings.token) : null;
  if (tokenAgent !== null && tokenAgent !== username) {
    status.showHub({ state: "closed", reason: `token is for ${tokenAgent}` });
    refuseMismatch(tokenAgent, username);
    return;
  }
  const client = new BridgeClient({
    url: settings.hubUrl,
    role: "provider",
    // On an open (demo) hub the page joins as the logged-in agent.
    ...(settings.token ? { token: settings.token } : { agent: username }),
    source: settings.source || "ccp-provider",
  });
  const provider = new Provider({ agent, client, callTimeoutMs: settings.callTimeoutMs ?? 8000,
    onContact: (f) => window.connect.contact(f) });
  client.addStateListener((state, detail) => {
    status.showHub(detail);
    if (state === "closed" && detail.error) {
      // A refused Hello (no token on a secured hub, an expired token) is how the
      // page was opened, not a provider bug: say what to do, on the page only.
      status.showError(ccpRefusalText(detail.error, { token: Boolean(settings.token), agent: username })
        || detail.error.msg || "The bridge refused this page.");
    }
    // The same check on what the hub says, for tokens this page cannot read.
    const welcome = detail.welcome;
    if (state === "open" && welcome && welcome.agent !== username) {
      client.close(`token is for ${welcome.agent}`);
      refuseMismatch(welcome.agent, username);
    }
  });
  client.addEventListener("retry", (event) => status.showRetry(event.detail));
  provider.addEventListener("sent", (event) => status.showFrame(event.detail));
  client.onError((error) => {
    // The hub answers a frame it refuses (SCHEMA_VIOLATION, FORBIDDEN...) with
    // an error to this page. That is a bug in the provider, never the agent's
    // doing: say it loudly, on the page and in the console.
    status.showError(`The hub refused a frame from this page: ${error.errorType} ${error.errorMessage}`);
    console.error("connect-bridge: the hub refused a frame from this page", error.envelope);
  });
  provider.start();
  client.start();
  window.connectBridge = { client, provider, agent, settings };
}

function main() {
  const connect = window.connect;
  if (!connect || !connect.core) {
    status.showMode("Streams library missing");
    status.showError("The Amazon Connect Streams library did not load from "
      + "/vendor/streams/connect-streams-min.js (the hub has no copy of it). Where the hub runs, "
      + "run connect-bridge fetch-streams (or npm ci in a checkout of connect-bridge), "
      + "then restart the hub and reload this page.");
    return;
  }
  if (!startCcp(connect)) return;
  connect.agent((agent) => startProvider(agent));
}

main();
