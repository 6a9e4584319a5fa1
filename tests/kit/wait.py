"""Waiting on a condition with a deadline: the tests' only way to synchronise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition",
               *, interval: float = 0.01, message: str | None = None) -> T:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` runs out.

    The poll interval starts at ``interval`` and backs off to 0.2 s, so a quick condition is
    seen at once and a slow one does not burn the CPU the thing we wait for needs.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
