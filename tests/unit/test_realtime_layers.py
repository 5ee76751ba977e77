"""Realtime's dependencies point one way (issue 16): web -> resolvers/schema -> live ->
db -> common, and broadcast/ beside db/, importing only common/. Read from the sources'
import statements, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def our_imports(package: str) -> set[tuple[str, str]]:
    """(file, top-level package) for every import of one of our packages in `package`."""
    ours = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}
    ours |= {path.stem for path in ROOT.glob("*.py")}
    found: set[tuple[str, str]] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in ours and top != package:
                    found.add((str(path.relative_to(ROOT)), top))
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("live", {"web", "resolvers", "schema", "main"}),
        ("db", {"live", "broadcast"}),
        ("channels", {"live", "broadcast"}),
    ],
)
def test_a_lower_layer_imports_nothing_from_the_layers_above_it(
    package: str, forbidden: set[str]
) -> None:
    wrong = {(path, top) for path, top in our_imports(package) if top in forbidden}
    assert wrong == set()


def test_broadcast_imports_nothing_of_ours_but_common() -> None:
    assert {top for _, top in our_imports("broadcast")} <= {"common"}
