"""The node agent's links step: both ends of every cross-host pair this node takes part in.

Called by the agent after each converge with the desired document (DESIGN.md "Fleet",
Links across hosts), and for an announcer about to be started (:func:`before_start`):

* **announcing instances** here: ask the announce adapter for host, port and password,
  seal the password for every acceptor node the document lists (each node's X25519 key,
  bound to the interface, the announcer and that node), publish all of this node's
  announcements at once, and write the acceptors' addresses into the announcer's generated
  link file, restarting the instance when they changed so it connects where it should.
  Seals are reused while password and key are unchanged, so an unchanged announcer
  publishes byte-identical ciphertext and the fleet's revision does not move;
* **accepting instances** here: open each announcement's sealed password with this node's
  private key and run the accept adapter (``link.remote``), with ``--remove`` for whatever
  an announcement that disappeared (announcer unassigned, its node lost, the pair disabled)
  had left applied.

The result is one :class:`~shipyard.formats.fleet.PairReport` per pair this node accepts,
which the agent sends with its report and ``fleet links`` shows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard import logsetup
from shipyard.config import Settings
from shipyard.coords import ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.formats import fleet as wire
from shipyard.formats import sealing
from shipyard.fsutil import atomic_write
from shipyard.link import remote
from shipyard.link.changes import change_acceptor
from shipyard.link.running import Running, kill_leftovers
from shipyard.link.state import FAILED, LINKED, PENDING, LinkData, Pair
from shipyard.node.client import Unreachable
from shipyard.svc import control

log = logging.getLogger("shipyard.node")
SEALS_NAME = "link-seals.json"
ANY_ACCEPTOR = "*"


def context(interface: str, announcer: str, node: str) -> str:
    """What a sealed link password is bound to: one announcer's interface, one node."""
    return sealing.link_context(interface, announcer, ANY_ACCEPTOR, node)


def converge(settings: Settings, client: Any, identity: Any, doc: wire.DesiredDocument,
             on_unreachable: Callable[[ShipyardError], None] | None = None,
             ) -> list[wire.PairReport]:
    """Both halves under the link lock (shared with ``link reconcile``, whose start kills
    adapters it finds recorded as running: ours must not be among them); announcers whose
    acceptor address changed are restarted after the lock is released. An unreachable
    coordinator goes to ``on_unreachable`` (the agent's one line for that event) rather
    than adding a links warning of its own."""
    running = Running(settings)
    restart: list[str] = []
    try:
        with remote.locked(settings) as state:
            killed = kill_leftovers(settings)  # adapters of a killed agent or reconcile
            if killed:
                log.warning("killed %d adapter(s) left by an interrupted run", len(killed))
            problems = announce_all(settings, client, identity, doc, running, restart,
                                    on_unreachable)
            reports = accept_all(settings, state, identity, doc, running)
    finally:
        running.close()
    for service in restart:
        problem = _restart_if_running(settings, service)
        if problem:
            problems.append(problem)
    for problem in problems:
        log.warning("links: %s", problem, extra={"event": "link-failed"})
    return reports


# -- the announcing side ------------------------------------------------------------------------


def _fingerprint(interface: str, announcer: str, data: LinkData) -> str:
    text = f"{interface}\0{announcer}\0{data.host}\0{data.port}\0{data.password}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _load_seals(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def announce_all(settings: Settings, client: Any, identity: Any, doc: wire.DesiredDocument,
                 running: Running, restart: list[str],
                 on_unreachable: Callable[[ShipyardError], None] | None = None) -> list[str]:
    seals_path = Path(identity.dir) / SEALS_NAME
    old_seals = _load_seals(seals_path)
    seals: dict[str, Any] = {}
    items: list[wire.AnnouncementItem] = []
    problems: list[str] = []
    for inst in doc.instances:
        local = remote.local_instance(settings, inst.service)
        if local is None or local.manifest is None:
            continue
        for spec in local.announces():
            data = remote.announce(settings, local, spec, running)
            if isinstance(data, str):
                problems.append(f"{inst.service} {spec.interface}: {data}")
                continue
            logsetup.register_secret(data.password)  # a last guard: never in a log line
            acceptors = [a for a in inst.acceptors if a.interface == spec.interface]
            changed, problem = _connect_to(settings, inst, local, spec, data)
            if changed:
                restart.append(inst.service)
            if problem:
                problems.append(problem)
            key = f"{inst.service} {spec.interface}"
            fingerprint = _fingerprint(spec.interface, inst.service, data)
            previous = old_seals.get(key) or {}
            reuse = previous.get("sealed", {}) if previous.get("fp") == fingerprint else {}
            sealed: dict[str, str] = {}
            stored: dict[str, Any] = {}
            for acceptor in acceptors:
                node = acceptor.acceptor_node
                if node in sealed:
                    continue
                old = reuse.get(node) or {}
                if old.get("key") == acceptor.node_key and isinstance(old.get("text"), str):
                    text = old["text"]
                else:
                    text = sealing.seal(data.password, acceptor.node_key,
                                        context(spec.interface, inst.service, node))
                sealed[node] = text
                stored[node] = {"key": acceptor.node_key, "text": text}
            seals[key] = {"fp": fingerprint, "sealed": stored}
            items.append(wire.AnnouncementItem(interface=spec.interface, instance=inst.service,
                                               host=data.host, port=data.port, sealed=sealed))
    try:
        if client.publish(identity.name, wire.AnnouncementPublish(announcements=items)):
            log.info("published %d announcement(s)", len(items),
                     extra={"event": "announce", "count": len(items)})
    except Unreachable as exc:
        if on_unreachable is None:
            problems.append(f"announcements not published: {exc.message}")
        else:
            on_unreachable(exc)
    except ShipyardError as exc:
        problems.append(f"announcements not published: {exc.message}")
    if seals != old_seals:
        atomic_write(seals_path, json.dumps(seals, sort_keys=True) + "\n", mode=0o600)
    return problems


def _connect_to(settings: Settings, inst: wire.DesiredInstance, local: Any, spec: Any,
                data: LinkData) -> tuple[bool, str | None]:
    """Write the acceptors' addresses of ``spec``'s interface into the announcer's link
    file (an acceptor that names no port is reached on the announced one); (changed, why
    it failed)."""
    addresses = tuple(sorted({(a.host, a.port or data.port) for a in inst.acceptors
                              if a.interface == spec.interface}))
    try:
        if not remote.set_acceptors(settings, local, spec, addresses):
            return False, None
    except (ShipyardError, OSError) as exc:
        return False, (f"{inst.service} {spec.interface}: "
                       f"{exc.message if isinstance(exc, ShipyardError) else exc}")
    log.info("%s: %s now connects to %s", inst.service, spec.interface,
             ", ".join(f"{h}:{p}" for h, p in addresses) or "nothing",
             extra={"event": "acceptor-address", "service": inst.service})
    return True, None


def before_start(settings: Settings, inst: wire.DesiredInstance) -> None:
    """Called by the agent before it starts ``inst``: the acceptor addresses its document
    already lists go into its link file now, so a new transport starts once, connecting
    where it should, instead of being restarted by the links step right after its first
    start. A failure is only logged: the links step after the converge tries again."""
    if not inst.acceptors:
        return
    local = remote.local_instance(settings, inst.service)
    if local is None or local.manifest is None:
        return
    running = Running(settings)
    problems: list[str] = []
    try:
        with remote.locked(settings):
            for spec in local.announces():
                data = remote.announce(settings, local, spec, running)
                if isinstance(data, str):
                    problems.append(f"{inst.service} {spec.interface}: {data}")
                    continue
                logsetup.register_secret(data.password)
                _changed, problem = _connect_to(settings, inst, local, spec, data)
                if problem:
                    problems.append(problem)
    finally:
        running.close()
    for problem in problems:
        log.warning("links: %s", problem, extra={"event": "link-failed"})


def _restart_if_running(settings: Settings, service: str) -> str | None:
    """Restart an announcer so it reads its new acceptor address (nothing if stopped)."""
    ctx = control.Context(settings)
    coordinate = ServiceCoord.parse(service)
    try:
        registration = control.require_registration(settings, coordinate)
        if not control.is_active(ctx, registration):
            return None
        stopped = control.stop(ctx, coordinate)
        started = control.start(ctx, coordinate)
    except ShipyardError as exc:
        return f"{service}: restart for its new acceptor address failed: {exc.message}"
    log.info("restarted %s for its new acceptor address (%s; %s)", service,
             stopped.message, started.message, extra={"event": "restart", "service": service})
    return None


# -- the accepting side -------------------------------------------------------------------------


def accept_all(settings: Settings, state: Any, identity: Any, doc: wire.DesiredDocument,
               running: Running) -> list[wire.PairReport]:
    private = identity.sealing_private()
    node = identity.name
    wanted: dict[tuple[str, str, str], wire.Announcement] = {}
    for inst in doc.instances:
        for ann in inst.announcements:
            wanted[(ann.interface, ann.announcer, inst.service)] = ann
    reports: list[wire.PairReport] = []
    owed: dict[str, str] = {}  # acceptor -> its package's on_change, after its adapters ran
    for key in sorted(wanted):
        ann = wanted[key]
        pair = state.pairs.get(key)
        if pair is None:
            pair = state.pairs[key] = Pair(*key)
        _apply(settings, state, pair, ann, node, private, running, owed)
        reports.append(_report(pair, pair.state))
    for key in sorted(set(state.pairs) - set(wanted)):
        pair = state.pairs[key]
        if _remove(settings, state, pair, running, owed):
            state.pairs.pop(key, None)
        else:
            reports.append(_report(pair, FAILED))
    remote.save(settings, state)
    _notify(settings, owed)
    return reports


def _notify(settings: Settings, owed: dict[str, str]) -> None:
    """Reload (or restart) each acceptor whose adapter changed its config, as the local
    reconcile does (the package's ``on_change``), once however many of its pairs did."""
    for service, action in sorted(owed.items()):
        local = remote.local_instance(settings, service)
        if local is None or local.registration is None:
            continue
        done, error = change_acceptor(settings, local, action)
        if error:
            log.warning("%s of %s after its links changed failed: %s", action, service, error,
                        extra={"event": "link-failed", "acceptor": service})
        else:
            log.info("%s after its links changed: %s", service, done,
                     extra={"event": "link-" + action, "acceptor": service})


def _owe(owed: dict[str, str], service: str, spec: Any, changed: bool) -> None:
    """A reload or restart is owed only when an adapter said it changed the configuration
    (one that ends with "unchanged" leaves the running acceptor alone)."""
    action = getattr(spec, "on_change", "none") or "none"
    if changed and action != "none" and owed.get(service) != "restart":
        owed[service] = action


def _report(pair: Pair, state: str) -> wire.PairReport:
    known: dict[str, wire.PairState] = {"linked": "linked", "pending": "pending",
                                        "failed": "failed", "disabled": "disabled"}
    return wire.PairReport(announcer=pair.announcer, acceptor=pair.acceptor,
                           interface=pair.interface, state=known.get(state, "failed"),
                           last_error=(pair.error or "")[:2000])


def _acceptor(settings: Settings, pair: Pair) -> tuple[Any, Any, str | None]:
    local = remote.local_instance(settings, pair.acceptor)
    if local is None:
        return None, None, f"{pair.acceptor} is not registered on this node yet"
    if local.problem:
        return local, None, local.problem
    spec = next((s for s in local.accepts() if s.interface == pair.interface), None)
    if spec is None:
        return local, None, f"{pair.acceptor} does not accept {pair.interface}"
    return local, spec, None


def _apply(settings: Settings, state: Any, pair: Pair, ann: wire.Announcement, node: str,
           private: Any, running: Running, owed: dict[str, str]) -> None:
    if ann.password_sealed is None:
        pair.set_state(PENDING, f"waiting for {ann.announcer_node} to seal the password "
                                f"for this node")
        return
    try:
        password = sealing.open_sealed_text(ann.password_sealed, private,
                                            context(pair.interface, pair.announcer, node))
    except sealing.SealError as exc:
        pair.set_state(FAILED, exc.message)
        log.warning("link %s -> %s failed: %s", pair.announcer, pair.acceptor, exc.message,
                    extra={"event": "link-failed", "announcer": pair.announcer,
                           "acceptor": pair.acceptor})
        return
    logsetup.register_secret(password)  # a last guard: never in a log line
    local, spec, problem = _acceptor(settings, pair)
    if problem:
        pair.set_state(PENDING if local is None else FAILED, problem)
        return
    data = LinkData(ann.host, ann.port, password)
    if pair.applied == data and not pair.maybe:
        pair.set_state(LINKED)
        return
    if data not in pair.held():
        pair.maybe.append(data)
    remote.save(settings, state)  # the intent, before the adapter may write it
    errors = []
    for old in pair.held():
        if old.identity == data.identity:
            continue
        removed = remote.accept(settings, local, spec, pair.announcer, old, remove=True,
                                running=running)
        if removed.error is None:
            pair.maybe = [d for d in pair.maybe if d != old]
            if pair.applied == old:
                pair.applied = None
            _owe(owed, pair.acceptor, spec, removed.changed)
        else:
            errors.append(removed.error)
    error, code, changed = remote.accept(settings, local, spec, pair.announcer, data,
                                         remove=False, running=running)
    if error is None:
        pair.maybe = [d for d in pair.held() if d.identity != data.identity]
        pair.applied = data
        _owe(owed, pair.acceptor, spec, changed)
        log.info("linked %s -> %s (%s, from node %s)", pair.announcer, pair.acceptor,
                 pair.interface, ann.announcer_node,
                 extra={"event": "link", "announcer": pair.announcer,
                        "acceptor": pair.acceptor, "interface": pair.interface})
    else:
        errors.append(error)
    if errors:
        pair.set_state(FAILED, "; ".join(errors), code)
        log.warning("link %s -> %s failed: %s", pair.announcer, pair.acceptor,
                    "; ".join(errors),
                    extra={"event": "link-failed", "announcer": pair.announcer,
                           "acceptor": pair.acceptor, "interface": pair.interface})
    else:
        pair.set_state(LINKED)
    remote.save(settings, state)


def _remove(settings: Settings, state: Any, pair: Pair, running: Running,
            owed: dict[str, str]) -> bool:
    """``--remove`` everything the pair may hold; True when nothing is left to undo."""
    held = pair.held()
    if not held:
        return True
    local, spec, _problem = _acceptor(settings, pair)
    if local is None or spec is None:
        return True  # the acceptor is gone: nothing left to undo anything at
    pair.maybe, pair.applied = held, None
    remote.save(settings, state)
    errors = []
    for data in held:
        removed = remote.accept(settings, local, spec, pair.announcer, data, remove=True,
                                running=running)
        if removed.error is None:
            pair.maybe = [d for d in pair.maybe if d != data]
            _owe(owed, pair.acceptor, spec, removed.changed)
        else:
            errors.append(removed.error)
    if errors:
        pair.set_state(FAILED, "; ".join(errors))
        return False
    log.info("unlinked %s -> %s (%s)", pair.announcer, pair.acceptor, pair.interface,
             extra={"event": "unlink", "announcer": pair.announcer, "acceptor": pair.acceptor,
                    "interface": pair.interface})
    return True
