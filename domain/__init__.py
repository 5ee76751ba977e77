"""Business rules with no SQL and no GraphQL."""
