"""Reading what a node runs and executing a converge plan through the same functions the
``pkg`` and ``svc`` commands call (install from the signed repository, register, start,
``svc upgrade`` with its rollback, stop, unregister).

Each instance's actions run in order and stop at its first failure; one failing instance
never blocks the others. Errors are kept per instance and reported to the coordinator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shipyard.config import Settings
from shipyard.coords import ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.formats import fleet as wire
from shipyard.node.plan import Action, Actual

Say = Callable[[str], None]

# svc's states -> the fleet's
_STATES: dict[str, wire.InstanceState] = {"running": "running", "stopped": "stopped",
                                          "dead": "failed", "starting": "starting"}


def installed(settings: Settings) -> list[str]:
    from shipyard.pkg.store import list_installed

    return sorted(str(record.coord) for record in list_installed(settings))


def actual(settings: Settings) -> tuple[dict[str, Actual], dict[str, str]]:
    """Every registered instance as an :class:`Actual`, and its svc state."""
    from shipyard.svc import control, registry

    ctx = control.Context(settings)
    found: dict[str, Actual] = {}
    states: dict[str, str] = {}
    for reg in registry.load_all(settings):
        state = control.status(ctx, reg).state
        service = str(reg.coordinate)
        found[service] = Actual(service, str(reg.package), tuple(reg.params), reg.boot,
                                running=state in ("running", "starting"))
        states[service] = state
    return found, states


def run_action(settings: Settings, action: Action) -> str:
    """Execute one action; returns what happened, in one line."""
    from shipyard.svc import control

    if action.kind == "refuse":
        raise ShipyardError(action.reason)
    if action.kind == "install":
        from shipyard.pkg.install import install

        results = install(settings, action.package)
        return f"installed {', '.join(str(r.coord) for r in results)}"
    if action.kind == "register":
        from shipyard.svc.register import register

        return register(settings, action.service, action.package, boot_flag=action.boot,
                        params=list(action.params)).message
    if action.kind == "upgrade":
        from shipyard.svc.upgrade import upgrade

        return upgrade(settings, action.service, to=action.package).message
    coordinate = ServiceCoord.parse(action.service)
    if action.kind == "start":
        return control.start(control.Context(settings), coordinate).message
    if action.kind == "stop":
        return control.stop(control.Context(settings), coordinate).message
    if action.kind == "unregister":
        from shipyard.svc.register import unregister

        return unregister(settings, action.service, stop=True).message
    raise ShipyardError(f"unknown action {action.kind}")


@dataclass
class Tracker:
    """What the agent remembers between rounds: per instance its last error and since
    when it is in its current state."""

    errors: dict[str, str] = field(default_factory=dict)
    since: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def execute(self, settings: Settings, actions: list[Action], say: Say,
                before: Callable[[Action], None] | None = None) -> int:
        """Run ``actions``; returns how many failed."""
        failed: set[str] = set()
        for action in actions:
            if action.service in failed:
                continue
            if before is not None:
                before(action)
            try:
                message = run_action(settings, action)
            except ShipyardError as exc:
                failed.add(action.service)
                self.errors[action.service] = f"{action.kind}: {exc.message}"
                say(f"{action.describe()} failed: {exc.message}")
                continue
            say(f"{action.describe()}: {message}")
        for action in actions:
            if action.service not in failed:
                self.errors.pop(action.service, None)
        return len(failed)

    def report(self, settings: Settings, doc: wire.DesiredDocument | None,
               managed: set[str]) -> list[wire.InstanceReport]:
        now = datetime.now(UTC)
        found, states = actual(settings)
        wanted = {d.service: d for d in (doc.instances if doc else [])}
        rows = []
        for service in sorted(set(wanted) | (managed & set(found))):
            have = found.get(service)
            state: wire.InstanceState = (_STATES.get(states[service], "unknown")
                                         if have is not None else "absent")
            first = self.since.get(service)
            if first is None or first[0] != state:
                self.since[service] = (state, now)
            package = have.package if have else wanted[service].package
            rows.append(wire.InstanceReport(service=service, package=package, state=state,
                                            since=self.since[service][1],
                                            last_error=self.errors.get(service, "")))
        return rows
