"""Announcements and link pairs on the coordinator: what announcing nodes publish (the
password only sealed per acceptor node), the pairs an operator disabled, and the pair
states acceptor nodes report. Filling them into desired documents is
:mod:`shipyard.fleet.links`'s job.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, insert, select, update

from shipyard.db.fleet_models import FleetNode, FleetPair
from shipyard.fleet.db import FleetDB, utcnow
from shipyard.fleet.service import bump, check_service, revision
from shipyard.formats import fleet as wire


def publish_announcements(db: FleetDB, node: Any, body: wire.AnnouncementPublish) -> int | None:
    """Replace ``node``'s announcements with ``body``; the new revision when anything
    changed, else None. Only ciphertext is stored (``sealed``)."""
    from shipyard.db.fleet_models import FleetAnnouncement

    now = utcnow()
    wanted = {(a.instance, a.interface): a for a in body.announcements}
    for instance, _ in wanted:
        check_service(instance)
    with db.tx() as conn:
        have = {(r.instance, r.interface): r for r in conn.execute(
            select(FleetAnnouncement).where(FleetAnnouncement.node_id == node.id))}
        changed = False
        for key, old in have.items():
            if key not in wanted:
                conn.execute(delete(FleetAnnouncement).where(FleetAnnouncement.id == old.id))
                changed = True
        for key, item in wanted.items():
            sealed = json.dumps(item.sealed, sort_keys=True)
            row = have.get(key)
            if row is None:
                conn.execute(insert(FleetAnnouncement).values(
                    node_id=node.id, instance=item.instance, interface=item.interface,
                    host=item.host, port=item.port, sealed=sealed, updated_at=now))
                changed = True
            elif (row.host, row.port, row.sealed) != (item.host, item.port, sealed):
                conn.execute(update(FleetAnnouncement).where(FleetAnnouncement.id == row.id)
                             .values(host=item.host, port=item.port, sealed=sealed,
                                     updated_at=now))
                changed = True
        return bump(conn) if changed else None


def set_pair_disabled(db: FleetDB, body: wire.LinkPairRequest, disabled: bool, by: str
                      ) -> wire.ChangeAnswer:
    from shipyard.db.fleet_models import FleetDisabledPair

    announcer, acceptor = check_service(body.announcer), check_service(body.acceptor)
    with db.tx() as conn:
        row = conn.execute(select(FleetDisabledPair.id).where(
            FleetDisabledPair.announcer == announcer,
            FleetDisabledPair.acceptor == acceptor)).first()
        if disabled and row is None:
            conn.execute(insert(FleetDisabledPair).values(
                announcer=announcer, acceptor=acceptor, created_at=utcnow(), created_by=by))
            return wire.ChangeAnswer(revision=bump(conn),
                                     changed=[f"disabled {announcer} -> {acceptor}"])
        if not disabled and row is not None:
            conn.execute(delete(FleetDisabledPair).where(FleetDisabledPair.id == row.id))
            return wire.ChangeAnswer(revision=bump(conn),
                                     changed=[f"enabled {announcer} -> {acceptor}"])
        return wire.ChangeAnswer(revision=revision(conn), changed=[])


def link_pairs(db: FleetDB) -> list[wire.LinkPairView]:
    """Every pair the acceptors' nodes reported, plus disabled pairs nobody reported."""
    from shipyard.db.fleet_models import FleetAnnouncement, FleetDisabledPair

    with db.rtx() as conn:
        names = {r.id: r.name for r in conn.execute(select(FleetNode.id, FleetNode.name))}
        announcer_node = {r.instance: names.get(r.node_id, "")
                          for r in conn.execute(select(FleetAnnouncement))}
        disabled = {(r.announcer, r.acceptor) for r in conn.execute(select(FleetDisabledPair))}
        views = []
        seen = set()
        for row in conn.execute(select(FleetPair).order_by(FleetPair.announcer,
                                                            FleetPair.acceptor)):
            key = (row.announcer, row.acceptor)
            seen.add(key)
            views.append(wire.LinkPairView(
                announcer=row.announcer, announcer_node=announcer_node.get(row.announcer, ""),
                acceptor=row.acceptor, acceptor_node=names.get(row.node_id, ""),
                interface=row.interface, state=row.state, disabled=key in disabled,
                last_error=row.last_error))
        for announcer, acceptor in sorted(disabled - seen):
            views.append(wire.LinkPairView(
                announcer=announcer, announcer_node=announcer_node.get(announcer, ""),
                acceptor=acceptor, acceptor_node="", interface="", state="disabled",
                disabled=True, last_error=""))
    return views
