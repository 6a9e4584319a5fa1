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

An assignment's parameters may say ``{node.address}`` and ``{node.name}`` (one
``fleet assign ... -- --bind={node.address}`` for every selected node); the agent puts in
its own advertised address and name before planning (:func:`for_node`), so what it
registers is concrete and compares equal to the desired parameters at the next converge.
The coordinator refuses any other ``{...}`` at ``fleet assign`` (:func:`unknown_placeholder`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from shipyard.formats.fleet import DesiredInstance
from shipyard.svc.params import PLACEHOLDER_RE

NODE_PLACEHOLDERS = ("node.address", "node.name")


def unknown_placeholder(params: Iterable[str]) -> str | None:
    """The first ``{...}`` of ``params`` that is not a node placeholder, or None."""
    for param in params:
        for match in PLACEHOLDER_RE.finditer(param):
            if match.group(1) not in NODE_PLACEHOLDERS:
                return match.group(0)
    return None


def for_node(desired: Iterable[DesiredInstance], name: str, address: str
             ) -> list[DesiredInstance]:
    """``desired`` with ``{node.name}`` and ``{node.address}`` in its parameters replaced
    by this node's own (copies: the document kept on disk stays as the coordinator sent it)."""
    values = {"node.name": name, "node.address": address}

    def concrete(param: str) -> str:
        return PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), param)

    return [d if not any("{" in p for p in d.params) else
            d.model_copy(update={"params": [concrete(p) for p in d.params]})
            for d in desired]

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
