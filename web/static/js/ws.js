// A minimal client for the graphql-transport-ws protocol
// (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), enough for one
// page: connection_init with the token, subscribe / next / error / complete, and
// ping / pong both ways. A dropped socket is reopened with a growing, jittered delay,
// the live subscriptions are sent again, and `onReconnected` lets the page refetch what
// it shows: updates published while the socket was down are not replayed by the server.

const PROTOCOL = "graphql-transport-ws";
const ACK_TIMEOUT_MS = 10_000;
const PING_EVERY_MS = 20_000; // a socket with no pong by the next ping is dead: reopen
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;

// Close codes after which trying again cannot help.
const CLOSE_FORBIDDEN = 4403; // connection_init refused: the token is not valid

export class LiveSocket {
  /**
   * @param {object} options
   * @param {string} options.url            ws://host/graphql
   * @param {() => string} options.token    read on every (re)connect
   * @param {(status: "connecting"|"online"|"offline") => void} [options.onStatus]
   * @param {() => void} [options.onReconnected]  after a reconnect, not the first connect
   * @param {() => void} [options.onForbidden]    the server refused the token
   */
  constructor({ url, token, onStatus, onReconnected, onForbidden }) {
    this.url = url;
    this.token = token;
    this.onStatus = onStatus ?? (() => {});
    this.onReconnected = onReconnected ?? (() => {});
    this.onForbidden = onForbidden ?? (() => {});
    this.subscriptions = new Map(); // id -> {payload, sink}
    this.nextId = 1;
    this.socket = null;
    this.acknowledged = false;
    this.everConnected = false;
    this.failures = 0;
    this.stopped = false;
    this.timers = { reconnect: 0, ack: 0, ping: 0 };
    this.awaitingPong = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  /** Close for good (sign-out): no reconnect. */
  stop() {
    this.stopped = true;
    this.clearTimers();
    if (this.socket) this.socket.close(1000, "bye");
    this.socket = null;
  }

  /**
   * Subscribe; `sink` has next(data), error(errors) and complete(). Returns a function
   * that ends the subscription. It survives reconnects.
   */
  subscribe(query, variables, sink) {
    const id = String(this.nextId++);
    const payload = { query, variables };
    this.subscriptions.set(id, { payload, sink });
    if (this.acknowledged) this.send({ id, type: "subscribe", payload });
    return () => {
      if (!this.subscriptions.delete(id)) return;
      if (this.acknowledged) this.send({ id, type: "complete" });
    };
  }

  // ---------------------------------------------------------------- internals

  open() {
    this.clearTimers();
    this.acknowledged = false;
    this.onStatus("connecting");
    const socket = new WebSocket(this.url, PROTOCOL);
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(
        JSON.stringify({
          type: "connection_init",
          payload: { authorization: `Bearer ${this.token()}` },
        }),
      );
      // A server that never acknowledges is as good as a dropped one.
      this.timers.ack = setTimeout(() => socket.close(4408, "no connection_ack"), ACK_TIMEOUT_MS);
    });
    socket.addEventListener("message", (event) => this.receive(socket, event.data));
    socket.addEventListener("close", (event) => this.closed(socket, event.code));
    // An "error" event is always followed by "close": reconnecting is handled there.
  }

  receive(socket, raw) {
    if (socket !== this.socket) return;
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      socket.close(4400, "invalid message");
      return;
    }
    const sub = message.id ? this.subscriptions.get(message.id) : undefined;
    switch (message.type) {
      case "connection_ack":
        clearTimeout(this.timers.ack);
        this.acknowledged = true;
        this.failures = 0;
        for (const [id, { payload }] of this.subscriptions) {
          this.send({ id, type: "subscribe", payload });
        }
        this.schedulePing();
        this.onStatus("online");
        if (this.everConnected) this.onReconnected();
        this.everConnected = true;
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "pong":
        this.awaitingPong = false;
        break;
      case "next":
        sub?.sink.next(message.payload.data, message.payload.errors);
        break;
      case "error":
        sub?.sink.error(message.payload);
        this.subscriptions.delete(message.id);
        break;
      case "complete":
        sub?.sink.complete?.();
        this.subscriptions.delete(message.id);
        break;
      default:
        break;
    }
  }

  closed(socket, code) {
    if (socket !== this.socket) return; // an old socket, already replaced
    this.clearTimers();
    this.socket = null;
    this.acknowledged = false;
    if (this.stopped) return;
    this.onStatus("offline");
    if (code === CLOSE_FORBIDDEN) {
      this.onForbidden();
      return;
    }
    // Exponential backoff with full jitter: many pages behind one restarted server do
    // not all come back in the same millisecond.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.failures);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.failures += 1;
    this.timers.reconnect = setTimeout(() => this.open(), delay);
  }

  schedulePing() {
    clearTimeout(this.timers.ping);
    this.awaitingPong = false;
    const tick = () => {
      if (!this.socket || !this.acknowledged) return;
      if (this.awaitingPong) {
        this.socket.close(4408, "no pong");
        return;
      }
      this.awaitingPong = true;
      this.send({ type: "ping" });
      this.timers.ping = setTimeout(tick, PING_EVERY_MS);
    };
    this.timers.ping = setTimeout(tick, PING_EVERY_MS);
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  clearTimers() {
    for (const name of Object.keys(this.timers)) {
      clearTimeout(this.timers[name]);
      this.timers[name] = 0;
    }
  }
}

/** ws:// or wss:// for this page's own origin. */
export function graphqlSocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/graphql`;
}
