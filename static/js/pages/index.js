/**
 * Entry point of index.html, the demo's landing page: keeps the links to the
 * softphone page and the widget pointed at the agent typed in the form.
 * @module pages/index
 */

const input = document.getElementById("agent");

function update() {
  const agent = encodeURIComponent(input.value.trim() || "agent1");
  document.getElementById("link-ccp").href = `ccp.html?emulate=1&agent=${agent}`;
  document.getElementById("link-widget").href = `widget.html?agent=${agent}`;
}

input.addEventListener("input", update);
document.getElementById("agent-form").addEventListener("submit", (event) => event.preventDefault());
