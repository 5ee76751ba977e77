from pathlib import Path

from schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_the_committed_schema_file_matches_the_code() -> None:
    committed = SCHEMA_FILE.read_text()

    assert committed == schema.as_str() + "\n", "schema.graphql is stale: run 'make schema'"
