"""Converge planning: what a node must do to go from what it runs to what it should run.

A pure function of its inputs (no I/O), so every rule is tested in-process, and the agent
(:mod:`.agent`) only executes the list. The rules:

* an instance the agent created (``managed``) that is no longer desired is stopped and
  unregistered; an instance registered by hand is never touched, and one that is desired
  under the name of a hand-made instance is refused with an error, not taken over;
* a desired instance that does not exist is installed (when its package is not), registered
  and started;
* one on another package version is upgraded (``svc upgrade``: install, restart, roll back
  when the new version does not come up);
* one with other parameters or boot flag is registered again, and restarted if it ran;
* one that is not running is started.

Removals come first, so an instance moved to another coordinate frees its port before the
new one starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from shipyard.formats.fleet import DesiredInstance

Kind = Literal["stop", "unregister", "install", "register", "upgrade", "start", "refuse"]


@dataclass(frozen=True)
class Actual:
    """One instance registered on this node, as it is now."""

    service: str
    package: str
    params: tuple[str, ...] = ()
    boot: bool = True
    running: bool = False


@dataclass(frozen=True)
class Action:
    kind: Kind
    service: str
    package: str = ""
    params: tuple[str, ...] = ()
    boot: bool = True
    reason: str = ""

    def describe(self) -> str:
        what = f"{self.kind} {self.service}"
        if self.package and self.kind in ("install", "register", "upgrade"):
            what += f" ({self.package})"
        return what + (f": {self.reason}" if self.reason else "")


def plan(desired: Iterable[DesiredInstance], actual: Mapping[str, Actual],
         installed: Iterable[str], managed: Iterable[str]) -> list[Action]:
    wanted = {d.service: d for d in desired}
    have_packages = set(installed)
    ours = set(managed)
    removals: list[Action] = []
    for service in sorted(ours):
        if service in wanted or service not in actual:
            continue
        if actual[service].running:
            removals.append(Action("stop", service))
        removals.append(Action("unregister", service))
    changes: list[Action] = []
    for service in sorted(wanted):
        d = wanted[service]
        params = tuple(d.params)
        now = actual.get(service)
        if now is None:
            if d.package not in have_packages:
                changes.append(Action("install", service, d.package))
            changes.append(Action("register", service, d.package, params, d.boot))
            changes.append(Action("start", service))
            continue
        if service not in ours:
            changes.append(Action("refuse", service, d.package, reason=(
                f"{service} is registered on this node outside the fleet "
                f"({now.package}); unregister it by hand to let the fleet run it")))
            continue
        running = now.running
        if now.package != d.package:
            changes.append(Action("upgrade", service, d.package))
        if (now.params, now.boot) != (params, d.boot):
            if running:
                changes.append(Action("stop", service))
            changes.append(Action("register", service, d.package, params, d.boot))
            running = False
        if not running:
            changes.append(Action("start", service))
    return removals + changes
