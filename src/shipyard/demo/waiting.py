"""Deadlines, never fixed sleeps: poll a condition until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from shipyard.errors import ShipyardError

T = TypeVar("T")


class DemoTimeout(ShipyardError):
    """A condition the demo waited for did not come true in time."""


def until(predicate: Callable[[], T | None], timeout: float, what: str,
          detail: Callable[[], str] | None = None) -> T:
    """Poll ``predicate`` (backing off to 0.2 s) until it returns something true.

    ``detail`` says what the world looked like when time ran out, so a timeout names its
    likely cause (a build still queued, a transport refused...) and not only the wait.
    """
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = ""
            if detail is not None:
                try:
                    extra = f" ({detail()})"
                except Exception as exc:  # the detail is a courtesy; never mask the timeout
                    extra = f" (and describing why failed: {exc})"
            raise DemoTimeout(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
