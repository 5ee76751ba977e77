"""Business rules, with no SQL and no GraphQL: who is notified and on which address,
how deliveries group into messages, when a scenario fires, what input is valid.

Rules raise `domain.errors.InvalidInput`; the API turns it into BAD_USER_INPUT."""
