/**
 * Entry point of index.html, the hub's landing page. It asks the hub whether
 * it is open (demo: pages name their agent) or secured (every page needs a
 * token), from `/config.json`, and says so:
 * - open: links to the softphone page and the widget, pointed at the agent
 *   typed in the form, and to the wallboard;
 * - secured: no link that cannot work; for each page, the `connect-bridge
 *   token` command to run and the address to open with the printed token.
 *
 * The agent starts as the page's `?agent=` (the demo prints the landing page
 * with the first agent it does not simulate), else as the form's default: an
 * emulated CCP for an agent the demo simulates would take that agent over.
 * @module pages/index
 */

import { securedPageHelp } from "./index-text.js";

const input = document.getElementById("agent");
const fallback = input.defaultValue;
const asked = new URLSearchParams(location.search).get("agent");
if (asked && asked.trim()) input.value = asked.trim();

const modeLine = document.getElementById("hub-mode");
const openCards = document.getElementById("open-cards");
const securedCards = document.getElementById("secured-cards");
/** "open", "secured", or "unknown" (the hub did not say). */
let mode = "unknown";

function agentName() {
  return input.value.trim() || fallback;
}

function update() {
  const agent = encodeURIComponent(agentName());
  document.getElementById("link-ccp").href = `ccp.html?emulate=1&agent=${agent}`;
  document.getElementById("link-widget").href = `widget.html?agent=${agent}`;
  for (const [page, help] of Object.entries(securedPageHelp(agentName()))) {
    const card = document.getElementById(`token-${page}`);
    // One span per word: a narrow screen wraps between words, never after the "-" of "--agent".
    const words = help.command.split(" ").map((word) => Object.assign(document.createElement("span"),
      { textContent: word }));
    card.querySelector("[data-part='command']").replaceChildren(...words.flatMap((w, i) => (i ? [" ", w] : [w])));
    card.querySelector("[data-part='url']").textContent = help.url;
  }
}

function showMode() {
  modeLine.dataset.mode = mode;
  openCards.hidden = mode === "secured";
  securedCards.hidden = mode !== "secured";
  document.getElementById("agent-help").hidden = mode === "secured";
  document.getElementById("agent-help-secured").hidden = mode !== "secured";
  document.getElementById("agent-form").setAttribute("aria-describedby", mode === "secured" ? "agent-help-secured" : "agent-help");
  if (mode === "open") {
    modeLine.textContent = "This hub runs in open (demo) mode: no tokens, each page names its agent. "
      + "See docs/browser.md for a real deployment.";
  } else if (mode === "secured") {
    modeLine.replaceChildren(
      Object.assign(document.createElement("strong"), { textContent: "This hub is secured: every page needs a token. " }),
      "Each card below gives the command that prints that page's token (run it where the hub's BRIDGE_SECRET "
      + "is set); add the token to the page's address as ?token=… (see docs/browser.md).",
    );
  } else {
    modeLine.textContent = "Could not ask this hub whether it is open or secured. The links below work on an "
      + "open (demo) hub; on a secured hub each page needs ?token=… (connect-bridge token --help).";
  }
}

/** Ask the hub its mode; anything but a clear answer leaves it unknown. */
async function askMode() {
  try {
    const answer = await fetch("config.json", { cache: "no-store" });
    const config = answer.ok ? await answer.json() : null;
    if (config && (config.mode === "open" || config.mode === "secured")) mode = config.mode;
  } catch {
    // An older hub, or the page served from elsewhere: say that the mode is unknown.
  }
  showMode();
}

update();
input.addEventListener("input", update);
document.getElementById("agent-form").addEventListener("submit", (event) => event.preventDefault());
askMode();
