"""The fleet's state over the database: joins and credentials, assignments, the desired
document, reports, heartbeats and leases. Stateless: every function is one short
transaction, so any number of coordinators may share a PostgreSQL database.

Every change to what a node should run bumps the one global revision in the same
transaction (:func:`bump`) and, on PostgreSQL, sends a NOTIFY that wakes long polls on
every coordinator. The NOTIFY is only a wake-up: a long poll compares the node's index
with the revision in the database, so a missed notification delays an answer by at most
the hub's poll period and never loses a change.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, text, update

from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.db.farm_models import FarmToken
from shipyard.db.fleet_models import (
    FleetAssignment,
    FleetInstance,
    FleetNode,
    FleetPair,
    FleetRevision,
)
from shipyard.errors import CoordinateError
from shipyard.fleet.db import FleetDB
from shipyard.fleet.errors import Conflict, FleetError, Forbidden, NotFound, Unauthorized
from shipyard.formats import fleet as wire
from shipyard.timeutil import aware, utcnow

NOTIFY_CHANNEL = "shipyard_fleet"
CREDENTIAL_PREFIX = "shn_"


def hash_secret(secret: str) -> str:
    # Credentials are 256-bit random: a plain sha256 is enough (nothing to guess).
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# -- the revision -----------------------------------------------------------------------------


def revision(conn: Connection) -> int:
    return int(conn.scalar(select(FleetRevision.revision).where(FleetRevision.id == 1)) or 0)


def bump(conn: Connection) -> int:
    """The next global revision (inside the caller's write transaction) and a wake-up for
    the other coordinators, delivered by PostgreSQL when that transaction commits."""
    conn.execute(update(FleetRevision).where(FleetRevision.id == 1)
                 .values(revision=FleetRevision.revision + 1))
    value = revision(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                     {"channel": NOTIFY_CHANNEL, "payload": str(value)})
    return value


# -- nodes and credentials --------------------------------------------------------------------


def lease_state(row: Any, now: datetime | None = None) -> wire.LeaseState:
    now = now or utcnow()
    if row.revoked_at is not None:
        return "revoked"
    expires = aware(row.lease_expires_at)
    if row.lost_at is not None or (expires is not None and expires < now):
        return "lost"
    return "alive"


def join(db: FleetDB, token_secret: str, body: wire.JoinRequest, lease_seconds: float
         ) -> tuple[str, int]:
    """Exchange a one-time join token for a node credential; returns (credential, revision).

    The token is spent in the same transaction that creates the node, so two joins racing
    with one token make one node. A name already taken by a live node is refused; a revoked
    node's name may be joined again (its old credential stays dead)."""
    digest = hash_secret(token_secret)
    credential = CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    with db.tx() as conn:
        token = conn.execute(select(FarmToken.id, FarmToken.role, FarmToken.revoked_at)
                             .where(FarmToken.token_hash == digest)).first()
        if token is None or token.revoked_at is not None:
            raise Unauthorized("invalid, used or revoked join token")
        if token.role != "node":
            raise Forbidden(f"a {token.role} token cannot join a node (needs a node token: "
                            "shipyard farm token create --role node)")
        spent = conn.execute(update(FarmToken).where(FarmToken.id == token.id)
                             .where(FarmToken.revoked_at.is_(None))
                             .values(revoked_at=now, last_used_at=now))
        if spent.rowcount != 1:
            raise Unauthorized("invalid, used or revoked join token")
        existing = conn.execute(select(FleetNode.id, FleetNode.revoked_at)
                                .where(FleetNode.name == body.name)).first()
        values = dict(labels=json.dumps(body.labels, sort_keys=True), address=body.address,
                      agent_version=body.agent_version, signing_key=body.signing_key,
                      sealing_key=body.sealing_key, credential_hash=hash_secret(credential),
                      join_token_id=token.id, joined_at=now, last_seen_at=now,
                      lease_expires_at=now + timedelta(seconds=lease_seconds), lost_at=None,
                      revision_applied=0, revoked_at=None, last_error="")
        if existing is None:
            conn.execute(insert(FleetNode).values(name=body.name, **values))
        elif existing.revoked_at is None:
            raise Conflict(f"node {body.name!r} has joined already (revoke it first: "
                           f"shipyard fleet revoke {body.name})")
        else:
            conn.execute(delete(FleetAssignment).where(FleetAssignment.node_id == existing.id))
            conn.execute(delete(FleetInstance).where(FleetInstance.node_id == existing.id))
            conn.execute(update(FleetNode).where(FleetNode.id == existing.id).values(**values))
        return credential, bump(conn)


def authenticate_node(db: FleetDB, credential: str, name: str) -> Any:
    """The node row for ``credential``, which must be node ``name``'s own (no cache: a
    revoked credential is refused at once)."""
    with db.rtx() as conn:
        row = conn.execute(select(FleetNode).where(
            FleetNode.credential_hash == hash_secret(credential))).first()
    return node_for(row, name)


def node_for(row: Any, name: str) -> Any:
    """``row`` (the node a credential belongs to, None when it belongs to none) when it may
    act as node ``name``; shared by the one-off and the batched check."""
    if row is None:
        raise Unauthorized("invalid node credential")
    if row.revoked_at is not None:
        raise Unauthorized(f"node {row.name!r} has been revoked")
    if row.name != name:
        raise Forbidden(f"node {row.name!r} may not read or write node {name!r}")
    return row


def operator_token(db: FleetDB, secret: str) -> Any:
    """The live farm token for ``secret`` (operators use the farm's admin tokens)."""
    with db.rtx() as conn:
        row = conn.execute(select(FarmToken.id, FarmToken.name, FarmToken.role,
                                  FarmToken.revoked_at)
                           .where(FarmToken.token_hash == hash_secret(secret))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke(db: FleetDB, name: str) -> int:
    with db.tx() as conn:
        done = conn.execute(update(FleetNode).where(FleetNode.name == name)
                            .where(FleetNode.revoked_at.is_(None))
                            .values(revoked_at=utcnow()))
        if done.rowcount != 1:
            raise NotFound(f"no joined node named {name!r}")
        return bump(conn)


def _node_view(row: Any, now: datetime) -> wire.NodeView:
    return wire.NodeView(
        name=row.name, labels=json.loads(row.labels or "{}"), address=row.address,
        agent_version=row.agent_version, joined_at=aware(row.joined_at) or row.joined_at,
        last_seen=aware(row.last_seen_at), lease_expires_at=aware(row.lease_expires_at),
        lease_state=lease_state(row, now), revision_applied=row.revision_applied,
        seen_from=row.seen_from or "")


def nodes(db: FleetDB) -> list[wire.NodeView]:
    now = utcnow()
    with db.rtx() as conn:
        return [_node_view(row, now)
                for row in conn.execute(select(FleetNode).order_by(FleetNode.name))]


# -- heartbeats, reports and leases -------------------------------------------------------------


def _touch(conn: Connection, node: Any, lease_seconds: float, revision_applied: int,
           **extra: Any) -> tuple[datetime, bool]:
    """Renew ``node``'s lease; returns (its end, whether the node came back from lost).
    Whether it was lost is decided by the row as this transaction clears it, not by the row
    read when the call was authenticated: the reaper may mark it in between, and two calls
    at once must not both count the return."""
    now = utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    came_back = conn.execute(update(FleetNode).where(FleetNode.id == node.id)
                             .where(FleetNode.lost_at.is_not(None))
                             .values(lost_at=None)).rowcount == 1
    conn.execute(update(FleetNode).where(FleetNode.id == node.id).values(
        last_seen_at=now, lease_expires_at=expires, lost_at=None,
        revision_applied=revision_applied, **extra))
    return expires, came_back


def heartbeat(db: FleetDB, node: Any, body: wire.Heartbeat, lease_seconds: float,
              seen_from: str = "") -> tuple[wire.HeartbeatAnswer, bool]:
    with db.tx() as conn:
        expires, came_back = _touch(conn, node, lease_seconds, body.revision_applied,
                                    seen_from=seen_from[:100])
        current = bump(conn) if came_back else revision(conn)
    return wire.HeartbeatAnswer(revision=current, lease_expires_at=expires), came_back


def report(db: FleetDB, node: Any, body: wire.NodeReport, lease_seconds: float,
           seen_from: str = "") -> int | None:
    """Store what the node sees (replacing its previous report); renews its lease. The new
    revision when the node came back from lost, else None."""
    now = utcnow()
    with db.tx() as conn:
        _, came_back = _touch(conn, node, lease_seconds, body.revision_applied,
                              agent_version=body.agent_version or node.agent_version,
                              last_error=body.last_error, seen_from=seen_from[:100])
        conn.execute(delete(FleetInstance).where(FleetInstance.node_id == node.id))
        if body.instances:
            conn.execute(insert(FleetInstance), [
                dict(node_id=node.id, service=item.service, package=item.package,
                     state=item.state, since=item.since, last_error=item.last_error,
                     reported_at=now) for item in body.instances])
        conn.execute(delete(FleetPair).where(FleetPair.node_id == node.id))
        if body.links:
            conn.execute(insert(FleetPair), [
                dict(node_id=node.id, announcer=p.announcer, acceptor=p.acceptor,
                     interface=p.interface, state=p.state, last_error=p.last_error,
                     updated_at=now) for p in body.links])
        return bump(conn) if came_back else None


def reap(db: FleetDB) -> list[str]:
    """Mark nodes whose lease ran out as lost (one revision for all of them)."""
    now = utcnow()
    with db.tx() as conn:
        names = list(conn.scalars(
            update(FleetNode).where(FleetNode.lost_at.is_(None))
            .where(FleetNode.revoked_at.is_(None))
            .where(FleetNode.lease_expires_at < now)
            .values(lost_at=now).returning(FleetNode.name)))
        if names:
            bump(conn)
    return sorted(names)


# -- assignments ---------------------------------------------------------------------------------


def select_nodes(conn: Connection, selectors: Iterable[str]) -> list[Any]:
    """Nodes named by ``selectors`` (names, or ``label=value``), live ones only. Every
    selector must match at least one node: a typo is an error, not an empty rollout."""
    rows = [r for r in conn.execute(select(FleetNode).order_by(FleetNode.name))
            if r.revoked_at is None]
    chosen: dict[str, Any] = {}
    for selector in selectors:
        selector = selector.strip()
        if "=" in selector:
            key, _, value = selector.partition("=")
            matched = [r for r in rows if json.loads(r.labels or "{}").get(key) == value]
            if not matched:
                raise NotFound(f"--nodes {selector}: no joined node has label {key}={value}")
        else:
            matched = [r for r in rows if r.name == selector]
            if not matched:
                raise NotFound(f"--nodes {selector}: unknown node (see shipyard fleet nodes)")
        for row in matched:
            chosen[row.name] = row
    return list(chosen.values())


def check_service(service: str) -> str:
    try:
        return str(ServiceCoord.parse(service))
    except CoordinateError as exc:
        raise FleetError(exc.message) from None


def check_params(params: list[str]) -> None:
    """Only ``{node.address}`` and ``{node.name}`` may stand in parameters: each node's
    agent fills them in; anything else in braces would reach the service as typed."""
    from shipyard.node.plan import NODE_PLACEHOLDERS, unknown_placeholder

    found = unknown_placeholder(params)
    if found is not None:
        raise FleetError(f"unknown placeholder {found} in the parameters (expected "
                         + " or ".join(f"{{{n}}}" for n in NODE_PLACEHOLDERS) + ")")


def check_package(package: str) -> PackageCoord:
    try:
        return PackageCoord.parse(package, require_version=True, where="--package: ")
    except CoordinateError as exc:
        raise FleetError(exc.message) from None


def assign(db: FleetDB, body: wire.AssignRequest) -> wire.ChangeAnswer:
    """Assign (or update) ``body.service`` on every selected node. The package must have
    been checked against the repository by the caller (:mod:`.packages`)."""
    service = check_service(body.service)
    package = str(check_package(body.package))
    check_params(body.params)
    now = utcnow()
    changed = []
    with db.tx() as conn:
        for node in select_nodes(conn, body.nodes):
            values = dict(package=package, params=json.dumps(body.params), boot=body.boot,
                          updated_at=now)
            current = conn.execute(select(FleetAssignment).where(
                FleetAssignment.node_id == node.id, FleetAssignment.service == service)).first()
            if current is None:
                conn.execute(insert(FleetAssignment).values(
                    node_id=node.id, service=service, created_at=now, **values))
                changed.append(f"assigned {service} ({package}) to {node.name}")
            elif (current.package, current.params, current.boot) != (
                    package, values["params"], body.boot):
                conn.execute(update(FleetAssignment).where(FleetAssignment.id == current.id)
                             .values(**values))
                changed.append(f"updated {service} on {node.name} ({package})")
        current_revision = bump(conn) if changed else revision(conn)
    return wire.ChangeAnswer(revision=current_revision, changed=changed)


def unassign(db: FleetDB, body: wire.UnassignRequest) -> wire.ChangeAnswer:
    service = check_service(body.service)
    with db.tx() as conn:
        query = select(FleetAssignment.id, FleetNode.name).join(
            FleetNode, FleetNode.id == FleetAssignment.node_id).where(
            FleetAssignment.service == service)
        if body.nodes:
            names = [n.name for n in select_nodes(conn, body.nodes)]
            query = query.where(FleetNode.name.in_(names))
        found = conn.execute(query).all()
        if not found:
            where = f" on {', '.join(body.nodes)}" if body.nodes else ""
            raise NotFound(f"{service} is not assigned{where}")
        conn.execute(delete(FleetAssignment).where(
            FleetAssignment.id.in_([row.id for row in found])))
        changed = [f"unassigned {service} from {row.name}" for row in found]
        return wire.ChangeAnswer(revision=bump(conn), changed=changed)


# -- the desired document --------------------------------------------------------------------


def desired_document(db: FleetDB, node: Any) -> wire.DesiredDocument:
    with db.rtx() as conn:
        current = revision(conn)
        rows = conn.execute(select(FleetAssignment).where(FleetAssignment.node_id == node.id)
                            .order_by(FleetAssignment.service)).all()
        doc = wire.DesiredDocument(node=node.name, revision=current, instances=[
            wire.DesiredInstance(service=row.service, package=row.package,
                                 params=json.loads(row.params or "[]"), boot=row.boot)
            for row in rows])
        fill_links(conn, node, doc)
    return doc


def fill_links(conn: Connection, node: Any, doc: wire.DesiredDocument) -> None:
    """Add the link fields (announcements, acceptor addresses) to ``doc``: the links
    stage's (``shipyard.fleet.links``) once it exists, nothing until then."""
    try:
        from shipyard.fleet import links
    except ImportError:
        return
    links.fill(conn, node, doc)


# -- views -----------------------------------------------------------------------------------


def status(db: FleetDB) -> wire.FleetStatus:
    with db.rtx() as conn:
        current = revision(conn)
        names = {r.id: r.name for r in conn.execute(select(FleetNode.id, FleetNode.name))}
        assigned = {(r.node_id, r.service): r for r in conn.execute(select(FleetAssignment))}
        actual = {(r.node_id, r.service): r for r in conn.execute(select(FleetInstance))}
    rows = []
    for key in sorted(set(assigned) | set(actual), key=lambda k: (names.get(k[0], ""), k[1])):
        want, have = assigned.get(key), actual.get(key)
        rows.append(wire.StatusRow(
            node=names[key[0]], instance=key[1],
            package=want.package if want is not None else (have.package if have else ""),
            desired="running" if want is not None else "absent",
            actual=have.state if have is not None else "unknown",
            since=aware(have.since) if have is not None else None,
            last_error=have.last_error if have is not None else ""))
    return wire.FleetStatus(revision=current, rows=rows)


