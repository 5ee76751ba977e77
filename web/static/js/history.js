// A delivery's history as sentences, in the chosen language. The server records each
// event as a type ("sent", "rate_limited", ...) and a detail written for operators, in
// English (db/, sending/, pixel/). Here each known type becomes a sentence; the parts of
// its detail that the server composed (attempt numbers, times, verdicts) are read out
// and said in the reader's language, and what a remote server or a provider said is
// quoted as it was. A detail in a shape this page does not know is quoted after the
// type's plain sentence; an unknown type (from a newer server) still reads as a sentence,
// which names the raw type in English only.

import { formatDateTime, language, plural, t } from "./i18n.js";

/** The sentence for one `{type, at, detail}` of `delivery` (for its channel). */
export function eventSentence(event, delivery) {
  const detail = (event.detail ?? "").trim();
  const write = SENTENCES[event.type];
  if (!write) {
    return withQuote("history.other", detail, { type: event.type.replaceAll("_", " ") });
  }
  return write(detail, delivery);
}

const quote = (text) => t("history.quote", { text: text.trim() });

function withQuote(key, text, params = {}) {
  return text.trim() ? t(`${key}.said`, { ...params, said: quote(text) }) : t(key, params);
}

/** "2026-12-03T04:41:34+00:00" as the reader's local date and time. */
function localTime(iso) {
  const instant = new Date(iso);
  return Number.isNaN(instant.getTime()) ? iso : formatDateTime(iso);
}

/** A number of seconds as "1 hour" / "90 seconds" / "1 час", in the reader's language. */
function duration(seconds) {
  const [value, unit] =
    seconds >= 3600 && seconds % 3600 === 0
      ? [seconds / 3600, "hour"]
      : seconds >= 60 && seconds % 60 === 0
        ? [seconds / 60, "minute"]
        : [seconds, "second"];
  return new Intl.NumberFormat(language(), { style: "unit", unit, unitDisplay: "long" }).format(value);
}

// Why an address is on the suppression list (inbound/bounces.py, sending/outcomes.py).
const SUPPRESSION_REASONS = [
  ["hard bounce: ", "history.reason.hardBounce"],
  ["spam complaint: ", "history.reason.complaint"],
  ["bot blocked: ", "history.reason.botBlocked"],
];

function suppressed(detail) {
  for (const [prefix, key] of SUPPRESSION_REASONS) {
    if (detail.startsWith(prefix)) {
      return t("history.suppressed.because", { reason: t(key, { said: quote(detail.slice(prefix.length)) }) });
    }
  }
  return withQuote("history.suppressed", detail);
}

// The pixel's verdict (db/opens.py): "HUMAN: <rule>; network <label>[; not counted as a
// read][; opened by one of N recipients]", the rule being "opened 0.4 s after sending"
// for an open that came too fast to be a person's.
const OPENED = /^(HUMAN|PROXY|MACHINE): (.*); network (\S+)(; not counted as a read)?(?:; opened by one of (\d+) recipients)?$/s;
const FAST = /^opened ([\d.]+) s after sending$/;

function opened(detail) {
  const match = OPENED.exec(detail);
  if (!match) return withQuote("history.opened.plain", detail);
  const [, confidence, rule, network, notCounted, recipients] = match;
  const fast = FAST.exec(rule);
  const why = fast
    ? t("history.opened.fast", { seconds: Number(fast[1]).toLocaleString(language()) })
    : t("history.opened.rule", { rule: quote(rule) });
  const where =
    network === "unknown" ? t("history.opened.unknownNetwork") : t("history.opened.network", { network });
  const parts = [t("history.opened", { who: t(`confidence.${confidence}`), why, where })];
  if (notCounted) parts.push(t("history.opened.notCounted"));
  if (recipients) {
    const count = Number(recipients);
    parts.push(t("history.opened.shared", { count, recipients: plural("recipients", count) }));
  }
  return parts.join(" ");
}

function sent(detail, delivery) {
  if (delivery.channel === "IN_APP") return t("history.sent.inApp");
  const by = /^(.*) \(by ([^()]+)\)$/s.exec(detail);
  const [reply, host] = by ? [by[1], by[2]] : [detail, null];
  const accepted = /^accepted as (\S+)$/.exec(reply);
  if (accepted) {
    return host ? t("history.sent.id.by", { host, id: accepted[1] }) : t("history.sent.id", { id: accepted[1] });
  }
  if (host) return withQuote("history.sent.by", reply, { host });
  return withQuote("history.sent", reply);
}

function failed(detail) {
  const gaveUp = /^gave up after (\d+) attempts: (.*)$/s.exec(detail);
  if (gaveUp) return t("history.failed.gaveUp", { attempts: gaveUp[1], said: quote(gaveUp[2]) });
  return withQuote("history.failed", detail);
}

// sending/outcomes.py
const RETRY = /^attempt (\d+): (.*); next at (\S+)$/s;
const HELD_BACK = /^held back: (\d+) emails to this address in ([\d.]+) s; next at (\S+)$/;

function retry(detail) {
  const match = RETRY.exec(detail);
  if (!match) return withQuote("history.retry.plain", detail);
  const [, attempt, said, next] = match;
  return t("history.retry", { attempt, said: quote(said), time: localTime(next) });
}

function heldBack(detail) {
  const match = HELD_BACK.exec(detail);
  if (!match) return withQuote("history.rateLimited.plain", detail);
  const [, limit, seconds, next] = match;
  return t("history.rateLimited", {
    emails: plural("emails", Number(limit)),
    window: duration(Number(seconds)),
    time: localTime(next),
  });
}

function delivered(detail, delivery) {
  if (delivery.channel !== "EMAIL") return t("history.delivered.provider");
  return withQuote("history.delivered", detail);
}

const SENTENCES = {
  queued: () => t("history.queued"),
  resend_requested: () => t("history.resendRequested"),
  sent,
  provider_sent: () => t("history.providerSent"),
  delivered,
  delayed: (detail) => withQuote("history.delayed", detail),
  opened,
  read: (_, delivery) => t(delivery.channel === "IN_APP" ? "history.read.inApp" : "history.read"),
  retry_scheduled: retry,
  rate_limited: heldBack,
  failed,
  bounced: (detail) => withQuote("history.bounced", detail),
  suppressed,
  auto_reply: (detail) => withQuote("history.autoReply", detail),
  complaint: (detail) => withQuote("history.complaint", detail),
};
