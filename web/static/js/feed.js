// The open task's feed: its title, subscribers and icon, its comments (each with its
// icon), the "show system comments" toggle (the `includeSystem` argument) and the form
// to add a comment.
//
// Comments read oldest first, like a conversation, and the feed opens at the newest
// ones: the API pages backwards (`last`/`before`), and "Show earlier comments" above the
// list loads the page before. So a comment just added (here, or elsewhere and announced
// by the subscription) always belongs at the end of what is shown, however long the task.

import { ADD_COMMENT, FEED, graphql } from "./api.js";
import { byId, h, reconcile, submitting } from "./dom.js";
import { formatDateTime, t } from "./i18n.js";
import { refreshSlot, statusSlot } from "./icons.js";
import { commentKey, setSnapshot, snapshotToken, taskKey } from "./store.js";

const PAGE = 50;
const MAX_PAGE = 200;
const SYSTEM_KEY = "beacon.includeSystem";

export class Feed {
  /**
   * @param {object} options
   * @param {(key: string, opener: HTMLElement) => void} options.openDetails
   * @param {(task: object) => void} options.loaded  the task's fresh title etc.
   * @param {(error: Error) => void} options.failed
   */
  constructor({ openDetails, loaded, failed }) {
    this.openDetails = openDetails;
    this.loaded = loaded;
    this.failed = failed;
    this.taskId = null;
    this.task = null;
    this.comments = [];
    this.pageInfo = { hasPreviousPage: false, startCursor: null };
    this.reloadTimer = 0;
    this.absent = new Set(); // comment ids that a reload did not bring (hidden system ones)
    this.list = byId("comment-list");
    this.toggle = byId("show-system");
    this.toggle.checked = localStorage.getItem(SYSTEM_KEY) === "true";

    const taskSlot = statusSlot("", (opener) => this.openDetails(taskKey(this.taskId), opener));
    byId("feed-task-status").append(taskSlot);
    this.taskSlot = taskSlot;

    this.toggle.addEventListener("change", () => {
      localStorage.setItem(SYSTEM_KEY, String(this.toggle.checked));
      this.absent.clear();
      this.comments = []; // another list: it opens at its newest page
      this.reload().catch(this.failed);
    });
    byId("comments-more").addEventListener("click", () => this.loadEarlier().catch(this.failed));
    byId("comment-form").addEventListener("submit", (event) => this.addComment(event));
  }

  get includeSystem() {
    return this.toggle.checked;
  }

  async open(id) {
    if (id !== this.taskId) {
      this.taskId = id;
      this.task = null;
      this.comments = [];
      this.absent.clear();
      this.render();
    }
    await this.reload();
  }

  close() {
    this.taskId = null;
    this.task = null;
    this.comments = [];
    this.render();
  }

  async reload() {
    if (!this.taskId) return;
    const id = this.taskId;
    const token = snapshotToken();
    // As many of the newest as are shown, and room for the one that prompted the reload.
    const last = Math.min(MAX_PAGE, Math.max(PAGE, this.comments.length + 1));
    const data = await graphql(FEED, { id, includeSystem: this.includeSystem, last });
    if (id !== this.taskId) return; // another task was opened meanwhile
    if (!data.task) {
      this.task = null;
      this.comments = [];
      this.render(t("feed.notFound"));
      return;
    }
    this.task = data.task;
    const { edges, pageInfo } = this.sinceEarliestShown(data.task.comments);
    this.comments = edges.map((edge) => edge.node);
    this.pageInfo = pageInfo;
    setSnapshot(taskKey(id), data.task.deliveryStatus, token);
    for (const comment of this.comments) {
      setSnapshot(commentKey(comment.id), comment.deliveryStatus, token);
    }
    this.render();
    this.loaded(this.task);
  }

  /**
   * A reload keeps the earliest comment shown as the top of the list. It asks for one
   * more than is shown, so when the comment that prompted it was already added here (its
   * live update came before the mutation's answer), the extra one is an earlier comment
   * that nobody asked to see.
   */
  sinceEarliestShown(connection) {
    const earliest = this.comments[0]?.id;
    const start = connection.edges.findIndex((edge) => edge.node.id === earliest);
    if (start <= 0) return connection;
    const edges = connection.edges.slice(start);
    return { edges, pageInfo: { hasPreviousPage: true, startCursor: edges[0].cursor } };
  }

  /** The page before the earliest comment shown, put above it. */
  async loadEarlier() {
    const id = this.taskId;
    const token = snapshotToken();
    const data = await graphql(FEED, {
      id,
      includeSystem: this.includeSystem,
      last: PAGE,
      before: this.pageInfo.startCursor,
    });
    if (!data.task || id !== this.taskId) return;
    const earlier = data.task.comments.edges.map((edge) => edge.node);
    for (const comment of earlier) setSnapshot(commentKey(comment.id), comment.deliveryStatus, token);
    const known = new Set(this.comments.map((comment) => comment.id));
    this.comments.unshift(...earlier.filter((comment) => !known.has(comment.id)));
    const { hasPreviousPage, startCursor } = data.task.comments.pageInfo;
    this.pageInfo = { hasPreviousPage, startCursor: startCursor ?? this.pageInfo.startCursor };
    this.render();
  }

  /**
   * A live update named a comment of this task that the page does not show: it was
   * added elsewhere (another tab, the API), so fetch the feed soon. A comment that a
   * reload did not bring (a system one, with the toggle off) is not asked for again.
   */
  commentUpdated(taskId, commentId) {
    if (taskId !== this.taskId || this.absent.has(commentId)) return;
    if (this.comments.some((comment) => comment.id === commentId)) return;
    this.absent.add(commentId);
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.reload().catch(this.failed), 250);
  }

  describe(key) {
    if (key === taskKey(this.taskId) && this.task) return t("details.forTask", { title: this.task.title });
    const comment = this.comments.find((c) => commentKey(c.id) === key);
    if (!comment) return "";
    const body = comment.body.length > 80 ? `${comment.body.slice(0, 79)}…` : comment.body;
    return t("details.forComment", { author: this.authorName(comment), body });
  }

  render(error) {
    const task = this.task;
    byId("feed-empty").hidden = Boolean(this.taskId);
    byId("feed-task").hidden = !task;
    const errorLine = byId("feed-error");
    errorLine.hidden = !error;
    errorLine.textContent = error ?? "";
    if (!task) return;

    byId("feed-title").textContent = task.title;
    const names = task.subscribers.map((person) => person.name).join(", ") || t("feed.nobody");
    byId("feed-meta").textContent = [
      t("feed.created", { time: formatDateTime(task.createdAt) }),
      t("feed.subscribers", { names }),
    ].join(" · ");
    this.taskSlot.dataset.statusKey = taskKey(task.id);
    refreshSlot(this.taskSlot);

    reconcile(
      this.list,
      this.comments,
      (comment) => comment.id,
      (comment) => this.item(comment),
      (node, comment) => this.fill(node, comment),
    );
    byId("comments-empty").hidden = this.comments.length > 0;
    byId("comments-more").hidden = !this.pageInfo.hasPreviousPage;
  }

  authorName(comment) {
    return comment.author?.name ?? t("feed.noAuthor");
  }

  item(comment) {
    const node = h(
      "li",
      { class: "comment", dataset: { commentId: comment.id } },
      h(
        "div",
        { class: "comment__head" },
        h("strong", { class: "comment__author" }),
        h("span", { class: "badge" }),
        h("time", { class: "comment__time muted small", datetime: comment.createdAt }),
        h("span", { class: "spacer" }),
        statusSlot(commentKey(comment.id), (opener) => this.openDetails(commentKey(comment.id), opener)),
      ),
      h("p", { class: "comment__body" }),
    );
    this.fill(node, comment);
    return node;
  }

  fill(node, comment) {
    node.classList.toggle("comment--system", comment.isSystem);
    node.dataset.system = String(comment.isSystem);
    node.querySelector(".comment__author").textContent = this.authorName(comment);
    const badge = node.querySelector(".badge");
    badge.hidden = !comment.isSystem;
    badge.textContent = t("feed.system");
    node.querySelector(".comment__time").textContent = formatDateTime(comment.createdAt);
    node.querySelector(".comment__body").textContent = comment.body;
    refreshSlot(node.querySelector(".status-slot"));
  }

  async addComment(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const body = form.elements.body.value.trim();
    if (!body || !this.taskId) return;
    const taskId = this.taskId;
    await submitting(form, t("form.saving"), async () => {
      const token = snapshotToken();
      const data = await graphql(ADD_COMMENT, { taskId, body });
      const comment = data.addComment;
      setSnapshot(commentKey(comment.id), comment.deliveryStatus, token);
      if (taskId === this.taskId && !this.comments.some((c) => c.id === comment.id)) {
        // The newest comment: at the end, whatever earlier pages are not loaded.
        this.comments.push(comment);
        this.render();
      }
      form.reset();
      return "";
    });
  }
}
