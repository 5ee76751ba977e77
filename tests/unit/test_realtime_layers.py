"""The packages' dependencies point one way (issue 16): web -> schema -> resolvers ->
live, domain -> db -> common; channels/ and broadcast/ import only common/; the worker,
inbound mail and the pixel sit on db/, channels/ and broadcast/. Read from the sources'
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


# What each package may import of ours: everything else is a layer above it. Listed as
# allowed, not forbidden, so a new wrong import fails without this list being updated.
ALLOWED = {
    "common": set(),
    "db": {"common"},
    "domain": {"common", "db"},
    "live": {"common", "db"},
    "channels": {"common"},
    "broadcast": {"common"},
    "sending": {"common", "db", "domain", "channels", "broadcast"},
    "inbound": {"common", "db", "channels", "broadcast"},
    "pixel": {"common", "db", "broadcast"},
}


@pytest.mark.parametrize(("package", "allowed"), sorted(ALLOWED.items()))
def test_a_lower_layer_imports_nothing_from_the_layers_above_it(
    package: str, allowed: set[str]
) -> None:
    wrong = {(path, top) for path, top in our_imports(package) if top not in allowed}
    assert wrong == set()
