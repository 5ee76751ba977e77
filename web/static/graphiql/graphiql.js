// GraphiQL at /graphql: the vendored GraphiQL (static/vendor/) talking to this server,
// over HTTP for queries and mutations and over a websocket (graphql-ws, bundled in
// GraphiQL) for subscriptions. The token bar above it sends `Authorization: Bearer …`
// with every request and in the websocket's connection_init payload, unless the Headers
// tab sets an Authorization of its own.
//
// A classic script, not a module: it runs after the deferred React, ReactDOM and
// GraphiQL scripts, which define those globals.

(function () {
  "use strict";

  // The dashboard's own key: whoever signed in there is signed in here too.
  const TOKEN_KEY = "beacon.token";

  // One operation, so that Ctrl-Enter runs it at once (with several, GraphiQL asks which).
  const DEFAULT_QUERY = `# Beacon's API. The API token above goes with every request (HTTP and websocket);
# an Authorization header in the Headers tab below takes its place. Run with Ctrl-Enter.
#
# Live updates: replace this query with the subscription below, run it, then change a
# delivery (add a comment on the dashboard) and watch the result pane.
#
#   subscription Live {
#     deliveryUpdated {
#       taskId commentId
#       status { state total queued sent failed read }
#       delivery { id recipient { name } channel state }
#     }
#   }

query Tasks {
  viewer { name }
  tasks(first: 5) {
    edges { node { id title deliveryStatus { state total } } }
  }
}
`;

  const tokenInput = document.getElementById("token");
  const status = document.getElementById("token-status");
  const httpUrl = new URL("/graphql", location.href).href;
  const wsUrl = httpUrl.replace(/^http/, "ws");

  function storedToken() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  function currentToken() {
    return tokenInput.value.trim();
  }

  function hasAuthorization(headers) {
    return Object.keys(headers).some((name) => name.toLowerCase() === "authorization");
  }

  const base = GraphiQL.createFetcher({ url: httpUrl, subscriptionUrl: wsUrl });

  // The headers given here reach both the HTTP request and, for a subscription, the
  // websocket's connection_init payload (the server reads `authorization` in any case).
  function fetcher(params, options) {
    const headers = Object.assign({}, options && options.headers);
    const token = currentToken();
    if (token && !hasAuthorization(headers)) headers.Authorization = `Bearer ${token}`;
    return base(params, Object.assign({}, options, { headers }));
  }

  function say(text, ok) {
    status.textContent = text;
    status.dataset.ok = String(ok);
  }

  /** Ask who the token belongs to, so that a wrong token shows before the first query. */
  async function check(token) {
    if (!token) {
      say("No token: the API answers UNAUTHENTICATED. Paste one, or sign in on the dashboard.", false);
      return;
    }
    try {
      const response = await fetch(httpUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: "query Who { viewer { name } account { name plan } }" }),
      });
      const body = await response.json();
      if (body.data && body.data.viewer) {
        const { viewer, account } = body.data;
        say(`Signed in as ${viewer.name} (${account.name}, ${account.plan}).`, true);
      } else {
        say("This token was not accepted.", false);
      }
    } catch (error) {
      say(`The server did not answer: ${error.message}`, false);
    }
  }

  document.getElementById("token-bar").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = currentToken();
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
    } catch {
      // Storage refused (private mode): the token still works for this page.
    }
    check(token);
  });

  tokenInput.value = storedToken();
  check(currentToken());

  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: DEFAULT_QUERY,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      inputValueDeprecation: true,
    }),
  );
})();
