"""Idempotency keys' pure rules: the canonical input hash and what a key may be."""

from __future__ import annotations

import uuid

import pytest

from domain.idempotency import input_hash, key_problem


def test_the_input_hash_is_canonical_and_names_the_mutation() -> None:
    assert input_hash("createTask", {"a": 1, "b": [uuid.UUID(int=1)]}) == input_hash(
        "createTask", {"b": [str(uuid.UUID(int=1))], "a": 1}
    )
    assert input_hash("createTask", {"a": 1}) != input_hash("addComment", {"a": 1})
    assert input_hash("createTask", {"ids": [1, 2]}) != input_hash("createTask", {"ids": [2, 1]})


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("k", None),
        ("~ !" * 85, None),
        ("x" * 256, "is longer than 255 characters"),
        ("", "must not be empty"),
        ("nul\x00", "must be printable ASCII (characters 0x20 to 0x7E)"),
        ("del\x7f", "must be printable ASCII (characters 0x20 to 0x7E)"),
        ("\u00e9", "must be printable ASCII (characters 0x20 to 0x7E)"),
    ],
)
def test_a_key_is_up_to_255_printable_ascii_characters(key: str, problem: str | None) -> None:
    assert key_problem(key) == problem
