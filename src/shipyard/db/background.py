"""What a server over a shared database runs beside its requests: a PostgreSQL LISTEN loop
that hears what other processes changed, and the end of its background tasks.

The farm's coordinator and the fleet's hub both keep one of each; here once, so a fix to
the reconnect backoff or to shutdown reaches both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable


def listen(url: str, channel: str, stop: threading.Event, notified: Callable[[str], None],
           log: logging.Logger, what: str = "listener") -> None:
    """Call ``notified(payload)`` for every NOTIFY on ``channel`` until ``stop`` is set
    (run it in a thread). A lost connection is logged as ``what`` and retried with a backoff
    growing to 10 s; what is sent meanwhile is missed, so callers also poll."""
    import psycopg

    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    backoff = 0.5
    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"LISTEN {channel}")
                backoff = 0.5
                while not stop.is_set():
                    for note in conn.notifies(timeout=1.0, stop_after=1):
                        notified(note.payload)
        except Exception as exc:
            log.warning("%s: %s: %s", what, type(exc).__name__, exc)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks``, wait until each has ended (whatever it raised), and forget them."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    tasks.clear()
