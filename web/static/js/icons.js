// The delivery-status icon: a distinct inline SVG per state, always with a text label
// (colour is never the only cue) and a tooltip. It is a <button>, so it can be reached
// with Tab and opened with Enter or Space like any other control.

import { h, replaceChildren, s } from "./dom.js";
import { formatDateTime, plural, stateLabel, t } from "./i18n.js";
import { getStatus } from "./store.js";

export const STATES = ["QUEUED", "SENT", "FAILED", "READ"];

const COUNT_FIELD = { QUEUED: "queued", SENT: "sent", FAILED: "failed", READ: "read" };

// 20×20 line drawings in currentColor: a clock, a paper plane, a warning sign and a
// double tick, so that the four states differ in shape as well as in colour.
const DRAWINGS = {
  QUEUED: () => [s("circle", { cx: 10, cy: 10, r: 7.25 }), s("path", { d: "M10 5.75V10l2.75 2" })],
  SENT: () => [
    s("path", { d: "M2.75 9.25 17.25 2.75 12.5 17.25 9.5 10.75z" }),
    s("path", { d: "M9.5 10.75 17.25 2.75" }),
  ],
  FAILED: () => [
    s("path", { d: "M10 2.75 17.75 16.5H2.25z" }),
    s("path", { d: "M10 7.75v4" }),
    s("circle", { cx: 10, cy: 14.1, r: 0.4, class: "dot" }),
  ],
  READ: () => [
    s("path", { d: "M1.75 10.5 5.25 14l7-8" }),
    s("path", { d: "M9.25 13.25 10 14l7.25-8" }),
  ],
};

export function stateIcon(state) {
  return s(
    "svg",
    {
      class: "state-icon",
      viewBox: "0 0 20 20",
      width: 18,
      height: 18,
      "aria-hidden": "true",
      focusable: "false",
      "data-icon": state.toLowerCase(),
    },
    DRAWINGS[state](),
  );
}

/** A non-interactive badge: the state's icon and label (rows of the details popup). */
export function statePill(state) {
  return h(
    "span",
    { class: `pill state--${state.toLowerCase()}`, dataset: { state }, title: t(`hint.${state}`) },
    stateIcon(state),
    h("span", {}, stateLabel(state)),
  );
}

/**
 * The slot where an item's icon lives. It stays empty while the item has no deliveries
 * or its account has no tracking (deliveryStatus null); `refreshSlot` redraws it.
 */
export function statusSlot(key, onOpen) {
  const slot = h("span", { class: "status-slot", dataset: { statusKey: key } });
  slot.openDetails = onOpen;
  refreshSlot(slot);
  return slot;
}

/** Redraw a slot from the store. The button is updated in place so that it keeps focus. */
export function refreshSlot(slot) {
  const status = getStatus(slot.dataset.statusKey);
  let button = slot.querySelector("button");
  if (!status || status.total === 0) {
    button?.remove();
    return;
  }
  if (!button) {
    button = h("button", {
      type: "button",
      class: "status",
      "aria-haspopup": "dialog",
      onclick: () => slot.openDetails(button),
    });
    slot.append(button);
  }
  drawButton(button, status);
}

function drawButton(button, status) {
  const { state, total } = status;
  const count = status[COUNT_FIELD[state]];
  const label = stateLabel(state);
  button.className = `status state--${state.toLowerCase()}`;
  button.dataset.state = state;
  button.dataset.total = String(total);
  // Held back by the recipient rate limit: queued, but not before `heldUntil`. Shown
  // beside the count, so that "Queued" does not hide a wait of many minutes.
  const held = status.heldBack > 0 ? t("icon.heldBack", { count: status.heldBack }) : "";
  button.dataset.heldBack = String(status.heldBack ?? 0);
  button.title = `${label}: ${t(`hint.${state}`)}.\n${breakdown(status)}${held ? `\n${heldLine(status)}` : ""}`;
  replaceChildren(
    button,
    stateIcon(state),
    h("span", { class: "status__label" }, label),
    total > 1 ? h("span", { class: "status__count" }, `${count}/${total}`) : null,
    held ? h("span", { class: "status__count status__held" }, held) : null,
  );
  // The name starts with the visible label (so voice control finds it by what it shows)
  // and reads the count as words: "Sent 2 of 3, show delivery details".
  const counted = total > 1 ? ` ${t("icon.count", { count, total })}` : "";
  const heldName = held ? `, ${held}` : "";
  button.setAttribute("aria-label", `${label}${counted}${heldName}, ${t("icon.details")}`);
}

/** "Held back by the rate limit: 1, the first until 12:30:00" */
function heldLine(status) {
  return t("icon.heldUntil", { count: status.heldBack, time: formatDateTime(status.heldUntil) });
}

/** "3 recipients: Sent 1, Read 1, Send error 1" */
function breakdown(status) {
  const parts = STATES.filter((state) => status[COUNT_FIELD[state]] > 0).map(
    (state) => `${stateLabel(state)}: ${status[COUNT_FIELD[state]]}`,
  );
  return t("icon.breakdown", { recipients: plural("recipients", status.total), counts: parts.join(", ") });
}
