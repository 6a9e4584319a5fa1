"""Which announcements and acceptor addresses a node's desired document carries, tested
in-process on the coordinator's real state functions (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from shipyard.db.fleet_models import FleetAnnouncement, FleetNode
from shipyard.fleet import links, pairs, service
from shipyard.fleet.db import FleetDB
from shipyard.formats import fleet as wire
from shipyard.formats import sealing
from shipyard.timeutil import utcnow

SERVER_PKG = "org.example:server:1.0.0"
TRANSPORT_PKG = "org.example:transport:1.0.0"
IFACE = "chat"
SERVER, TRANSPORT, OTHER = "1.server.p.a", "1.transport.p.b", "1.other.p.c"


class Source:
    def interfaces(self, package: str) -> links.Interfaces:
        return {SERVER_PKG: links.Interfaces(accepts=frozenset({IFACE})),
                TRANSPORT_PKG: links.Interfaces(announces=frozenset({IFACE}))
                }.get(package, links.Interfaces())


@pytest.fixture(name="db")
def _db(db_url: str):
    db = FleetDB(db_url)
    links.set_source(Source())
    try:
        yield db
    finally:
        links.set_source(None)
        db.dispose()


def add_node(db: FleetDB, name: str, address: str) -> str:
    key = sealing.public_key_text(sealing.generate_private_key())
    now = utcnow()
    with db.tx() as conn:
        conn.execute(insert(FleetNode).values(
            name=name, labels="{}", address=address, agent_version="", signing_key=key,
            sealing_key=key, credential_hash=name * 8, joined_at=now, last_seen_at=now,
            lease_expires_at=now + timedelta(seconds=60), revision_applied=0,
            last_error=""))
    return key


def node_row(db: FleetDB, name: str):
    with db.rtx() as conn:
        return conn.execute(FleetNode.__table__.select().where(FleetNode.name == name)).first()


def assign(db: FleetDB, node: str, svc: str, package: str) -> None:
    service.assign(db, wire.AssignRequest(service=svc, package=package, nodes=[node]))


def announce(db: FleetDB, node: str, svc: str, sealed: dict[str, str]) -> None:
    with db.tx() as conn:
        conn.execute(insert(FleetAnnouncement).values(
            node_id=node_row(db, node).id, instance=svc, interface=IFACE,
            host="t.example", port=5347, sealed=json.dumps(sealed), updated_at=utcnow()))


def doc(db: FleetDB, node: str) -> dict[str, wire.DesiredInstance]:
    document = service.desired_document(db, node_row(db, node))
    return {inst.service: inst for inst in document.instances}


@pytest.fixture(name="fleet")
def _fleet(db: FleetDB) -> FleetDB:
    add_node(db, "a", "10.0.0.1")
    add_node(db, "b", "10.0.0.2")
    add_node(db, "c", "10.0.0.3")
    assign(db, "a", SERVER, SERVER_PKG)
    assign(db, "b", TRANSPORT, TRANSPORT_PKG)
    announce(db, "b", TRANSPORT, {"a": "shipyard-sealed-v1:for-a", "c": "x"})
    return db


def test_acceptor_gets_the_announcement_sealed_for_its_own_node(fleet: FleetDB) -> None:
    (ann,) = doc(fleet, "a")[SERVER].announcements
    assert (ann.announcer, ann.announcer_node, ann.host, ann.port) == (
        TRANSPORT, "b", "t.example", 5347)
    assert ann.password_sealed == "shipyard-sealed-v1:for-a"  # not c's copy
    assert doc(fleet, "a")[SERVER].acceptors == []


def test_announcer_gets_the_acceptor_address_and_node_key(fleet: FleetDB) -> None:
    (acc,) = doc(fleet, "b")[TRANSPORT].acceptors
    assert (acc.acceptor, acc.acceptor_node, acc.host, acc.port) == (SERVER, "a", "10.0.0.1",
                                                                     None)
    assert acc.node_key == node_row(fleet, "a").sealing_key
    assert doc(fleet, "b")[TRANSPORT].announcements == []


def test_a_new_acceptor_node_is_listed_before_its_copy_is_sealed(fleet: FleetDB) -> None:
    add_node(fleet, "d", "10.0.0.4")
    assign(fleet, "d", "2.server.p.d", SERVER_PKG)
    (ann,) = doc(fleet, "d")["2.server.p.d"].announcements
    assert ann.password_sealed is None  # the acceptor waits for the announcer to seal
    nodes = [a.acceptor_node for a in doc(fleet, "b")[TRANSPORT].acceptors]
    assert nodes == ["a", "d"]


def test_a_disabled_pair_is_left_out_for_the_acceptor_only(fleet: FleetDB) -> None:
    pairs.set_pair_disabled(fleet, wire.LinkPairRequest(announcer=TRANSPORT,
                                                          acceptor=SERVER), True, "op")
    assert doc(fleet, "a")[SERVER].announcements == []
    assert [a.acceptor for a in doc(fleet, "b")[TRANSPORT].acceptors] == [SERVER]
    pairs.set_pair_disabled(fleet, wire.LinkPairRequest(announcer=TRANSPORT,
                                                          acceptor=SERVER), False, "op")
    assert len(doc(fleet, "a")[SERVER].announcements) == 1


def test_a_lost_announcer_node_withdraws_its_announcements(fleet: FleetDB) -> None:
    with fleet.tx() as conn:
        conn.execute(update(FleetNode).where(FleetNode.name == "b").values(
            lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert len(doc(fleet, "a")[SERVER].announcements) == 1  # until the reaper says lost
    assert service.reap(fleet) == ["b"]
    assert doc(fleet, "a")[SERVER].announcements == []
    service.heartbeat(fleet, node_row(fleet, "b"), wire.Heartbeat(revision_applied=0), 60.0)
    assert len(doc(fleet, "a")[SERVER].announcements) == 1  # back: relinked


def test_heartbeats_alone_keep_announcements(fleet: FleetDB) -> None:
    """A lease renewed by heartbeats (no revision moves) is not judged from a stale copy."""
    assert len(doc(fleet, "a")[SERVER].announcements) == 1
    with fleet.tx() as conn:  # the lease as first seen is long over; heartbeats renewed it
        conn.execute(update(FleetNode).where(FleetNode.name == "b").values(
            joined_at=utcnow() - timedelta(hours=1)))
    service.heartbeat(fleet, node_row(fleet, "b"), wire.Heartbeat(revision_applied=0), 60.0)
    assert service.reap(fleet) == []
    assert len(doc(fleet, "a")[SERVER].announcements) == 1


def test_a_lost_acceptor_keeps_its_address_a_revoked_one_does_not(fleet: FleetDB) -> None:
    with fleet.tx() as conn:
        conn.execute(update(FleetNode).where(FleetNode.name == "a").values(
            lease_expires_at=utcnow() - timedelta(seconds=1)))
    service.reap(fleet)
    assert [a.acceptor for a in doc(fleet, "b")[TRANSPORT].acceptors] == [SERVER]
    service.revoke(fleet, "a")
    assert doc(fleet, "b")[TRANSPORT].acceptors == []


def test_an_unassigned_announcer_is_withdrawn_even_if_its_row_remains(fleet: FleetDB) -> None:
    service.unassign(fleet, wire.UnassignRequest(service=TRANSPORT))
    assert doc(fleet, "a")[SERVER].announcements == []


def test_no_link_fields_without_link_interfaces(fleet: FleetDB) -> None:
    assign(fleet, "c", OTHER, "org.example:plain:1.0.0")
    inst = doc(fleet, "c")[OTHER]
    assert inst.announcements == [] and inst.acceptors == []



def test_the_acceptor_port_comes_from_its_assignment_parameters(db: FleetDB) -> None:
    """``[[link.accept]] port = "{param.cport}"``: the acceptor's own parameter, else its
    ``[service.params]`` default, is the port the announcer is told to connect to."""
    from shipyard.manifest import LinkAccept, ParamSpec

    ported = links.Interfaces(
        accepts=frozenset({IFACE}),
        accept_specs=(LinkAccept(IFACE, "a", port_param="cport"),),
        params=(ParamSpec("cport", "port", "5347"),))

    class PortSource(Source):
        def interfaces(self, package: str) -> links.Interfaces:
            return ported if package == SERVER_PKG else super().interfaces(package)

    links.set_source(PortSource())
    add_node(db, "a", "10.0.0.1")
    add_node(db, "b", "10.0.0.2")
    add_node(db, "c", "10.0.0.3")
    service.assign(db, wire.AssignRequest(service=SERVER, package=SERVER_PKG, nodes=["a"],
                                          params=["--cport=6001"]))
    assign(db, "c", "2.server.p.c", SERVER_PKG)
    assign(db, "b", TRANSPORT, TRANSPORT_PKG)
    found = {a.acceptor: (a.host, a.port) for a in doc(db, "b")[TRANSPORT].acceptors}
    assert found == {SERVER: ("10.0.0.1", 6001), "2.server.p.c": ("10.0.0.3", 5347)}
