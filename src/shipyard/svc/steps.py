"""Steps: how starting and stopping one instance is driven, alone or hundreds at once.

Starting and stopping are small state machines (:class:`Pending`): each step either
finishes with an :class:`Outcome`, fails with a :class:`ShipyardError`, or says when it
wants to be looked at again. ``svc start`` drives one of them to the end (:func:`drive`);
``svc boot`` drives hundreds at once from one loop (:mod:`shipyard.svc.order`), so waiting
for pid files, start grace periods and stop timeouts costs no thread per instance.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import ExitStack
from dataclasses import dataclass, field

# Seconds a process gets to disappear after SIGKILL before the step gives up on it.
KILL_WAIT = 5.0


@dataclass
class Outcome:
    """How an action on one instance ended."""

    coordinate: str
    action: str           # started | running | stopped | not-running | reloaded
    pid: int | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"service": self.coordinate, "result": self.action, "pid": self.pid,
                "message": self.message, "warnings": self.warnings}


class Pending(ABC):
    """A step that wants to run again at ``ready_at`` (monotonic seconds)."""

    ready_at: float = 0.0
    stack: ExitStack

    @abstractmethod
    def poll(self) -> Outcome | Pending:
        """Advance the step: its outcome, or itself again with a later ``ready_at``."""

    def abandon(self) -> None:
        self.stack.close()


Step = Outcome | Pending


def drive(step: Step) -> Outcome:
    """Run a step to its end in this thread."""
    while isinstance(step, Pending):
        delay = step.ready_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        step = step.poll()
    return step


def backoff(previous: float) -> float:
    """The next delay between looks: doubling from 2 ms, never over 50 ms."""
    return min(max(previous * 2, 0.002), 0.05)
