/**
 * Notices: short messages for the agent (mostly the `msg` of an error), in a
 * list that screen readers announce (the list is an aria-live region).
 * @module pages/notices
 */

export class Notices {
  /**
   * @param {HTMLElement} list the <ul> to fill; it should carry aria-live
   * @param {{max?: number, ttlMs?: number}} [options] keep at most `max`; errors stay
   *   until dismissed or `ttlMs` passes (0 = until dismissed)
   */
  constructor(list, { max = 4, ttlMs = 15000 } = {}) {
    this.list = list;
    this.max = max;
    this.ttlMs = ttlMs;
  }

  /**
   * Show a notice.
   * @param {string} text what the person reads
   * @param {{kind?: "error"|"info", errorType?: string, detail?: string}} [options]
   * @returns {HTMLElement} the notice
   */
  show(text, { kind = "error", errorType, detail } = {}) {
    const item = document.createElement("li");
    item.className = `notice notice--${kind}`;
    if (errorType) item.dataset.errorType = errorType;
    const body = document.createElement("span");
    body.className = "notice__text";
    body.textContent = text;
    if (detail) item.title = detail; // the technical cause, for whoever reports the problem
    const close = document.createElement("button");
    close.type = "button";
    close.className = "notice__close";
    close.setAttribute("aria-label", "Dismiss notice");
    close.textContent = "×";
    close.addEventListener("click", () => item.remove());
    item.append(body, close);
    this.list.prepend(item);
    while (this.list.children.length > this.max) this.list.lastElementChild.remove();
    if (this.ttlMs > 0) setTimeout(() => item.remove(), this.ttlMs);
    return item;
  }

  clear() {
    this.list.replaceChildren();
  }
}
