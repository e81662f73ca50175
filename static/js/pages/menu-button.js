/**
 * A menu button (WAI-ARIA APG pattern): a button that opens a list of
 * actions, usable with the keyboard (arrows, Home/End, Escape, Tab).
 * Used for the Not Ready reasons.
 * @module pages/menu-button
 */

/**
 * The keys of an open menu (WAI-ARIA APG): the arrows, Home and End move among
 * `items`, Enter and Space choose, Escape closes and gives focus back to the
 * button (`close(true)`), Tab closes. Shared by every menu of the pages.
 * @param {KeyboardEvent} event
 * @param {HTMLElement[]} items the menu's items, in order
 * @param {(focusButton?: boolean) => void} close
 */
export function menuKey(event, items, close) {
  const index = items.indexOf(document.activeElement);
  const move = (to) => {
    event.preventDefault();
    items[(to + items.length) % items.length]?.focus();
  };
  switch (event.key) {
    case "ArrowDown": move(index + 1); break;
    case "ArrowUp": move(index - 1); break;
    case "Home": move(0); break;
    case "End": move(items.length - 1); break;
    case "Escape": event.preventDefault(); close(true); break;
    case "Tab": close(); break;
    case "Enter":
    case " ":
      event.preventDefault();
      document.activeElement?.click();
      break;
    default: break;
  }
}

export class MenuButton {
  /**
   * @param {HTMLButtonElement} button carries aria-haspopup="menu" and aria-controls
   * @param {HTMLElement} menu the role="menu" element it opens
   * @param {(value: string) => void} onSelect called with the chosen item's value
   */
  constructor(button, menu, onSelect) {
    this.button = button;
    this.menu = menu;
    this.onSelect = onSelect;
    button.addEventListener("click", () => (this.isOpen ? this.close() : this.open()));
    button.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        this.open(event.key === "ArrowUp" ? "last" : "first");
      }
    });
    menu.addEventListener("keydown", (event) => this._onMenuKey(event));
    menu.addEventListener("click", (event) => {
      const item = event.target.closest("[role=menuitem]");
      if (!item || item.getAttribute("aria-disabled") === "true") return;
      this.close(true);
      this.onSelect(item.dataset.value);
    });
    document.addEventListener("pointerdown", (event) => {
      if (this.isOpen && !menu.contains(event.target) && !button.contains(event.target)) this.close();
    });
  }

  get isOpen() {
    return !this.menu.hidden;
  }

  /**
   * Replace the items.
   * @param {{value: string, label: string, disabled?: boolean, current?: boolean}[]} items
   */
  setItems(items) {
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
    if (nodes.length === 0) {
      const li = document.createElement("li");
      li.setAttribute("role", "menuitem");
      li.setAttribute("aria-disabled", "true");
      li.tabIndex = -1;
      li.textContent = "No reasons available";
      nodes.push(li);
    }
    this.menu.replaceChildren(...nodes);
  }

  open(focus = "first") {
    this.menu.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    const items = this._items();
    const target = focus === "last" ? items[items.length - 1] : items[0];
    target?.focus();
  }

  close(returnFocus = false) {
    if (!this.isOpen) return;
    this.menu.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    if (returnFocus) this.button.focus();
  }

  _items() {
    return [...this.menu.querySelectorAll("[role=menuitem]")];
  }

  _onMenuKey(event) {
    menuKey(event, this._items(), (focusButton) => this.close(focusButton));
  }
}
