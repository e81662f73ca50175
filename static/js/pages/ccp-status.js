/**
 * The "Bridge" panel of ccp.html: what the provider is doing, for the agent
 * or whoever supports them (hub connection, agent, last frames sent).
 * @module pages/ccp-status
 */

const HUB_TEXT = {
  idle: "not started",
  connecting: "connecting…",
  open: "connected",
  reconnecting: "reconnecting…",
  closed: "disconnected",
};

export class CcpStatus {
  /** @param {Document} doc */
  constructor(doc) {
    this.hub = doc.getElementById("hub-status");
    this.agent = doc.getElementById("agent-login");
    this.published = doc.getElementById("published-state");
    this.frames = doc.getElementById("frames");
    this.error = doc.getElementById("page-error");
    this.mode = doc.getElementById("ccp-mode");
  }

  showMode(text) {
    this.mode.textContent = text;
  }

  /** A change of the client's state: `{state, reason}` (the state listener's detail). */
  showHub(detail) {
    this.hub.dataset.status = detail.state;
    let text = HUB_TEXT[detail.state] || detail.state;
    if (detail.state === "closed" && detail.reason) text = `disconnected: ${detail.reason}`;
    this._hubText(text);
  }

  /** The client waits `retryInMs` before its next attempt (its "retry" event). */
  showRetry(detail) {
    const verb = this.hub.dataset.status === "reconnecting" ? "reconnecting" : "connecting";
    this._hubText(`${verb} in ${(detail.retryInMs / 1000).toFixed(1)} s`);
  }

  _hubText(text) {
    this.hub.querySelector(".indicator__text").textContent = text;
  }

  showAgent(text) {
    this.agent.textContent = text;
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  /** One line per frame the provider sent, newest first, at most 12. */
  showFrame(entry) {
    const item = document.createElement("li");
    item.className = entry.errorType ? "frame frame--error" : "frame";
    const what = entry.errorType ? `${entry.errorType}` : entry.kind.split("/").pop();
    let detail = entry.kind.endsWith("SetAgentState") ? ` · ${entry.message.event}` : "";
    if (entry.kind.endsWith("InboundCallStateChange")) detail = ` · ${entry.message.call.event}`;
    const reply = entry.replyTo ? " ↩" : "";
    item.textContent = `${what}${detail}${reply}${entry.sent ? "" : " (not sent: offline)"}`;
    if (entry.errorMessage) item.title = entry.errorMessage;
    this.frames.prepend(item);
    while (this.frames.children.length > 12) this.frames.lastElementChild.remove();
    if (entry.kind.endsWith("SetAgentState") && entry.sent) {
      const { data } = entry.message;
      this.published.textContent = `${entry.message.event} (${data.state}${data.muted ? ", muted" : ""})`;
    }
  }
}
