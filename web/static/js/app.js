// The dashboard's entry point: sign-in, the header, the views, and the one live
// subscription that keeps every icon (and an open popup) current.

import {
  DELIVERY_UPDATED,
  LIFT_SUPPRESSION,
  ME,
  REDEEM_INVITATION,
  RESEND,
  TASK_OVERALL,
  graphql,
  tokenStore,
} from "./api.js";
import { Bell } from "./bell.js";
import { byId, h } from "./dom.js";
import { Feed } from "./feed.js";
import { LANGUAGES, language, onLanguageChange, setLanguage, t, translatePage } from "./i18n.js";
import { refreshSlot } from "./icons.js";
import { DetailsDialog } from "./popup.js";
import { RatesChart } from "./rates.js";
import * as store from "./store.js";
import { TaskList } from "./tasks.js";
import { LiveSocket, graphqlSocketUrl } from "./ws.js";

const session = { account: null, viewer: null, live: null, liveStatus: "connecting" };

// The width below which css/app.css stacks the sidebar above the feed.
const ONE_COLUMN = window.matchMedia("(max-width: 800px)");

const details = new DetailsDialog({
  describe: (key) => feed.describe(key) || taskTitle(key),
  resend: async (deliveryId) => {
    const data = await graphql(RESEND, { id: deliveryId });
    store.mergeDelivery(data.resendDelivery);
  },
  lift: async (channel, address) => {
    await graphql(LIFT_SUPPRESSION, { channel, address });
    store.suppressionLifted(channel, address);
  },
  // Only a task list's icon comes without its deliveries.
  load: async (key) => {
    const token = store.snapshotToken();
    const id = key.slice("overall:".length);
    const data = await graphql(TASK_OVERALL, { id, includeSystem: feed.includeSystem });
    store.setSnapshot(key, data.task?.overallStatus ?? null, token);
  },
});

const openDetails = (key, opener) => details.open(key, opener);
const failed = (error) => showError(error);

const tasks = new TaskList({
  openDetails,
  select: (id) => navigate(id),
  failed,
  includeSystem: () => feed.includeSystem,
});
const feed = new Feed({
  openDetails,
  failed,
  loaded: (task) => tasks.updateTask(task),
});
const rates = new RatesChart({ failed });
const bell = new Bell({ open: (id) => navigate(id), failed });

function taskTitle(key) {
  const [kind, id] = key.split(":");
  const title = tasks.title(id);
  if (!title) return "";
  if (kind === "overall") return t("details.forTaskAll", { title });
  return kind === "task" ? t("details.forTask", { title }) : "";
}

// ------------------------------------------------------------------ sign-in

async function signIn(token, { remembered = false } = {}) {
  let me;
  try {
    me = await graphql(ME, {}, token);
  } catch (error) {
    if (error.unauthenticated) {
      tokenStore.clear();
      showSignIn(t(remembered ? "signIn.expired" : "signIn.bad"));
    } else {
      showSignIn(t("error.network", { message: error.message }));
    }
    return;
  }
  tokenStore.set(token);
  session.account = me.account;
  session.viewer = me.viewer;
  // css/app.css hides what this role may not use (the server refuses it anyway).
  document.body.dataset.role = me.viewer.role ?? "";
  showDashboard();
  startLive();
  // Rates are tracking data: not on FREE.
  const tracked = me.account.plan !== "FREE";
  rates.show(tracked);
  await Promise.all([tasks.reload(), tasks.loadPeople(), tracked && rates.load()]).catch(failed);
  await route();
}

function signOut(message = "") {
  session.live?.stop();
  session.live = null;
  session.account = null;
  session.viewer = null;
  delete document.body.dataset.role;
  bell.reset();
  tokenStore.clear();
  store.clear();
  details.close();
  feed.close();
  rates.show(false);
  byId("app-error").hidden = true;
  showSignIn(message);
}

function showSignIn(message = "") {
  byId("sign-in").hidden = false;
  byId("invitation").hidden = true;
  byId("dashboard").hidden = true;
  for (const id of HEADER_ITEMS) byId(id).hidden = true;
  const error = byId("sign-in-error");
  error.textContent = message;
  const input = byId("token");
  input.setAttribute("aria-invalid", String(Boolean(message)));
  input.focus();
}

// What the header shows only to someone signed in.
const HEADER_ITEMS = ["account", "viewer", "live", "bell", "sign-out"];

function showDashboard() {
  byId("sign-in").hidden = true;
  byId("dashboard").hidden = false;
  byId("sign-in-error").textContent = "";
  byId("token").value = "";
  byId("invitation").hidden = true;
  for (const id of HEADER_ITEMS) byId(id).hidden = false;
  drawHeader();
}

function drawHeader() {
  const account = session.account;
  if (!account) return;
  const accountLine = t("header.account", { name: account.name, plan: account.plan });
  byId("account").textContent = accountLine;
  byId("account").title = accountLine; // a long name is cut short on a phone
  byId("free-plan").hidden = account.plan !== "FREE";
  const viewer = session.viewer;
  if (viewer) byId("viewer").textContent = t("header.viewer", { name: viewer.name, role: viewer.role ?? "" });
  bell.render();
  drawLive();
}

function drawLive() {
  const live = byId("live");
  const status = session.liveStatus;
  live.dataset.status = status;
  live.textContent = t(`live.${status}`);
  live.title = status === "online" ? t("live.onlineTitle") : status === "offline" ? t("live.offlineTitle") : "";
}

// ------------------------------------------------------------------ live updates

function startLive() {
  session.live?.stop();
  const live = new LiveSocket({
    url: graphqlSocketUrl(),
    token: () => tokenStore.get() ?? "",
    onStatus: (status) => {
      session.liveStatus = status;
      drawLive();
    },
    // Nothing published while the socket was down is replayed: read it all again.
    onReconnected: () => repair(),
    onForbidden: () => signOut(t("signIn.expired")),
  });
  live.subscribe(DELIVERY_UPDATED, {}, {
    next: (data) => {
      if (data?.deliveryUpdated) applyUpdate(data.deliveryUpdated);
    },
    error: (errors) => showError(new Error(errors.map((e) => e.message).join("; "))),
  });
  bell.follow(live);
  session.live = live;
  live.start();
}

function applyUpdate(update) {
  const key = update.commentId ? store.commentKey(update.commentId) : store.taskKey(update.taskId);
  store.applyUpdate(key, update.status, update.delivery);
  if (tasks.has(update.taskId)) {
    const overall = feed.includeSystem ? update.taskStatusWithSystem : update.taskStatus;
    store.applyOverall(store.overallKey(update.taskId), overall, update.delivery);
  }
  if (update.commentId) feed.commentUpdated(update.taskId, update.commentId);
  else if (!tasks.has(update.taskId)) tasks.scheduleReload();
  rates.changed();
}

async function repair() {
  rates.changed();
  await Promise.all([tasks.reload(), feed.reload()]).catch(failed);
}

// ------------------------------------------------------------------ navigation

function navigate(id) {
  const hash = `#/tasks/${encodeURIComponent(id)}`;
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  if (!session.account) return;
  const match = /^#\/tasks\/([^/]+)$/.exec(location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  tasks.markCurrent(id);
  if (!id) {
    feed.close();
    return;
  }
  await feed.open(id).catch(failed);
  // One column (a phone): the feed is below the whole sidebar, out of sight. Bring it
  // into view, and focus its heading so that a screen reader announces it.
  if (ONE_COLUMN.matches && !byId("feed").hidden) {
    byId("feed").scrollIntoView({ block: "start" });
    byId("feed-title").focus({ preventScroll: true });
  }
}

/** Back from a task's feed to the list, on a phone: where the current task is. */
function backToTasks() {
  const current = document.querySelector(".task-link[aria-current]") ?? byId("tasks-title");
  current.scrollIntoView({ block: "center" });
  current.focus({ preventScroll: true });
}

// ------------------------------------------------------------------ errors

function showError(error) {
  if (error?.unauthenticated) {
    signOut(t("signIn.expired"));
    return;
  }
  console.error(error);
  byId("app-error").hidden = false;
  byId("app-error-text").textContent =
    error?.code === "NETWORK" ? t("error.network", { message: error.message }) : String(error?.message ?? error);
}

// ------------------------------------------------------------------ invitations

/** The page an invitation link opens. Redeeming is a POST (a mutation) made on a click,
 * so a mail scanner that fetches the link uses nothing up; the secret is in the
 * fragment, which no server or proxy log sees. */
function showInvitation(secret) {
  byId("sign-in").hidden = true;
  byId("dashboard").hidden = true;
  byId("invitation").hidden = false;
  const accept = byId("invitation-accept");
  accept.focus();
  accept.addEventListener("click", async () => {
    accept.disabled = true;
    accept.textContent = t("invite.accepting");
    let redeemed;
    try {
      redeemed = (await graphql(REDEEM_INVITATION, { secret }, null)).redeemInvitation;
    } catch (error) {
      byId("invitation-error").textContent =
        error.code === "NETWORK" ? t("error.network", { message: error.message }) : t("invite.refused");
      accept.hidden = true;
      return;
    } finally {
      history.replaceState(null, "", "/"); // a reload must not try the used link again
    }
    accept.hidden = true;
    byId("invitation-secret").textContent = redeemed.secret;
    byId("invitation-token").hidden = false;
    const next = byId("invitation-continue");
    next.addEventListener("click", () => signIn(redeemed.secret));
    next.focus();
  });
}

// ------------------------------------------------------------------ start

function redrawForLanguage() {
  translatePage();
  drawHeader();
  tasks.render();
  tasks.renderPeople();
  feed.render();
  rates.render();
  for (const slot of document.querySelectorAll(".status-slot")) refreshSlot(slot);
}

/** The mailbox exists only in embedded mode: ask for it rather than keep a flag. */
async function showMailboxLink() {
  try {
    const response = await fetch("/mailbox/messages.json", { method: "HEAD" });
    byId("mailbox-link").hidden = !response.ok;
  } catch {
    byId("mailbox-link").hidden = true;
  }
}

function start() {
  const select = byId("language");
  for (const [code, name] of Object.entries(LANGUAGES)) {
    select.append(h("option", { value: code, lang: code }, name));
  }
  select.value = language();
  select.addEventListener("change", () => setLanguage(select.value));
  onLanguageChange(() => {
    select.value = language();
    redrawForLanguage();
  });
  translatePage();

  store.onChange((key) => {
    for (const slot of document.querySelectorAll(`[data-status-key="${CSS.escape(key)}"]`)) {
      refreshSlot(slot);
    }
  });

  byId("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = byId("token").value.trim();
    if (!token) {
      showSignIn(t("signIn.empty"));
      return;
    }
    signIn(token);
  });
  byId("sign-out").addEventListener("click", () => signOut());
  byId("feed-back").addEventListener("click", () => backToTasks());
  byId("app-error-close").addEventListener("click", () => {
    byId("app-error").hidden = true;
  });
  window.addEventListener("hashchange", () => route());
  window.addEventListener("beacon:unauthenticated", () => signOut(t("signIn.expired")));

  showMailboxLink();
  const invitation = /^#\/invitation\/([^/]+)$/.exec(location.hash);
  if (invitation) {
    showInvitation(decodeURIComponent(invitation[1]));
    return;
  }
  const remembered = tokenStore.get();
  if (remembered) signIn(remembered, { remembered: true });
  else showSignIn();
}

start();
