/**
 * Entry point of index.html, the demo's landing page: keeps the links to the
 * softphone page and the widget pointed at the agent typed in the form.
 *
 * The agent starts as the page's `?agent=` (the demo prints the landing page
 * with the first agent it does not simulate), else as the form's default: an
 * emulated CCP for an agent the demo simulates would take that agent over.
 * @module pages/index
 */

const input = document.getElementById("agent");
const fallback = input.defaultValue;
const asked = new URLSearchParams(location.search).get("agent");
if (asked && asked.trim()) input.value = asked.trim();

function update() {
  const agent = encodeURIComponent(input.value.trim() || fallback);
  document.getElementById("link-ccp").href = `ccp.html?emulate=1&agent=${agent}`;
  document.getElementById("link-widget").href = `widget.html?agent=${agent}`;
}

update();
input.addEventListener("input", update);
document.getElementById("agent-form").addEventListener("submit", (event) => event.preventDefault());
