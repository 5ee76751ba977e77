// The bell: the signed-in person's unread in-app notifications, counted live (the
// `unreadCount` subscription), and a panel that lists them; opening one marks it read
// and shows its task.

import { MARK_ALL_READ, MARK_READ, MY_NOTIFICATIONS, UNREAD_COUNT, graphql } from "./api.js";
import { byId, h, replaceChildren } from "./dom.js";
import { formatDateTime, t } from "./i18n.js";

const PAGE = 30;

export class Bell {
  /**
   * @param {object} options
   * @param {(taskId: string) => void} options.open  show a task
   * @param {(error: Error) => void} options.failed
   */
  constructor({ open, failed }) {
    this.open = open;
    this.failed = failed;
    this.count = 0;
    this.items = [];
    byId("bell").addEventListener("click", () => this.toggle().catch(failed));
    byId("bell-mark-all").addEventListener("click", () => this.markAll().catch(failed));
  }

  /** Follow the count over the dashboard's websocket. */
  follow(live) {
    live.subscribe(UNREAD_COUNT, {}, {
      next: (data) => {
        if (typeof data?.unreadCount === "number") this.setCount(data.unreadCount);
      },
      error: (errors) => this.failed(new Error(errors.map((e) => e.message).join("; "))),
    });
  }

  get isOpen() {
    return !byId("bell-panel").hidden;
  }

  setCount(count) {
    const changed = count !== this.count;
    this.count = count;
    this.render();
    if (changed && this.isOpen) this.load().catch(this.failed);
  }

  async toggle() {
    const panel = byId("bell-panel");
    panel.hidden = !panel.hidden;
    byId("bell").setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) await this.load();
  }

  async load() {
    const data = await graphql(MY_NOTIFICATIONS, { first: PAGE });
    this.items = data.viewer.notifications.edges.map((edge) => edge.node);
    this.count = data.viewer.unreadCount;
    this.render();
  }

  async markAll() {
    await graphql(MARK_ALL_READ);
    await this.load();
  }

  async opened(item) {
    if (item.state !== "READ") {
      await graphql(MARK_READ, { id: item.id });
      item.state = "READ";
    }
    this.close();
    this.open(item.taskId);
  }

  close() {
    byId("bell-panel").hidden = true;
    byId("bell").setAttribute("aria-expanded", "false");
  }

  reset() {
    this.close();
    this.count = 0;
    this.items = [];
    this.render();
  }

  render() {
    const label = t("bell.label", { count: this.count });
    byId("bell").setAttribute("aria-label", label);
    byId("bell").title = label;
    byId("bell-count").textContent = String(this.count);
    byId("bell-count").hidden = this.count === 0;
    byId("bell-mark-all").disabled = this.count === 0;
    byId("bell-empty").hidden = this.items.length > 0;
    replaceChildren(
      byId("bell-list"),
      this.items.map((item) =>
        h(
          "li",
          { class: item.state === "READ" ? "bell__item" : "bell__item bell__item--unread" },
          h(
            "button",
            {
              type: "button",
              class: "bell__open",
              dataset: { deliveryId: item.id },
              onclick: () => this.opened(item).catch(this.failed),
            },
            h("span", { class: "bell__text" }, item.text),
            h("span", { class: "bell__meta muted small" }, `${item.taskTitle} · ${formatDateTime(item.createdAt)}`),
          ),
        ),
      ),
    );
  }
}
