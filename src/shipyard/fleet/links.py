"""Links across hosts, the coordinator's part (DESIGN.md "Fleet", Links across hosts).

The coordinator pairs announcers with acceptors fleet-wide and forwards ciphertext; it
never runs an adapter and never sees a password. :func:`fill` adds to one node's desired
document:

* for each accepting instance there, every announcement of its interface (host, port and
  the password sealed for *this* node), leaving out pairs an operator disabled,
  announcements whose node is lost or revoked, and instances no longer assigned: the
  acceptor's agent runs ``--remove`` for whatever disappears;
* for each announcing instance there, every acceptor of its interface (disabled pairs
  too: disabling makes the acceptor refuse, it does not move the announcer) with that
  node's advertised address, the port it accepts on (``[[link.accept]] port`` of its
  package, a ``{param.NAME}`` resolved with the assignment's parameters and the package's
  ``[service.params]`` defaults, as registration resolves them; none declared: the
  announcer's own port) and X25519 key, so the announcer's agent can seal its password for
  each acceptor node (a new acceptor node gets its copy the same way) and write where to
  connect into the announcer's generated link file. Acceptors on a lost node stay listed:
  a missed lease is not a new address, and a transport is not restarted for it.

Which interfaces a package announces or accepts comes from its ``shipyard.toml`` in the
repository the coordinator already checks assignments against, read once per coordinate
(coordinates are immutable, so the cache never goes stale).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from shipyard.config import Settings
from shipyard.coords import PackageCoord
from shipyard.db.fleet_models import (
    FleetAnnouncement,
    FleetAssignment,
    FleetDisabledPair,
    FleetNode,
    FleetRevision,
)
from shipyard.errors import ShipyardError
from shipyard.formats import fleet as wire
from shipyard.manifest import LinkAccept, ParamSpec


@dataclass(frozen=True)
class Interfaces:
    """What one package's manifest declares; ``problem`` when it could not be read.
    ``accept_specs`` and ``params`` say on which port an instance accepts."""

    announces: frozenset[str] = frozenset()
    accepts: frozenset[str] = frozenset()
    problem: str | None = None
    accept_specs: tuple[LinkAccept, ...] = ()
    params: tuple[ParamSpec, ...] = ()

    def accept_port(self, interface: str, params_json: str) -> int | None:
        """The port an instance with these assignment parameters accepts ``interface``
        on; None when the package does not say (or the parameters do not resolve it:
        registration on the node refuses those)."""
        spec = next((a for a in self.accept_specs if a.interface == interface), None)
        if spec is None or spec.port_param is None:
            return spec.port if spec is not None else None
        from shipyard.link.generate import announced_port
        from shipyard.svc.params import parse_params, with_defaults

        try:
            given = json.loads(params_json or "[]")
            values = parse_params(with_defaults(self.params, [str(p) for p in given]))
            return announced_port(spec, values, key="port")
        except (ShipyardError, ValueError, TypeError):
            return None


class ManifestSource:
    """``shipyard.toml`` of packages in the coordinator's repository, cached per coordinate.

    A failed read is not cached (the package may be published a moment later)."""

    def __init__(self, settings: Settings, repo_dir: Path | None) -> None:
        self.settings = settings
        # Its own --repo is read with the public half of the key it signs with, as a
        # package check is (fleet.packages): no repo.key needed to trust itself.
        self.own_keys: list[Any] = []
        if not settings.repo.url.strip() and repo_dir is not None:
            self.settings = settings.with_overrides(
                {"repo.url": repo_dir.absolute().as_uri()}, source="coordinator")
            if not settings.repo.key:
                from shipyard.fleet.packages import own_public_key

                self.own_keys = own_public_key(self.settings, repo_dir)
        self.cache: dict[str, Interfaces] = {}
        self.lock = threading.Lock()

    def interfaces(self, package: str) -> Interfaces:
        with self.lock:
            found = self.cache.get(package)
        if found is not None:
            return found
        found = self._read(package)
        if found.problem is None:
            with self.lock:
                self.cache[package] = found
        return found

    def _read(self, package: str) -> Interfaces:
        from shipyard.formats.archive import inspect_archive
        from shipyard.pkg.install import repository_client
        from shipyard.pkg.resolve import pick

        if not self.settings.repo.url.strip():
            return Interfaces(problem="the coordinator has no repository (repo.url)")
        scratch = Path(tempfile.mkdtemp(prefix="shipyard-links-"))
        try:
            coord = PackageCoord.parse(package, require_version=True)
            with repository_client(self.settings) as client:
                if self.own_keys:
                    client.keys = self.own_keys
                entry = pick(client.index(), coord)
                archive = client.fetch_archive(entry, scratch)
            manifest = inspect_archive(archive)
        except ShipyardError as exc:
            return Interfaces(problem=f"package {package}: {exc.message}")
        except OSError as exc:
            return Interfaces(problem=f"package {package}: {exc}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return Interfaces(frozenset(a.interface for a in manifest.announces),
                          frozenset(a.interface for a in manifest.accepts),
                          accept_specs=manifest.accepts,
                          params=manifest.service.params if manifest.service else ())


_source: ManifestSource | None = None


def configure(settings: Settings, repo_dir: Path | None) -> None:
    """Called once by the fleet's HTTP layer when the coordinator starts."""
    global _source
    _source = ManifestSource(settings, repo_dir)


def _default_source() -> ManifestSource:
    """Until the HTTP layer configures us: this process's own settings (its repo.url)."""
    global _source
    if _source is None:
        from shipyard.config import load_settings

        _source = ManifestSource(load_settings(), None)
    return _source


def set_source(source: Any) -> None:
    """Tests (and benchmarks) may hand in any object with ``interfaces(package)``."""
    global _source
    _source = source


def _alive(row: Any) -> bool:
    """Lost (marked by the lease reaper, which bumps the revision) or revoked: the node's
    announcements are withdrawn. Not the lease's end time itself: heartbeats move it
    without a revision, so a cached view would judge from a stale copy of it."""
    return row.revoked_at is None and row.lost_at is None


@dataclass
class _View:
    """The fleet-wide part of every document at one revision, read once and shared: a
    change fans out to N nodes' documents, and without this each of them would read every
    node, assignment and announcement again (N x N rows per change)."""

    nodes: dict[int, Any]
    disabled: set[tuple[str, str]]
    assigned: dict[tuple[int, str], str]
    # interface -> [(announcement row, its sealed copies by node)]
    announcements: dict[str, list[tuple[Any, dict[str, str]]]]
    # interface -> acceptor addresses of every live (not revoked) node
    acceptors: dict[str, list[wire.AcceptorAddress]]


_views: dict[tuple[int, int], _View] = {}
_views_lock = threading.Lock()


def _read_view(conn: Connection, source: Any) -> _View:
    nodes = {row.id: row for row in conn.execute(select(
        FleetNode.id, FleetNode.name, FleetNode.address, FleetNode.sealing_key,
        FleetNode.lost_at, FleetNode.revoked_at, FleetNode.lease_expires_at))}
    disabled = {(r.announcer, r.acceptor) for r in conn.execute(
        select(FleetDisabledPair.announcer, FleetDisabledPair.acceptor))}
    rows = conn.execute(select(FleetAssignment.node_id, FleetAssignment.service,
                               FleetAssignment.package, FleetAssignment.params)).all()
    assigned = {(r.node_id, r.service): r.package for r in rows}
    params = {(r.node_id, r.service): r.params for r in rows}
    announcements: dict[str, list[tuple[Any, dict[str, str]]]] = {}
    for row in conn.execute(select(FleetAnnouncement).order_by(FleetAnnouncement.instance)):
        announcements.setdefault(row.interface, []).append((row, _sealed_map(row.sealed)))
    acceptors: dict[str, list[wire.AcceptorAddress]] = {}
    for (node_id, service), package in sorted(assigned.items(), key=lambda i: i[0][1]):
        owner = nodes.get(node_id)
        if owner is None or owner.revoked_at is not None:
            continue
        found = source.interfaces(package)
        for interface in sorted(found.accepts):
            port = found.accept_port(interface, params[(node_id, service)]) if isinstance(
                found, Interfaces) else None
            acceptors.setdefault(interface, []).append(wire.AcceptorAddress(
                acceptor=service, acceptor_node=owner.name, interface=interface,
                host=owner.address, port=port, node_key=owner.sealing_key))
    return _View(nodes, disabled, assigned, announcements, acceptors)


def _view(conn: Connection, source: Any) -> _View:
    """The view at the current revision, read once per revision and process: everything
    in it changes only with a revision (a lost node is marked by the reaper, which bumps)."""
    revision = int(conn.scalar(select(FleetRevision.revision).where(FleetRevision.id == 1))
                   or 0)
    key = (id(conn.engine), revision)
    with _views_lock:
        view = _views.get(key)
        if view is None:
            view = _read_view(conn, source)
            for old in [k for k in _views if k[0] == key[0] and k[1] < revision]:
                del _views[old]
            _views[key] = view
    return view


def fill(conn: Connection, node: Any, doc: wire.DesiredDocument) -> None:
    """Add announcements and acceptor addresses to ``node``'s document (see module doc)."""
    if not doc.instances:
        return
    source = _source or _default_source()
    mine = {inst.package: source.interfaces(inst.package) for inst in doc.instances}
    if not any(i.accepts or i.announces for i in mine.values()):
        return
    fill_from(_view(conn, source), mine, node.name, doc)


def snapshot(conn: Connection, packages: set[str]) -> tuple[_View | None, dict[str, Any]]:
    """The links part of a fleet-wide snapshot (``service.read_snapshot``): every assigned
    package's interfaces, and the view when any of them announces or accepts. Read off
    the event loop, so that documents are then built from memory without I/O."""
    source = _source or _default_source()
    interfaces = {package: source.interfaces(package) for package in sorted(packages)}
    if not any(i.accepts or i.announces for i in interfaces.values()):
        return None, interfaces
    return _view(conn, source), interfaces


def fill_from(view: _View | None, interfaces: dict[str, Any], node_name: str,
              doc: wire.DesiredDocument) -> None:
    """:func:`fill` from an already read view and interface map (no database, no I/O)."""
    if view is None:
        return
    for inst in doc.instances:
        found = interfaces.get(inst.package)
        if found is None:
            continue
        for interface in sorted(found.accepts):
            for row, sealed in view.announcements.get(interface, []):
                owner = view.nodes.get(row.node_id)
                if owner is None or not _alive(owner):
                    continue
                if (row.node_id, row.instance) not in view.assigned:
                    continue  # unassigned: its agent may be gone before withdrawing it
                if row.instance == inst.service or (row.instance, inst.service) in \
                        view.disabled:
                    continue
                inst.announcements.append(wire.Announcement(
                    announcer=row.instance, announcer_node=owner.name,
                    interface=row.interface, host=row.host, port=row.port,
                    password_sealed=sealed.get(node_name)))
        for interface in sorted(found.announces):
            # A disabled pair keeps the address: disabling makes the acceptor refuse the
            # announcer, it does not move or restart the announcer.
            inst.acceptors.extend(
                a for a in view.acceptors.get(interface, []) if a.acceptor != inst.service)


def _sealed_map(text: str) -> dict[str, str]:
    with contextlib.suppress(ValueError, TypeError):
        data = json.loads(text or "{}")
        if isinstance(data, dict):
            return {str(k): v for k, v in data.items() if isinstance(v, str)}
    return {}
