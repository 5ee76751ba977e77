// The sidebar: the task list (each task with its icon), the "New task" form with a
// checkbox per person, and the "Add a contact" form. A task's icon in the list is its
// overall one: the worst state over its own notification and its comments' (system
// comments only while they are shown), kept live by the subscription's `taskStatus`.

import { ADD_EMPLOYEE, ADD_PERSON, CREATE_TASK, INVITE_PERSON, PEOPLE, TASKS, graphql } from "./api.js";
import { byId, h, reconcile, replaceChildren, submitting } from "./dom.js";
import { formatDateTime, t } from "./i18n.js";
import { refreshSlot, statusSlot } from "./icons.js";
import { overallKey, setSnapshot, snapshotToken, taskKey } from "./store.js";

const PAGE = 50;
const MAX_PAGE = 200; // the API's limit for `first`

export class TaskList {
  /**
   * @param {object} options
   * @param {(key: string, opener: HTMLElement) => void} options.openDetails
   * @param {(id: string) => void} options.select  show a task's feed
   * @param {(error: Error) => void} options.failed
   * @param {() => boolean} options.includeSystem  whether system comments are shown
   */
  constructor({ openDetails, select, failed, includeSystem }) {
    this.openDetails = openDetails;
    this.select = select;
    this.failed = failed;
    this.includeSystem = includeSystem;
    this.list = byId("task-list");
    this.tasks = [];
    this.pageInfo = { hasNextPage: false, endCursor: null };
    this.currentId = null;
    this.viewerId = null;
    this.people = [];
    this.reloadTimer = 0;
    this.checked = new Set(); // person ids ticked in the form, kept across redraws

    byId("tasks-more").addEventListener("click", () => this.loadMore().catch(this.failed));
    byId("new-task-form").addEventListener("submit", (event) => this.createTask(event));
    byId("new-person-form").addEventListener("submit", (event) => this.addPerson(event));
    byId("invite-form").addEventListener("submit", (event) => this.invite(event));
    // The icons count system comments only while they are shown.
    byId("show-system").addEventListener("change", () => this.reload().catch(this.failed));
  }

  /** Fetch the list again, as far as it had been paged (capped by the API's limit). */
  async reload() {
    const token = snapshotToken();
    const first = Math.min(MAX_PAGE, Math.max(PAGE, this.tasks.length));
    const data = await graphql(TASKS, { first, includeSystem: this.includeSystem() });
    this.tasks = data.tasks.edges.map((edge) => edge.node);
    this.pageInfo = data.tasks.pageInfo;
    for (const task of this.tasks) setSnapshot(overallKey(task.id), task.overallStatus, token);
    this.render();
  }

  async loadMore() {
    const token = snapshotToken();
    const data = await graphql(TASKS, {
      first: PAGE,
      after: this.pageInfo.endCursor,
      includeSystem: this.includeSystem(),
    });
    const more = data.tasks.edges.map((edge) => edge.node);
    for (const task of more) setSnapshot(overallKey(task.id), task.overallStatus, token);
    const known = new Set(this.tasks.map((task) => task.id));
    this.tasks.push(...more.filter((task) => !known.has(task.id)));
    this.pageInfo = data.tasks.pageInfo;
    this.render();
  }

  /** A live update named a task this page has not loaded: fetch the list soon, once. */
  scheduleReload() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.reload().catch(this.failed), 250);
  }

  has(id) {
    return this.tasks.some((task) => task.id === id);
  }

  title(id) {
    return this.tasks.find((task) => task.id === id)?.title;
  }

  /** A task changed elsewhere (e.g. its feed was loaded): keep the list's copy current. */
  updateTask(task) {
    const index = this.tasks.findIndex((known) => known.id === task.id);
    if (index >= 0) {
      this.tasks[index] = { ...this.tasks[index], title: task.title };
      this.render();
    }
  }

  markCurrent(id) {
    this.currentId = id;
    this.render();
  }

  render() {
    reconcile(
      this.list,
      this.tasks,
      (task) => task.id,
      (task) => this.item(task),
      (node, task) => this.fill(node, task),
    );
    byId("tasks-empty").hidden = this.tasks.length > 0;
    byId("tasks-more").hidden = !this.pageInfo.hasNextPage;
  }

  item(task) {
    const node = h(
      "li",
      { class: "task-item", dataset: { taskId: task.id } },
      h(
        "a",
        { class: "task-link", href: `#/tasks/${encodeURIComponent(task.id)}` },
        h("span", { class: "task-link__title" }),
        h("span", { class: "task-link__date muted small" }),
      ),
      statusSlot(overallKey(task.id), (opener) => this.openDetails(overallKey(task.id), opener)),
    );
    this.fill(node, task);
    return node;
  }

  fill(node, task) {
    node.querySelector(".task-link__title").textContent = task.title;
    node.querySelector(".task-link__date").textContent = formatDateTime(task.createdAt);
    const link = node.querySelector(".task-link");
    if (task.id === this.currentId) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    refreshSlot(node.querySelector(".status-slot"));
  }

  // ---------------------------------------------------------------- people and forms

  async loadPeople() {
    const data = await graphql(PEOPLE);
    this.viewerId = data.viewer.id;
    this.people = data.people;
    this.renderPeople();
  }

  renderPeople() {
    const box = byId("subscriber-options");
    if (this.people.length === 0) {
      replaceChildren(box, h("p", { class: "muted small" }, t("newTask.noPeople")));
      return;
    }
    replaceChildren(
      box,
      this.people.map((person) => {
        const id = `subscriber-${person.id}`;
        const input = h("input", {
          type: "checkbox",
          id,
          name: "subscriberIds",
          value: person.id,
          checked: this.checked.has(person.id),
          onchange: (event) => {
            if (event.currentTarget.checked) this.checked.add(person.id);
            else this.checked.delete(person.id);
          },
        });
        const name = person.id === this.viewerId ? `${person.name} ${t("person.you")}` : person.name;
        return h(
          "div",
          { class: "checkbox" },
          input,
          h(
            "label",
            // The address may be cut short on screen: the tooltip has it whole.
            { for: id, title: person.email ? `${name} ${person.email}` : name },
            name,
            person.email ? h("span", { class: "checkbox__address muted small" }, person.email) : null,
          ),
        );
      }),
    );
  }

  async createTask(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const title = form.elements.title.value.trim();
    if (!title) return;
    await submitting(form, t("form.saving"), async () => {
      const token = snapshotToken();
      const data = await graphql(CREATE_TASK, {
        title,
        subscriberIds: [...this.checked],
        includeSystem: this.includeSystem(),
      });
      const task = data.createTask;
      setSnapshot(taskKey(task.id), task.deliveryStatus, token);
      setSnapshot(overallKey(task.id), task.overallStatus, token);
      if (!this.has(task.id)) this.tasks.unshift(task);
      this.render();
      form.reset();
      this.checked.clear();
      this.renderPeople();
      this.select(task.id);
      return t("newTask.created", { title: task.title });
    });
  }

  /** A new employee, emailed an invitation (OWNER or ADMIN: the panel is hidden from
   * a MEMBER, and the server refuses them). */
  async invite(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const name = form.elements.name.value.trim();
    const email = form.elements.email.value.trim();
    if (!name || !email) return;
    await submitting(form, t("form.saving"), async () => {
      const added = (await graphql(ADD_EMPLOYEE, { name, email })).addPerson;
      await graphql(INVITE_PERSON, { personId: added.id });
      form.reset();
      await this.loadPeople();
      return t("invitePanel.sent", { name: added.name, email });
    });
  }

  async addPerson(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const name = form.elements.name.value.trim();
    const email = form.elements.email.value.trim();
    if (!name) return;
    await submitting(form, t("form.saving"), async () => {
      const data = await graphql(ADD_PERSON, { name, email: email || null });
      form.reset();
      // Most often the contact was added to be subscribed to the next task.
      this.checked.add(data.addPerson.id);
      await this.loadPeople();
      return t("person.added", { name: data.addPerson.name });
    });
  }
}
