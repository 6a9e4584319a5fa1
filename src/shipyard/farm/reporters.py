"""A worker slot's reporting threads: the heartbeat that renews a build's lease and the
stream that ships its output, each one long-lived thread serving the slot's builds in turn."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.farm.buildrun import BuildRun

log = logging.getLogger("shipyard.farm.worker")


class Ticker:
    """A long-lived thread that calls ``step(run)`` for the build its slot is running, at
    the times ``step`` asks for (it returns the next ``time.monotonic()`` to be called at,
    or None when it is done with that build).

    A slot keeps two (heartbeat, log stream) for all its builds: most builds end before
    either is due at all, and starting and joining two threads per build was a good part
    of a worker's CPU. ``detach`` is the handshake: once it returns, no step for that build
    runs any more, so nothing a build reports can land after it has finished."""

    def __init__(self, name: str, step: Callable[[BuildRun], float | None]) -> None:
        self._step = step
        self._cond = threading.Condition()
        self._run: BuildRun | None = None
        self._due = 0.0
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self._thread.start()

    def attach(self, run: BuildRun, due: float) -> None:
        with self._cond:
            self._run, self._due = run, due
            self._cond.notify_all()

    def detach(self, timeout: float = 60.0) -> None:
        """Stop serving the current build; wait (up to ``timeout``) for a step under way."""
        with self._cond:
            self._run = None
            self._cond.wait_for(lambda: not self._busy, timeout=timeout)

    def close(self) -> None:
        with self._cond:
            self._run = None
            self._closed = True
            self._cond.notify_all()

    def _next(self) -> BuildRun | None:
        """Wait for a build whose step is due; None once closed."""
        with self._cond:
            while not self._closed:
                run = self._run
                wait = None if run is None else self._due - time.monotonic()
                if wait is not None and wait <= 0:
                    self._busy = True
                    return run
                self._cond.wait(wait)
            return None

    def _loop(self) -> None:
        while (run := self._next()) is not None:
            due: float | None = None
            try:
                due = self._step(run)
            except Exception as exc:  # a bug must not take the slot's reporting down
                log.exception("build %s: %s: %s", run.build_id, self._thread.name, exc)
            finally:
                with self._cond:
                    self._busy = False
                    if self._run is run:
                        if due is None:
                            self._run = None
                        else:
                            self._due = due
                    self._cond.notify_all()


@dataclass
class Reporters:
    """A slot's heartbeat and log-stream threads (see :class:`Ticker`)."""

    heartbeat: Ticker
    stream: Ticker

    @classmethod
    def start(cls, name: str, heartbeat: Callable[[BuildRun], float | None],
              stream: Callable[[BuildRun], float | None]) -> Reporters:
        return cls(Ticker(f"hb-{name}", heartbeat), Ticker(f"log-{name}", stream))

    def close(self) -> None:
        self.heartbeat.close()
        self.stream.close()
