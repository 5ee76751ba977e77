// Audits a GraphQL endpoint against the GraphQL-over-HTTP specification and prints one
// JSON line: {"total": n, "ok": n, "warnings": [...], "errors": [...]}.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const results = await auditServer({ url });
const summary = (status) =>
  results.filter((r) => r.status === status).map((r) => `${r.id} ${r.name}: ${r.reason ?? ''}`);
console.log(
  JSON.stringify({
    total: results.length,
    ok: results.filter((r) => r.status === 'ok').length,
    warnings: summary('warn'),
    errors: summary('error'),
  }),
);
