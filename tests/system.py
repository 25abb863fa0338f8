"""Tests that need a system component (a Debian package: chromium, postgresql, ...).

Where the component is missing they skip with a one-line reason, so the test command passes on a
fresh machine. CI installs the components and sets CHARNN_REQUIRE_SYSTEM=1: there a missing
component fails the test instead, so a green CI shows these tests ran.
"""
from __future__ import annotations

import os
import shutil

import pytest


def required() -> bool:
    """True where a missing system component is an error (CI), not a reason to skip."""
    return os.environ.get("CHARNN_REQUIRE_SYSTEM", "") not in ("", "0")


def unavailable(reason: str) -> None:
    """Skip with `reason`, or fail with it where system components are required."""
    if required():
        pytest.fail(f"required system component missing: {reason}", pytrace=False)
    pytest.skip(reason)


def binary(*names: str) -> str:
    """The path of the first of `names` on PATH; skips (or fails under CI) when none is there."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    unavailable(f"{' or '.join(names)} not installed (Debian package)")
    raise AssertionError("unreachable")
