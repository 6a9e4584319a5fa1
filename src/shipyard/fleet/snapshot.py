"""One fleet-wide read per revision, shared by every parked long poll of a coordinator.

A change wakes every parked long poll at once; each of them reading its own rows (the
revision, its assignments, the links view, its credential again) costs N x several
statements and thread hops per change, which is most of the propagation time at 1,000
nodes. The hub (:mod:`.hub`) reads one :class:`Snapshot` per revision instead and builds
each node's document from memory (:func:`document_from`), on the event loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from shipyard.db.fleet_models import FleetAssignment, FleetNode
from shipyard.fleet.db import FleetDB
from shipyard.fleet.service import revision
from shipyard.formats import fleet as wire


@dataclass(frozen=True)
class Snapshot:
    """Everything any node's desired document is built from, read in one transaction.

    ``revision`` is read *first*, so the rows are at least that
    new: a document may be newer than its label, never older (the node then gets the
    same content again at the next revision, which its agent treats as a no-op)."""

    revision: int
    # node id -> (credential hash, revoked): a woken poll's credential is checked here
    nodes: dict[int, tuple[str, bool]]
    # node id -> [(service, package, params, boot)] in service order
    assignments: dict[int, list[tuple[str, str, list[Any], bool]]]
    interfaces: dict[str, Any] = field(default_factory=dict)
    links: Any = None


def read_snapshot(db: FleetDB) -> Snapshot:
    with db.rtx() as conn:
        current = revision(conn)
        nodes = {r.id: (r.credential_hash, r.revoked_at is not None) for r in conn.execute(
            select(FleetNode.id, FleetNode.credential_hash, FleetNode.revoked_at))}
        assignments: dict[int, list[tuple[str, str, list[Any], bool]]] = {}
        for row in conn.execute(select(
                FleetAssignment.node_id, FleetAssignment.service, FleetAssignment.package,
                FleetAssignment.params, FleetAssignment.boot)
                .order_by(FleetAssignment.service)):
            assignments.setdefault(row.node_id, []).append(
                (row.service, row.package, json.loads(row.params or "[]"), bool(row.boot)))
        packages = {item[1] for items in assignments.values() for item in items}
        view, interfaces = _links_snapshot(conn, packages)
    return Snapshot(current, nodes, assignments, interfaces, view)


def credential_problem(snapshot: Snapshot, node: Any) -> str | None:
    """Why ``node`` (its row as authenticated) may no longer read, as of ``snapshot``;
    None while its credential is live there."""
    found = snapshot.nodes.get(node.id)
    if found is None or found[0] != node.credential_hash:
        return "invalid node credential"
    if found[1]:
        return f"node {node.name!r} has been revoked"
    return None


def document_from(snapshot: Snapshot, node: Any) -> wire.DesiredDocument:
    """``node``'s desired document from ``snapshot`` (memory only: no database, no I/O)."""
    doc = wire.DesiredDocument(node=node.name, revision=snapshot.revision, instances=[
        wire.DesiredInstance(service=svc, package=package, params=params, boot=boot)
        for svc, package, params, boot in snapshot.assignments.get(node.id, [])])
    if doc.instances and snapshot.links is not None:
        from shipyard.fleet import links

        links.fill_from(snapshot.links, snapshot.interfaces, node.name, doc)
    return doc


def _links_snapshot(conn: Connection, packages: set[str]) -> tuple[Any, dict[str, Any]]:
    try:
        from shipyard.fleet import links
    except ImportError:
        return None, {}
    return links.snapshot(conn, packages)
