/**
 * The wallboard's one actions menu, opened from the Actions button of any
 * row (rows are reused as the list scrolls, so the menu is not theirs). It
 * follows the WAI-ARIA menu button pattern: Enter, Space or the arrows open
 * it, the arrows, Home and End move, Escape closes it and gives focus back to
 * the button, Tab closes it.
 * @module pages/wallboard-menu
 */

import { menuKey } from "./menu-button.js";

export class ActionMenu {
  /**
   * @param {HTMLElement} menu an empty role="menu" element, hidden
   * @param {(key: string, value: string) => void} onSelect called with the row's key and the item's value
   */
  constructor(menu, onSelect) {
    this.menu = menu;
    this.onSelect = onSelect;
    /** The button it was opened from, and the row key it acts for. */
    this.button = null;
    this.key = null;
    menu.addEventListener("keydown", (event) => this._onKey(event));
    menu.addEventListener("click", (event) => {
      const item = event.target.closest("[role=menuitem]");
      if (!item || item.getAttribute("aria-disabled") === "true") return;
      const key = this.key;
      this.close(true);
      this.onSelect(key, item.dataset.value);
    });
    document.addEventListener("pointerdown", (event) => {
      if (this.isOpen && !menu.contains(event.target) && !this.button?.contains(event.target)) this.close();
    });
    window.addEventListener("resize", () => this.close());
  }

  get isOpen() {
    return !this.menu.hidden;
  }

  /**
   * Open for one row.
   * @param {HTMLButtonElement} button
   * @param {string} key the row's key (the agent)
   * @param {string} label what the menu is, for screen readers ("Actions for Agent 7")
   * @param {{value: string, label: string, disabled?: boolean, current?: boolean}[]} items
   * @param {"first"|"last"} [focus]
   */
  open(button, key, label, items, focus = "first") {
    if (this.isOpen) this.close();
    this.button = button;
    this.key = key;
    this.menu.setAttribute("aria-label", label);
    this.setItems(items);
    this.menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    button.setAttribute("aria-controls", this.menu.id);
    this._position();
    this._focus(focus);
  }

  /** Replace the items while open (the reasons arrived), keeping focus on the same item. */
  setItems(items) {
    const focused = this.menu.contains(document.activeElement) ? document.activeElement.dataset.value : null;
    const nodes = items.map(({ value, label, disabled, current }) => {
      const li = document.createElement("li");
      li.setAttribute("role", "menuitem");
      li.tabIndex = -1;
      li.dataset.value = value;
      li.textContent = label;
      if (disabled) li.setAttribute("aria-disabled", "true");
      if (current) li.setAttribute("aria-current", "true");
      return li;
    });
    this.menu.replaceChildren(...nodes);
    if (this.isOpen) {
      this._position();
      const same = focused === null ? undefined : nodes.find((node) => node.dataset.value === focused);
      if (same) same.focus();
      else if (focused !== null) this._focus("first");
    }
  }

  close(returnFocus = false) {
    if (!this.isOpen) return;
    this.menu.hidden = true;
    const button = this.button;
    this.button = null;
    this.key = null;
    button?.setAttribute("aria-expanded", "false");
    if (returnFocus) button?.focus();
  }

  _items() {
    return [...this.menu.querySelectorAll("[role=menuitem]")];
  }

  _focus(which) {
    const items = this._items();
    const enabled = items.filter((item) => item.getAttribute("aria-disabled") !== "true");
    const pool = enabled.length > 0 ? enabled : items;
    (which === "last" ? pool[pool.length - 1] : pool[0])?.focus();
  }

  /** Below the button, or above it when there is no room; never wider than the window. */
  _position() {
    const rect = this.button.getBoundingClientRect();
    const menu = this.menu;
    menu.style.maxWidth = `${Math.max(160, window.innerWidth - 16)}px`;
    const width = menu.offsetWidth;
    const height = menu.offsetHeight;
    const left = Math.min(Math.max(8, rect.right - width), window.innerWidth - width - 8);
    const below = rect.bottom + 4;
    const top = below + height <= window.innerHeight - 8 ? below : Math.max(8, rect.top - 4 - height);
    menu.style.left = `${Math.max(8, left)}px`;
    menu.style.top = `${top}px`;
  }

  _onKey(event) {
    menuKey(event, this._items(), (focusButton) => this.close(focusButton));
  }
}
