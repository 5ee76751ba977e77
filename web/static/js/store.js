// The delivery status of every task and comment on screen, by key ("task:<id>" or
// "comment:<id>"). Views draw from it and listen for changes; it is fed by queries
// (snapshots) and by the subscription (live updates).
//
// A snapshot can be older than an update that arrived while its request was in flight
// (a comment is added, the worker sends it, the subscription says SENT, and only then
// does the addComment response arrive saying QUEUED). So each snapshot carries the clock
// value taken when its request started, and it does not overwrite a key that a live
// update touched after that.

let clock = 0;
// key -> status (null: tracking off for this item). A status's `deliveries` is undefined
// while only its counts are known (the task list's icons): the popup reads them.
const statuses = new Map();
const touchedAt = new Map(); // key -> clock of the last live update
const listeners = new Set();

export const taskKey = (id) => `task:${id}`;
export const commentKey = (id) => `comment:${id}`;
/** A task's icon over its own notification and its comments' (`Task.overallStatus`). */
export const overallKey = (id) => `overall:${id}`;

/** Take before sending a query; pass to `setSnapshot` with its result. */
export function snapshotToken() {
  clock += 1;
  return clock;
}

export function getStatus(key) {
  return statuses.get(key) ?? null;
}

export function has(key) {
  return statuses.has(key);
}

/** Store a status read by a query that started at `token`. */
export function setSnapshot(key, status, token) {
  const known = statuses.get(key);
  if (known && (touchedAt.get(key) ?? 0) > token) {
    // The live updates are newer: keep their counts and deliveries, and only add the
    // deliveries that no update has mentioned yet.
    if (!status?.deliveries) return;
    const have = known.deliveries ?? [];
    const seen = new Set(have.map((d) => d.id));
    const missing = status.deliveries.filter((d) => !seen.has(d.id));
    if (known.deliveries && missing.length === 0) return;
    statuses.set(key, { ...known, deliveries: [...have, ...missing] });
  } else {
    statuses.set(key, status ? { ...status, deliveries: status.deliveries && [...status.deliveries] } : null);
  }
  notify(key);
}

/**
 * A `deliveryUpdated` payload: the counts are replaced and the one delivery is merged
 * into the list by id. Returns false when the key was never loaded (the caller may
 * refetch: the item is new to this page).
 */
export function applyUpdate(key, counts, delivery) {
  clock += 1;
  touchedAt.set(key, clock);
  const known = statuses.get(key);
  const deliveries = [...(known?.deliveries ?? [])];
  const index = deliveries.findIndex((d) => d.id === delivery.id);
  if (index >= 0) deliveries[index] = delivery;
  else deliveries.push(delivery);
  statuses.set(key, { ...counts, deliveries });
  notify(key);
  return known !== undefined;
}

/**
 * A task's overall counts from a `deliveryUpdated` payload (`taskStatus`). Its
 * deliveries, when loaded, get the one delivery merged; one they do not hold yet makes
 * them unknown, to be read again (it may be a system comment's, which the page hides).
 */
export function applyOverall(key, counts, delivery) {
  clock += 1;
  touchedAt.set(key, clock);
  const known = statuses.get(key)?.deliveries;
  const index = known?.findIndex((d) => d.id === delivery.id) ?? -1;
  let deliveries;
  if (index >= 0) {
    deliveries = [...known];
    deliveries[index] = delivery;
  }
  statuses.set(key, counts ? { ...counts, deliveries } : null);
  notify(key);
}

/**
 * One delivery changed (e.g. a resendDelivery answer); counts come with the next update.
 * A live update may have overtaken the answer: a delivery's events are only ever
 * appended, so the copy with the longer history is the newer one and is kept.
 */
export function mergeDelivery(delivery) {
  updateDeliveries((d) => (d.id === delivery.id && delivery.events.length >= d.events.length ? delivery : d));
}

/** The suppression of an address was lifted: no delivery to it carries it any more. */
export function suppressionLifted(channel, address) {
  const lifted = (d) => d.suppression?.channel === channel && d.suppression.address === address;
  updateDeliveries((d) => (lifted(d) ? { ...d, suppression: null } : d));
}

function updateDeliveries(change) {
  for (const [key, status] of statuses) {
    if (!status?.deliveries) continue;
    const deliveries = status.deliveries.map(change);
    if (deliveries.every((d, i) => d === status.deliveries[i])) continue;
    statuses.set(key, { ...status, deliveries });
    notify(key);
  }
}

/** `listener(key)` after every change of a key. Returns an unsubscribe function. */
export function onChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function clear() {
  statuses.clear();
  touchedAt.clear();
}

function notify(key) {
  for (const listener of listeners) listener(key);
}
