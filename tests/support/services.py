"""Missing services: a skip on a developer's machine, a failure in CI (CI=true)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_service(name: str, reason: str) -> NoReturn:
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: services must be up)")
    pytest.skip(message)
