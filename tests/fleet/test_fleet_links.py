"""Links across hosts, every host its own network namespace, home and agent process.

chat-server runs on host a, jabber-echo on b and jabber-upper on c. Each transport learns
the server's address from the coordinator (never from a file of another host), really
authenticates to it with a password that crossed only sealed, and loses its link when the
pair is disabled or its node's lease runs out.
"""

from __future__ import annotations

import json

import httpx
import netkit
import pytest
import sqlalchemy
from crosskit import CrossFleet, chat, chat_status

from helpers import wait_until

CHAT = "org.shipyard.examples:chat-server:1.0.0"
ECHO = "org.shipyard.examples:jabber-echo:1.0.0"
UPPER = "org.shipyard.examples:jabber-upper:1.0.0"
SERVER, ECHO_SVC, UPPER_SVC = "1.chat.prod.a", "1.echo.prod.b", "1.upper.prod.c"
CLIENT_PORT = 5222


@pytest.fixture(name="fleet")
def _fleet(db_url: str):
    """On SQLite and on PostgreSQL (the coordinator in the root namespace reaches it)."""
    with netkit.NetKit() as kit:
        fleet = CrossFleet(kit, db_url=db_url)
        try:
            yield fleet
        finally:
            fleet.close()


def _password(host: netkit.Host, service: str) -> str:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(host.home / "runtime" / service / "etc" / "link-jabber-component.ini")
    return parser["link"]["password"]


def _config(host: netkit.Host, service: str) -> dict[str, str]:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(host.home / "runtime" / service / "etc" / "link-jabber-component.ini")
    return dict(parser["link"]) if parser.has_section("link") else {}


def join_and_assign(fleet: CrossFleet, a: netkit.Host, b: netkit.Host, c: netkit.Host
                    ) -> None:
    """Each host joined with its agent running; chat-server assigned to a (listening on
    a's address), jabber-echo to b and jabber-upper to c."""
    for host in (a, b, c):
        fleet.join(host)
        fleet.start_agent(host)
    fleet.fleet("assign", SERVER, "--package", CHAT, "--nodes", "a", "--",
                f"--bind={a.address}", f"--port={CLIENT_PORT}")
    fleet.fleet("assign", ECHO_SVC, "--package", ECHO, "--nodes", "b")
    fleet.fleet("assign", UPPER_SVC, "--package", UPPER, "--nodes", "c")


def test_server_and_transports_on_three_hosts(fleet: CrossFleet) -> None:
    kit = fleet.kit
    a, b, c = kit.add_host("a"), kit.add_host("b"), kit.add_host("c")
    fleet.publish_examples("chat-server", "jabber-echo", "jabber-upper")
    coordinator = fleet.start_coordinator()
    join_and_assign(fleet, a, b, c)

    echo_host, upper_host = "echo.b.fleet.test", "upper.c.fleet.test"

    def authenticated() -> list[str]:
        status = chat_status(a.address, CLIENT_PORT)
        return status["authenticated"] if status else []

    wait_until(lambda: authenticated() == [echo_host, upper_host], 120,
               message="both transports to authenticate to the server on host a")
    # each transport connects to the address it learned: a's bridge address, not its own
    assert _config(b, ECHO_SVC)["acceptor_host"] == a.address
    assert _config(c, UPPER_SVC)["acceptor_host"] == a.address
    assert chat(a.address, CLIENT_PORT, f"SEND {echo_host} hello there") == [
        f"FROM {echo_host} hello there"]
    assert chat(a.address, CLIENT_PORT, f"SEND {upper_host} hello there") == [
        f"FROM {upper_host} HELLO THERE"]
    wait_until(lambda: {k: v["state"] for k, v in fleet.pairs().items()} == {
        (ECHO_SVC, SERVER): "linked", (UPPER_SVC, SERVER): "linked"}, 60,
        message="fleet links to show both pairs linked")
    row = fleet.pairs()[(ECHO_SVC, SERVER)]
    assert (row["announcer_node"], row["acceptor_node"]) == ("b", "a")
    table = fleet.fleet("links").stdout
    assert ECHO_SVC in table and "linked" in table

    # disable one pair: --remove runs on a, the transport is refused; enable restores it
    fleet.fleet("links", "disable", ECHO_SVC, SERVER)
    wait_until(lambda: authenticated() == [upper_host], 60,
               message="the echo transport to be dropped by the server")
    assert chat(a.address, CLIENT_PORT, f"SEND {echo_host} hi") == [
        f"ERROR no component {echo_host}"]
    # the server closed the component's port (no component uses it any more) or, were it
    # shared, would answer "unknown component": either way the transport's tries are refused
    mark = len(_transport_log(b, ECHO_SVC))
    wait_until(lambda: "refused" in _transport_log(b, ECHO_SVC)[mark:].lower(), 30,
               message="the echo transport's next try to be refused")
    assert fleet.pairs()[(ECHO_SVC, SERVER)]["disabled"] is True
    fleet.fleet("links", "enable", ECHO_SVC, SERVER)
    wait_until(lambda: authenticated() == [echo_host, upper_host], 60,
               message="the echo transport to be linked again")

    # b's agent killed and its instance stopped: after the lease a removes b's transport
    fleet.kill_agent(b)
    fleet.host_cli(b, "svc", "stop", ECHO_SVC)
    wait_until(lambda: echo_host not in _configured(a), 60,
               message="a to remove b's transport after b's lease ran out")
    assert authenticated() == [upper_host]
    nodes = {n["name"]: n for n in json.loads(fleet.fleet("nodes", "--json").stdout)}
    assert nodes["b"]["lease_state"] == "lost"
    # b's agent back: its instance starts again and is relinked without operator action
    fleet.start_agent(b)
    wait_until(lambda: authenticated() == [echo_host, upper_host], 120,
               message="b's transport to be relinked after its agent came back")

    # the plaintext passwords are nowhere on the coordinator's side
    secrets = {_password(b, ECHO_SVC), _password(c, UPPER_SVC)}
    assert all(len(s) >= 16 for s in secrets)
    dump = _db_dump(fleet.coordinator_env["SHIPYARD_FARM_DB"])
    assert "shipyard-sealed-v1:" in dump  # the sealed copies are there...
    responses = [fleet.fleet(*args, "--json").stdout
                 for args in (("links",), ("nodes",), ("status",))]
    for host in (a, b, c):
        credential = (host.home / "state" / "node" / "credential").read_text().strip()
        responses.append(_get(fleet.url, f"/api/fleet/nodes/{host.name}/desired?wait=0",
                              credential))
    for host in (a, b, c):  # nor the node credentials, in any log
        secrets.add((host.home / "state" / "node" / "credential").read_text().strip())
    for secret in secrets:  # ...and the passwords are not
        assert secret not in dump
        assert secret not in coordinator.output()
        for proc in fleet.procs:  # the coordinator's and every agent's log
            assert secret not in proc.output(), proc.name
        for text in responses:
            assert secret not in text


def test_a_new_transport_starts_once_at_its_known_acceptor_address() -> None:
    """The server is assigned (so its address is in the transport's first document) before
    the transport: the agent writes that address into the transport's link file between
    register and start, so the fresh instance is started once and never restarted."""
    import re

    with netkit.NetKit() as kit:
        fleet = CrossFleet(kit)
        try:
            a, b = kit.add_host("a"), kit.add_host("b")
            fleet.publish_examples("chat-server", "jabber-echo")
            fleet.start_coordinator()
            for host in (a, b):
                fleet.join(host)
                fleet.start_agent(host)
            fleet.fleet("assign", SERVER, "--package", CHAT, "--nodes", "a", "--",
                        f"--bind={a.address}", f"--port={CLIENT_PORT}")
            wait_until(lambda: chat_status(a.address, CLIENT_PORT) is not None, 120,
                       message="the server to run on a")
            fleet.fleet("assign", ECHO_SVC, "--package", ECHO, "--nodes", "b")
            wait_until(lambda: chat_status(a.address, CLIENT_PORT)["authenticated"] == [
                "echo.b.fleet.test"], 120, message="b's transport to authenticate")
            wait_until(lambda: fleet.pairs().get((ECHO_SVC, SERVER), {}).get("state")
                       == "linked", 60, message="fleet links to show the pair linked")
            log = fleet.agents["b"].output()
            starts = re.findall(rf"start {re.escape(ECHO_SVC)}: started \S+ \(pid (\d+)\)",
                                log)
            assert len(starts) == 1, log
            assert "restarted" not in log, log
            (row,) = json.loads(fleet.host_cli(b, "svc", "status", ECHO_SVC,
                                               "--json").stdout)
            assert str(row["pid"]) == starts[0]
            assert _config(b, ECHO_SVC)["acceptor_host"] == a.address
        finally:
            fleet.close()


def _configured(host: netkit.Host) -> list[str]:
    status = chat_status(host.address, CLIENT_PORT)
    return [c["host"] for c in status["configured"]] if status else ["?"]


def _transport_log(host: netkit.Host, service: str) -> str:
    path = host.home / "runtime" / service / "log" / "transport.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _db_dump(url: str) -> str:
    """Every row of every table of the coordinator's database, as text."""
    from shipyard.db import make_engine, normalise_url

    engine = make_engine(normalise_url(url))
    try:
        meta = sqlalchemy.MetaData()
        meta.reflect(engine)
        lines = []
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                lines += [f"{table.name} {tuple(row)}" for row in conn.execute(table.select())]
        return "\n".join(lines)
    finally:
        engine.dispose()


def _get(url: str, path: str, credential: str) -> str:
    response = httpx.get(url + path, headers={"Authorization": f"Bearer {credential}"},
                         timeout=60)
    assert response.status_code == 200, response.text
    return response.text
