// GraphQL over HTTP (fetch) and the documents the dashboard sends. The field names are
// the ones in schema.graphql; the server answers errors with `extensions.code`.

const TOKEN_KEY = "beacon.token";

export const tokenStore = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (token) => localStorage.setItem(TOKEN_KEY, token),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

/** A GraphQL error (with the server's code) or a failed request (code "NETWORK"). */
export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.name = "ApiError";
    this.code = code;
  }

  get unauthenticated() {
    return this.code === "UNAUTHENTICATED";
  }
}

/** Run one operation; resolves to `data`, or rejects with an ApiError. */
export async function graphql(query, variables = {}, token = tokenStore.get()) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/graphql-response+json, application/json",
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError(error.message, "NETWORK");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP ${response.status}`, "NETWORK");
  }
  if (body.errors?.length) {
    const [first] = body.errors;
    throw new ApiError(first.message, first.extensions?.code ?? "ERROR");
  }
  return body.data;
}

// ------------------------------------------------------------------ documents

export const DELIVERY_FIELDS = `
fragment DeliveryFields on Delivery {
  id channel address state attempts queuedAt sentAt failedAt readAt readConfidence acceptedBy
  heldUntil
  recipient { id name }
  suppression { channel address reason createdAt }
  error { code message permanent }
  events { type at detail }
}`;

// The lists fetch each item's deliveries too: the popup opens at once from them, and
// subscription updates are merged into them by delivery id.
const STATUS_FIELDS = `
fragment StatusFields on DeliveryStatus {
  state total queued sent failed read heldBack heldUntil
  deliveries { ...DeliveryFields }
}`;

// An icon without its deliveries: the task list's icons (read when the popup opens).
const COUNTS = "state total queued sent failed read heldBack heldUntil";

export const ME = `
query Me {
  viewer { id name role }
  account { id name plan }
}`;

export const UNREAD_COUNT = `subscription Unread { unreadCount }`;

export const MY_NOTIFICATIONS = `
query MyNotifications($first: Int) {
  viewer {
    unreadCount
    notifications(first: $first) {
      edges { node { id state createdAt taskId taskTitle text } }
    }
  }
}`;

export const MARK_READ = `
mutation MarkRead($id: ID!) { markRead(deliveryId: $id) { id state } }`;

export const MARK_ALL_READ = `mutation MarkAllRead { markAllRead }`;

// An OWNER or ADMIN invites a teammate: a new employee, emailed a sign-in link.
export const ADD_EMPLOYEE = `
mutation AddEmployee($name: String!, $email: String) {
  addPerson(input: {name: $name, kind: EMPLOYEE, email: $email}) { id name }
}`;

export const INVITE_PERSON = `
mutation Invite($personId: ID!) { invitePerson(personId: $personId) { id deliveryId } }`;

export const REDEEM_INVITATION = `
mutation Redeem($secret: String!) {
  redeemInvitation(secret: $secret) { secret token { person { id name role } } }
}`;

export const PEOPLE = `
query People { viewer { id } people { id name kind email } }`;

// The list's icon is the task's overall one: its own notification and its comments'.
export const TASKS = `
query Tasks($first: Int, $after: String, $includeSystem: Boolean!) {
  tasks(first: $first, after: $after) {
    edges { node { id title createdAt overallStatus(includeSystem: $includeSystem) { ${COUNTS} } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export const TASK_OVERALL = `
query TaskOverall($id: ID!, $includeSystem: Boolean!) {
  task(id: $id) { id overallStatus(includeSystem: $includeSystem) { ...StatusFields } }
}
${STATUS_FIELDS}
${DELIVERY_FIELDS}`;

const COMMENT_FIELDS = `
fragment CommentFields on Comment {
  id body isSystem createdAt
  author { id name }
  deliveryStatus { ...StatusFields }
}`;

// The newest comments (`last`), oldest first; `before` reaches the earlier ones.
export const FEED = `
query Feed($id: ID!, $includeSystem: Boolean!, $last: Int, $before: String) {
  task(id: $id) {
    id title createdAt
    subscribers { id name }
    deliveryStatus { ...StatusFields }
    comments(includeSystem: $includeSystem, last: $last, before: $before) {
      edges { cursor node { ...CommentFields } }
      pageInfo { hasPreviousPage startCursor }
    }
  }
}
${COMMENT_FIELDS}
${STATUS_FIELDS}
${DELIVERY_FIELDS}`;

export const ADD_PERSON = `
mutation AddPerson($name: String!, $email: String) {
  addPerson(input: {name: $name, kind: CONTACT, email: $email}) { id name kind email }
}`;

export const CREATE_TASK = `
mutation CreateTask($title: String!, $subscriberIds: [ID!]!, $includeSystem: Boolean!) {
  createTask(input: {title: $title, subscriberIds: $subscriberIds}) {
    id title createdAt deliveryStatus { ...StatusFields }
    overallStatus(includeSystem: $includeSystem) { ${COUNTS} }
  }
}
${STATUS_FIELDS}
${DELIVERY_FIELDS}`;

export const ADD_COMMENT = `
mutation AddComment($taskId: ID!, $body: String!) {
  addComment(input: {taskId: $taskId, body: $body}) { ...CommentFields }
}
${COMMENT_FIELDS}
${STATUS_FIELDS}
${DELIVERY_FIELDS}`;

export const LIFT_SUPPRESSION = `
mutation LiftSuppression($channel: Channel!, $address: String!) {
  liftSuppression(channel: $channel, address: $address)
}`;

export const RESEND = `
mutation Resend($id: ID!) {
  resendDelivery(id: $id) { ...DeliveryFields }
}
${DELIVERY_FIELDS}`;

// No taskId: one subscription covers every task of the account, so the task list and
// the open feed are both kept current by it.
export const DELIVERY_UPDATED = `
subscription Live {
  deliveryUpdated {
    taskId commentId
    status { ${COUNTS} }
    taskStatus { ${COUNTS} }
    taskStatusWithSystem: taskStatus(includeSystem: true) { ${COUNTS} }
    delivery { ...DeliveryFields }
  }
}
${DELIVERY_FIELDS}`;

// The rates chart (js/rates.js): per channel and UTC day.
export const DELIVERY_STATS = `
query DeliveryStats($since: DateTime!, $until: DateTime!, $bucket: RateBucket!) {
  deliveryStats(since: $since, until: $until, bucket: $bucket) {
    since until bucket
    channels {
      channel
      buckets { start sent failed readByPeople readByMachines bounced }
    }
  }
}`;
