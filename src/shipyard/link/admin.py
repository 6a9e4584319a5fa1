"""The administrator's side: list pairs, disable/enable a pair, pin an announced host.

``link disable A B`` is the seed's "commented out" line, kept by Shipyard rather than in
the server's config (which each server spells differently): like ``juju suspend-relation``
it keeps the pair with a reason and runs the departure (``--remove``) at once.
"""

from __future__ import annotations

from typing import Any

from shipyard.config import Settings
from shipyard.coords import ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.link import generate
from shipyard.link.inventory import instance_for, load_inventory
from shipyard.link.reconcile import Report, locked_state, reconcile_locked
from shipyard.link.state import DISABLED, Disabled, LinkState, load_state, save_state
from shipyard.svc import registry


def _coordinate(text: str, what: str) -> str:
    return str(ServiceCoord.parse(text, where=f"{what}: "))


def _has_pair(settings: Settings, state: LinkState, announcer: str, acceptor: str) -> bool:
    if any(p.announcer == announcer and p.acceptor == acceptor for p in state.pairs.values()):
        return True
    inventory = load_inventory(settings)
    for interface, entries in inventory.announcers.items():
        if any(a.coordinate == announcer for a, _ in entries) and any(
                b.coordinate == acceptor for b, _ in inventory.acceptors.get(interface, [])):
            return True
    return False


def disable(settings: Settings, announcer: str, acceptor: str, reason: str = "", *,
            run: bool = True) -> Report | None:
    """Mark the pair disabled and (by default) reconcile, which runs ``--remove``."""
    announcer = _coordinate(announcer, "announcer")
    acceptor = _coordinate(acceptor, "acceptor")
    with locked_state(settings) as state:
        if not _has_pair(settings, state, announcer, acceptor):
            raise ShipyardError(
                f"no link between {announcer} and {acceptor}: {announcer} announces no "
                f"interface that {acceptor} accepts (see 'shipyard link list')")
        current = state.disabled.get((announcer, acceptor))
        if current is None:
            state.disabled[(announcer, acceptor)] = Disabled(announcer, acceptor, reason)
        elif reason:
            current.reason = reason
        save_state(settings, state)
        return reconcile_locked(settings, state) if run else None


def enable(settings: Settings, announcer: str, acceptor: str, *,
           run: bool = True) -> Report | None:
    """Lift a disable; the next reconcile (run now by default) links the pair again."""
    announcer = _coordinate(announcer, "announcer")
    acceptor = _coordinate(acceptor, "acceptor")
    with locked_state(settings) as state:
        if state.disabled.pop((announcer, acceptor), None) is None:
            raise ShipyardError(f"the link {announcer} -> {acceptor} is not disabled")
        save_state(settings, state)
        return reconcile_locked(settings, state) if run else None


def rows(settings: Settings) -> list[dict[str, Any]]:
    """What ``link list`` shows: no password, ever."""
    state = load_state(settings)
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for key in sorted(state.pairs):
        pair = state.pairs[key]
        seen.add((pair.announcer, pair.acceptor))
        error = pair.error
        marker = state.disabled.get((pair.announcer, pair.acceptor))
        if pair.state == DISABLED and marker is not None:
            error = f"disabled: {marker.reason}" if marker.reason else None
        if pair.maybe and not error:
            error = "interrupted; the next reconcile repairs it"
        out.append({
            "interface": pair.interface,
            "announcer": pair.announcer,
            "acceptor": pair.acceptor or None,
            "state": pair.state,
            "since": pair.since,
            "error": error,
            "exit_code": pair.exit_code,
            "disabled": marker is not None,
            "said": pair.said,
            "change": pair.change,
        })
    for (announcer, acceptor), marker in sorted(state.disabled.items()):
        if (announcer, acceptor) not in seen:
            out.append({
                "interface": None, "announcer": announcer, "acceptor": acceptor,
                "state": DISABLED, "since": marker.since,
                "error": f"disabled: {marker.reason}" if marker.reason else None,
                "exit_code": None, "disabled": True, "said": None, "change": None,
            })
    return out


def set_hostname(settings: Settings, coordinate: str, host: str | None,
                 interface: str | None = None, *, run: bool = True,
                 ) -> tuple[str, Report | None]:
    """Pin (or with ``host=None`` unpin) the host an instance announces; then reconcile."""
    coord = ServiceCoord.parse(coordinate, where="instance: ")
    registration = registry.load(settings, coord)
    if registration is None:
        raise ShipyardError(f"{coord} is not registered")
    instance = instance_for(settings, registration)
    if instance.problem:
        raise ShipyardError(f"{coord}: {instance.problem}")
    announces = instance.announces()
    if interface is not None:
        announces = [a for a in announces if a.interface == interface]
    if not announces:
        what = f"interface {interface}" if interface else "any interface"
        raise ShipyardError(f"{coord} does not announce {what}")
    if len(announces) > 1:
        names = ", ".join(a.interface for a in announces)
        raise ShipyardError(f"{coord} announces several interfaces ({names}): pass --interface")
    assert instance.runtime_dir is not None
    with locked_state(settings) as state:
        config = generate.set_host_override(
            settings, announces[0], instance.runtime_dir, coordinate=str(coord),
            user=instance.user, host=host, params=instance.params())
        report = reconcile_locked(settings, state) if run else None
    return str(config.host), report

