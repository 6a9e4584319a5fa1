"""What a reconcile did: one outcome per pair, problems, warnings and counts.

``link reconcile`` prints it as a table or ``--json``; admin commands and the node's
hooks pass its problem lines on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """What this run did to one pair; ``action`` is what an operator wants to read first."""

    interface: str
    announcer: str
    acceptor: str
    action: str  # applied | removed | unchanged | disabled | failed | pending | dropped
    state: str | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"interface": self.interface, "announcer": self.announcer,
                "acceptor": self.acceptor or None, "action": self.action,
                "state": self.state, "error": self.error}


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # not tied to one pair
    warnings: list[str] = field(default_factory=list)  # worth saying, not a failure
    announce_runs: int = 0
    accept_runs: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for outcome in self.outcomes:
            out[outcome.action] = out.get(outcome.action, 0) + 1
        return out

    def problem_lines(self) -> list[str]:
        lines = list(self.problems)
        for o in self.failed:
            lines.append(f"{o.interface} {o.announcer} -> {o.acceptor}: {o.error}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "announce_runs": self.announce_runs,
            "accept_runs": self.accept_runs,
            "seconds": round(self.seconds, 3),
            "problems": self.problems,
            "warnings": self.warnings,
            "pairs": [o.to_json() for o in self.outcomes],
        }
