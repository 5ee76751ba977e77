// Delivery rates: the last seven days (UTC) of `deliveryStats` as a small bar chart,
// drawn here as inline SVG (no library, nothing from a CDN). Each day has one bar per
// outcome; every bar carries its number (data-value, and a <title> for a tooltip), and
// the legend under the chart gives the week's totals.

import { DELIVERY_STATS, graphql } from "./api.js";
import { byId, h, replaceChildren, s } from "./dom.js";
import { t } from "./i18n.js";

export const OUTCOMES = ["sent", "failed", "readByPeople", "readByMachines", "bounced"];
const DAYS = 7;
const DAY_MS = 86_400_000;
// The chart's own units (the SVG scales to the card's width).
const WIDTH = 280;
const HEIGHT = 110;
const AXIS = 16; // room for the day labels under the bars
// After a live update, read again at most this often; an account whose rates take long
// to count (the query counts every active delivery) waits 20 times as long as the last
// read took, so that a busy account's dashboards do not keep its database counting.
const REFRESH_MS = 3_000;
const REFRESH_FACTOR = 20;

const zero = () => Object.fromEntries(OUTCOMES.map((outcome) => [outcome, 0]));

export class RatesChart {
  constructor({ failed }) {
    this.failed = failed;
    this.stats = null;
    this.timer = null;
    this.tookMs = 0;
    byId("rates-channel").addEventListener("change", () => this.render());
  }

  /** Read the week again (signed in on a plan with tracking). */
  async load() {
    const today = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS);
    const since = new Date(today.getTime() - (DAYS - 1) * DAY_MS);
    const started = performance.now();
    const data = await graphql(DELIVERY_STATS, {
      since: since.toISOString(),
      until: new Date(today.getTime() + DAY_MS).toISOString(),
      bucket: "DAY",
    });
    this.tookMs = performance.now() - started;
    this.stats = data.deliveryStats;
    this.render();
  }

  show(visible) {
    byId("rates-panel").hidden = !visible;
    if (!visible) {
      clearTimeout(this.timer);
      this.timer = null;
      this.stats = null;
    }
  }

  /** A delivery changed: read again soon (updates come in bursts). */
  changed() {
    if (this.stats === null || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load().catch(this.failed);
    }, Math.max(REFRESH_MS, REFRESH_FACTOR * this.tookMs));
  }

  /** The days shown (oldest first), each with its counts for the chosen channel(s). */
  days() {
    const chosen = byId("rates-channel").value;
    const series = this.stats.channels.filter((c) => !chosen || c.channel === chosen);
    const start = Date.parse(this.stats.since);
    return Array.from({ length: DAYS }, (_, i) => {
      const counts = zero();
      for (const channel of series) {
        const bucket = channel.buckets[i];
        for (const outcome of OUTCOMES) counts[outcome] += bucket?.[outcome] ?? 0;
      }
      return { start: new Date(start + i * DAY_MS), counts };
    });
  }

  render() {
    if (!this.stats) return;
    this.renderChannels();
    const days = this.days();
    const totals = zero();
    for (const day of days) for (const outcome of OUTCOMES) totals[outcome] += day.counts[outcome];
    const top = Math.max(1, ...days.flatMap((day) => OUTCOMES.map((o) => day.counts[o])));
    const slot = WIDTH / DAYS;
    const bar = (slot - 6) / OUTCOMES.length;
    const plot = HEIGHT - AXIS;
    const label = (date) => date.toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });

    const svg = s(
      "svg",
      {
        class: "rates__svg",
        viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
        role: "img",
        "aria-label": t("rates.summary", {
          days: DAYS,
          ...Object.fromEntries(OUTCOMES.map((o) => [o, totals[o]])),
        }),
      },
      s("line", { class: "rates__axis", x1: 0, x2: WIDTH, y1: plot + 0.5, y2: plot + 0.5 }),
      days.map((day, i) => {
        const x = i * slot + 3;
        const iso = day.start.toISOString().slice(0, 10);
        return s(
          "g",
          { class: "rates__day", dataset: { day: iso } },
          OUTCOMES.map((outcome, j) => {
            const value = day.counts[outcome];
            const height = value ? Math.max(1, (value / top) * (plot - 4)) : 0;
            return s(
              "rect",
              {
                class: `rates__bar rates__bar--${outcome}`,
                x: (x + j * bar).toFixed(2),
                y: (plot - height).toFixed(2),
                width: Math.max(bar - 1, 1).toFixed(2),
                height: height.toFixed(2),
                dataset: { outcome, value },
              },
              s("title", {}, `${label(day.start)}: ${t(`rates.${outcome}`)} ${value}`),
            );
          }),
          s("text", { class: "rates__label", x: (x + (slot - 6) / 2).toFixed(2), y: HEIGHT - 3 }, label(day.start)),
        );
      }),
    );
    replaceChildren(byId("rates-chart"), svg);
    replaceChildren(
      byId("rates-legend"),
      OUTCOMES.map((outcome) =>
        h(
          "li",
          { dataset: { outcome } },
          h("span", { class: `rates__swatch rates__bar--${outcome}`, "aria-hidden": "true" }),
          h("span", { class: "rates__name" }, t(`rates.${outcome}`)),
          " ",
          h("strong", { class: "rates__total" }, totals[outcome]),
        ),
      ),
    );
  }

  renderChannels() {
    const select = byId("rates-channel");
    const wanted = ["", ...this.stats.channels.map((c) => c.channel)];
    const shown = [...select.options].map((option) => option.value);
    if (wanted.join() === shown.join()) {
      select.options[0].textContent = t("rates.allChannels");
      return;
    }
    const chosen = wanted.includes(select.value) ? select.value : "";
    replaceChildren(
      select,
      wanted.map((value) => h("option", { value }, value || t("rates.allChannels"))),
    );
    select.value = chosen;
  }
}
