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
const statuses = new Map(); // key -> status (null: tracking off for this item)
const touchedAt = new Map(); // key -> clock of the last live update
const listeners = new Set();

export const taskKey = (id) => `task:${id}`;
export const commentKey = (id) => `comment:${id}`;

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
    const seen = new Set(known.deliveries.map((d) => d.id));
    const missing = (status?.deliveries ?? []).filter((d) => !seen.has(d.id));
    if (missing.length === 0) return;
    statuses.set(key, { ...known, deliveries: [...known.deliveries, ...missing] });
  } else {
    statuses.set(key, status ? { ...status, deliveries: [...(status.deliveries ?? [])] } : null);
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

/** One delivery changed (e.g. a resendDelivery answer); counts come with the next update. */
export function mergeDelivery(delivery) {
  for (const [key, status] of statuses) {
    const index = status?.deliveries.findIndex((d) => d.id === delivery.id) ?? -1;
    if (index < 0) continue;
    const deliveries = [...status.deliveries];
    deliveries[index] = delivery;
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
