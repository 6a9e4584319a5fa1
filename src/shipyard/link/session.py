"""One reconcile run: what its steps share while adapters run in threads.

The state loaded under the link lock, the report being written, the record of running
adapter processes, and a mutex: adapters of different acceptors run in parallel
(``link.jobs``), and every change to the state or the report is made under it. The state
is saved now and then while adapters run (:data:`SAVE_EVERY`): the intents saved before
they started cover the rest.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from shipyard.config import Settings
from shipyard.link import adapters, generate
from shipyard.link.inventory import Instance
from shipyard.link.report import Outcome, Report
from shipyard.link.running import Running
from shipyard.link.state import LinkState, Pair, save_state

SAVE_EVERY = 2.0  # seconds between state saves while adapters run (intents cover the rest)


class Session:
    def __init__(self, settings: Settings, state: LinkState, force: bool,
                 progress: Callable[[str], None] | None) -> None:
        self.settings = settings
        self.state = state
        self.force = force
        self.progress = progress or (lambda _message: None)
        self.timeout = settings.link.adapter_timeout
        self.jobs = max(1, settings.link.jobs)
        self.report = Report()
        self.running = Running(settings)
        self.mutex = threading.Lock()
        self.last_save = time.monotonic()
        self.before = self._snapshot()
        # acceptor -> (pair or None when dropped, "reload" | "restart") owed after adapters
        self.owed: dict[str, list[tuple[Pair | None, str]]] = {}

    def _snapshot(self) -> str:
        data = self.state.to_json()
        data.pop("updated", None)
        return json.dumps(data, sort_keys=True)

    def save(self, *, final: bool = False) -> None:
        """Persist the state (caller holds ``self.mutex`` or runs single-threaded)."""
        if final and self._snapshot() == self.before:
            return  # nothing changed: a no-op reconcile writes nothing
        save_state(self.settings, self.state)
        self.last_save = time.monotonic()

    def save_now_and_then(self) -> None:
        """Save while adapters run, at most every :data:`SAVE_EVERY` seconds."""
        with self.mutex:
            if time.monotonic() - self.last_save >= SAVE_EVERY:
                self.save()

    def outcome(self, pair: Pair, action: str) -> None:
        self.report.outcomes.append(Outcome(pair.interface, pair.announcer, pair.acceptor,
                                            action, pair.state, pair.error))

    def gone(self, pair: Pair, action: str) -> None:
        """Report a pair that is no longer in the state (``dropped`` or ``removed``)."""
        self.report.outcomes.append(Outcome(pair.interface, pair.announcer, pair.acceptor,
                                            action, None))

    def run_as(self, instance: Instance) -> adapters.RunAs | None:
        return adapters.resolve_user(instance.user)

    def prepare(self, instance: Instance) -> str | None:
        """Make sure the instance's runtime dir exists before its adapter runs in it."""
        return generate.prepare_runtime(self.settings, instance)
