// The details popup: one row per delivery of a task or comment. It is the page's one
// <dialog>, opened with showModal() so the browser makes the rest of the page inert
// (focus cannot wander behind it) and Escape closes it; on close, focus goes back to
// the icon that opened it. While open, it redraws whenever its item's status changes.

import { byId, h, replaceChildren } from "./dom.js";
import { eventSentence } from "./history.js";
import { formatDateTime, onLanguageChange, t, timeZone } from "./i18n.js";
import { statePill } from "./icons.js";
import { getStatus, onChange } from "./store.js";

const TIME_FIELDS = ["queuedAt", "sentAt", "failedAt", "readAt"];

export class DetailsDialog {
  /**
   * @param {object} options
   * @param {(key: string) => string} options.describe  the subtitle: which task or comment
   * @param {(deliveryId: string) => Promise<void>} options.resend
   * @param {(channel: string, address: string) => Promise<void>} options.lift  the suppression
   * @param {(key: string) => Promise<void>} options.load  the deliveries of a status that
   *   has only its counts (a task list's icon)
   */
  constructor({ describe, resend, lift, load }) {
    this.dialog = byId("details");
    this.list = byId("details-list");
    this.subtitle = byId("details-subtitle");
    this.zone = byId("details-zone");
    this.describe = describe;
    this.resend = resend;
    this.lift = lift;
    this.load = load;
    this.loading = null; // the key whose deliveries are being read
    this.key = null;
    this.opener = null;
    this.expanded = new Set(); // delivery ids whose history is unfolded
    this.rowErrors = new Map(); // delivery id -> the last resend or lift error

    byId("details-close").addEventListener("click", () => this.dialog.close());
    // The dialog's box has no padding of its own, so a click whose target is the
    // <dialog> itself landed on the backdrop.
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.dialog.close();
    });
    this.dialog.addEventListener("close", () => this.closed());
    onChange((key) => {
      if (key === this.key) this.render();
    });
    onLanguageChange(() => {
      if (this.key) this.render();
    });
  }

  get openKey() {
    return this.key;
  }

  open(key, opener) {
    this.key = key;
    this.opener = opener;
    this.rowErrors.clear();
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
    byId("details-close").focus();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  closed() {
    const key = this.key;
    this.key = null;
    // The icon may have been redrawn (a refetched feed) while the popup was open: then
    // focus its successor, found by the same key.
    let target = this.opener;
    if (!target?.isConnected) {
      target = document.querySelector(`[data-status-key="${CSS.escape(key ?? "")}"] button`);
    }
    target?.focus();
    this.opener = null;
  }

  render() {
    const status = getStatus(this.key);
    this.subtitle.textContent = this.describe(this.key);
    this.zone.textContent = t("details.timeZone", { zone: timeZone() });
    // Keep focus on the same control across the redraw (e.g. on a row's Resend button).
    const focusId = this.list.contains(document.activeElement)
      ? document.activeElement.dataset.focusId
      : undefined;
    if (status && !status.deliveries) {
      replaceChildren(this.list, h("li", { class: "muted" }, t("feed.loading")));
      this.loadDeliveries(this.key);
      return;
    }
    const deliveries = status?.deliveries ?? [];
    replaceChildren(
      this.list,
      deliveries.length ? deliveries.map((d) => this.row(d)) : h("li", { class: "muted" }, t("details.none")),
    );
    if (focusId) {
      const again = this.list.querySelector(`[data-focus-id="${CSS.escape(focusId)}"]`);
      (again ?? byId("details-close")).focus();
    }
  }

  row(delivery) {
    const facts = TIME_FIELDS.filter((field) => delivery[field]).map((field) =>
      fact(t(`details.${field}`), h("time", { datetime: delivery[field] }, formatDateTime(delivery[field])), field),
    );
    if (delivery.readConfidence) {
      // Who loaded the pixel: a person's mail client, an image proxy, or a machine.
      facts.push(fact(t("details.readConfidence"), t(`confidence.${delivery.readConfidence}`), "readConfidence"));
    }
    if (delivery.acceptedBy) facts.push(fact(t("details.acceptedBy"), delivery.acceptedBy, "acceptedBy"));
    if (delivery.heldUntil) {
      // The recipient rate limit: queued, and not tried before then.
      const until = h("time", { datetime: delivery.heldUntil }, formatDateTime(delivery.heldUntil));
      facts.push(fact(t("details.heldUntil"), until, "heldUntil"));
    }
    facts.push(fact(t("details.attempts"), String(delivery.attempts), "attempts"));

    const error = delivery.error;
    const suppression = delivery.suppression;
    const rowError = this.rowErrors.get(delivery.id);
    return h(
      "li",
      { class: "delivery", dataset: { deliveryId: delivery.id, state: delivery.state } },
      h(
        "div",
        { class: "delivery__head" },
        h(
          "div",
          { class: "delivery__who" },
          h("strong", { class: "delivery__name" }, delivery.recipient.name),
          h("span", { class: "channel" }, t(`channel.${delivery.channel}`)),
          h("span", { class: "address" }, delivery.address),
        ),
        statePill(delivery.state),
        // A resend to a suppressed address would only fail again: lift it first.
        delivery.state === "FAILED" && !suppression
          ? h(
              "button",
              {
                type: "button",
                class: "button button--small",
                dataset: { focusId: `resend:${delivery.id}` },
                onclick: (event) => this.resendClicked(event.currentTarget, delivery.id),
              },
              t("details.resend"),
            )
          : null,
      ),
      h("dl", { class: "facts" }, facts),
      error
        ? h(
            "div",
            { class: "delivery__error", dataset: { field: "error" } },
            h("span", { class: "error__title" }, `${t("details.error")}:`),
            h("code", { class: "error__code" }, error.code),
            h("span", { class: "error__message" }, error.message),
            h("span", { class: "error__kind" }, `(${t(error.permanent ? "details.permanent" : "details.temporary")})`),
          )
        : null,
      suppression ? this.suppressionNotice(delivery.id, suppression) : null,
      rowError ? h("p", { class: "form-error", role: "alert" }, rowError) : null,
      this.history(delivery),
    );
  }

  suppressionNotice(deliveryId, suppression) {
    return h(
      "div",
      { class: "delivery__suppression", dataset: { field: "suppression" } },
      h(
        "p",
        {},
        t("details.suppressed", { since: formatDateTime(suppression.createdAt), reason: suppression.reason }),
      ),
      h(
        "button",
        {
          type: "button",
          class: "button button--small manager-only",
          dataset: { focusId: `lift:${deliveryId}` },
          onclick: (event) => this.liftClicked(event.currentTarget, deliveryId, suppression),
        },
        t("details.lift"),
      ),
    );
  }

  async liftClicked(button, deliveryId, suppression) {
    button.disabled = true;
    button.textContent = t("details.lifting");
    this.rowErrors.delete(deliveryId);
    try {
      await this.lift(suppression.channel, suppression.address); // the store redraws the row
    } catch (error) {
      this.rowErrors.set(deliveryId, error.message);
      this.render();
    }
  }

  async loadDeliveries(key) {
    if (this.loading === key) return;
    this.loading = key;
    try {
      await this.load(key); // the store's snapshot redraws
    } catch (error) {
      if (this.key === key) {
        replaceChildren(this.list, h("li", { class: "form-error", role: "alert" }, error.message));
      }
    } finally {
      this.loading = null;
    }
  }

  history(delivery) {
    const details = h(
      "details",
      { class: "history", open: this.expanded.has(delivery.id) },
      h(
        "summary",
        { dataset: { focusId: `history:${delivery.id}` } },
        t("details.history", { count: delivery.events.length }),
      ),
      h(
        "ol",
        {},
        delivery.events.map((event) =>
          h(
            "li",
            { dataset: { event: event.type } },
            h("time", { datetime: event.at }, formatDateTime(event.at)),
            h("span", { class: "event__text" }, eventSentence(event, delivery)),
          ),
        ),
      ),
    );
    details.addEventListener("toggle", () => {
      if (details.open) this.expanded.add(delivery.id);
      else this.expanded.delete(delivery.id);
    });
    return details;
  }

  async resendClicked(button, deliveryId) {
    button.disabled = true;
    button.textContent = t("details.resending");
    this.rowErrors.delete(deliveryId);
    try {
      await this.resend(deliveryId); // the store's update redraws the row
    } catch (error) {
      this.rowErrors.set(deliveryId, error.message);
      this.render();
    }
  }
}

function fact(label, value, field) {
  return h("div", { class: "fact" }, h("dt", {}, label), h("dd", { dataset: { field } }, value));
}
