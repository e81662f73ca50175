/**
 * Entry point of ccp.html: brings up the CCP (real or emulated), waits for
 * the logged-in agent, then connects the provider to the hub as that agent.
 *
 * Settings come from window.CONNECT_BRIDGE_CONFIG or the query string
 * (page-config.js): ccpUrl, region, hubUrl (?hub), token, callTimeoutMs
 * (?callTimeout), and for the emulator emulate=1, agent, state, latency.
 * @module ccp-page
 */

import { BridgeClient } from "./bridge-client.js";
import { CcpEmulator } from "./ccp-emulator.js";
import { renderEmulatorPanel } from "./ccp-emulator-panel.js";
import { CcpStatus } from "./ccp-status.js";
import { readPageConfig } from "./page-config.js";
import { Provider } from "./provider.js";
import { tokenSubject } from "./token.js";

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
    token: settings.token,
    agent: username,
    source: settings.source || "ccp-provider",
  });
  const provider = new Provider({ agent, client, callTimeoutMs: settings.callTimeoutMs ?? 8000 });
  client.addEventListener("state", (event) => {
    status.showHub(event.detail);
    if (event.detail.state === "closed" && event.detail.error) {
      status.showError(event.detail.error.msg || "The bridge refused this page.");
    }
  });
  client.addEventListener("state", (event) => {
    // The same check on what the hub says, for tokens this page cannot read.
    const welcome = event.detail.welcome;
    if (event.detail.state === "open" && welcome && welcome.agent !== username) {
      client.stop(`token is for ${welcome.agent}`);
      refuseMismatch(welcome.agent, username);
    }
  });
  provider.addEventListener("sent", (event) => status.showFrame(event.detail));
  client.on("*", (envelope) => {
    // The hub answers a frame it refuses (SCHEMA_VIOLATION, FORBIDDEN...) with
    // an error to this page. That is a bug in the provider, never the agent's
    // doing: say it loudly, on the page and in the console.
    if (envelope.topic === "Error" && envelope.subtopic === "ApiError") {
      const { errorType, errorMessage } = envelope.data || {};
      status.showError(`The hub refused a frame from this page: ${errorType} ${errorMessage}`);
      console.error("connect-bridge: the hub refused a frame from this page", envelope);
    }
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
      + "/vendor/streams/connect-streams-min.js (run `npm ci` in the project).");
    return;
  }
  if (!startCcp(connect)) return;
  connect.agent((agent) => startProvider(agent));
}

main();
