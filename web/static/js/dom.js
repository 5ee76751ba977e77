// Building DOM nodes without HTML strings: every piece of text becomes a Text node, so
// a task title or an SMTP reply such as "<b>550</b>" is shown as typed, never parsed.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * h("button", {class: "x", type: "button", onclick: fn, dataset: {id: 1}}, "text", node)
 * Children may be strings, numbers, nodes, arrays of those, or null/false (skipped).
 */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  applyAttributes(node, attributes);
  append(node, children);
  return node;
}

/** An SVG element: `s("path", {d: "M0 0"})`. */
export function s(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  applyAttributes(node, attributes);
  append(node, children);
  return node;
}

function applyAttributes(node, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      node.textContent = String(value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace all children of `node`. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from index.html`);
  return node;
}

/**
 * Make `parent`'s children the nodes for `items`, in order, reusing the node made
 * earlier for the same key (see `create` / `update`). Nodes already in place are not
 * moved, so a focused icon inside one keeps its focus while the list around it changes.
 */
export function reconcile(parent, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of parent.children) existing.set(child.dataset.key, child);
  const wanted = items.map((item) => {
    const key = String(keyOf(item));
    let node = existing.get(key);
    if (node) {
      update(node, item);
    } else {
      node = create(item);
      node.dataset.key = key;
    }
    return node;
  });
  const keep = new Set(wanted);
  for (const child of [...parent.children]) if (!keep.has(child)) child.remove();
  wanted.forEach((node, index) => {
    if (parent.children[index] !== node) parent.insertBefore(node, parent.children[index] ?? null);
  });
}

/**
 * Run a form's async `work` with its submit button disabled and its status line
 * (.form-status) saying what happened. Returns whether the work succeeded.
 */
export async function submitting(form, savingText, work) {
  const button = form.querySelector("[type=submit]");
  const status = form.querySelector(".form-status");
  button.disabled = true;
  status.classList.remove("form-error");
  status.textContent = savingText;
  try {
    status.textContent = (await work()) ?? "";
    return true;
  } catch (error) {
    status.classList.add("form-error");
    status.textContent = error.message;
    if (error.unauthenticated) window.dispatchEvent(new CustomEvent("beacon:unauthenticated"));
    return false;
  } finally {
    button.disabled = false;
  }
}
