"""The fleet end to end, every part a real process: a coordinator under Uvicorn, a signed
repository over HTTP, two node agents with their own homes and addresses. On SQLite and on
PostgreSQL."""

from __future__ import annotations

import json
import stat

from fleetkit import PACKAGE, _make_fleet, http_ok, one_line_error  # noqa: F401

from helpers import free_port, wait_until


def test_join_assign_converge_unassign(make_fleet, db_url: str) -> None:
    fleet = make_fleet(db_url)
    fleet.publish_examples("svc-script")
    url = fleet.start_coordinator().url
    web, db = fleet.node("web1"), fleet.node("db1")
    web.join(url, "role=web", "zone=a")
    db.join(url, "role=db", "zone=a")

    # Keys and credential stay on the node, 0600; the coordinator knows public halves only.
    state = web.home / "state" / "node"
    for name in ("credential", "signing.key", "sealing.key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    web.start_agent()
    db.start_agent()
    wait_until(lambda: fleet.node_views(url)["web1"]["agent_version"], 60, "a first report")
    views = fleet.node_views(url)
    assert set(views) == {"web1", "db1"}
    assert views["web1"]["labels"] == {"role": "web", "zone": "a"}
    assert views["web1"]["address"] == web.address
    assert views["web1"]["lease_state"] == "alive"
    # Each agent's calls come from its own loopback address.
    assert (views["web1"]["seen_from"], views["db1"]["seen_from"]) == (web.address, db.address)
    port_a, port_b = free_port(), free_port()
    # By name, and by label.
    fleet.operator(url, "assign", "1.hello.prod.a", "--package", PACKAGE, "--nodes", "web1",
                   "--", f"--port={port_a}")
    fleet.operator(url, "assign", "1.hello.prod.b", "--package", PACKAGE, "--nodes",
                   "role=db", "--no-boot", "--", f"--port={port_b}")
    wait_until(lambda: http_ok(port_a), 120, "1.hello.prod.a to answer on web1")
    wait_until(lambda: http_ok(port_b), 120, "1.hello.prod.b to answer on db1")
    assert web.state("1.hello.prod.a") == "running"
    assert "1.hello.prod.b" not in web.services()  # each node runs only its own
    assert db.services()["1.hello.prod.b"]["boot"] is False
    installed = json.loads(db.cli("pkg", "list", "--json").stdout)
    assert [p["coordinate"] for p in installed] == [PACKAGE]

    def reported() -> list[dict] | None:
        rows = json.loads(fleet.operator(url, "status", "--json").stdout)["rows"]
        running = [r for r in rows if r["actual"] == "running"]
        return rows if len(running) == 2 else None

    rows = wait_until(reported, 60, "both instances reported running")
    assert {(r["node"], r["instance"], r["desired"]) for r in rows} == {
        ("web1", "1.hello.prod.a", "running"), ("db1", "1.hello.prod.b", "running")}
    table = fleet.operator(url, "status").stdout
    assert "1.hello.prod.a" in table and "web1" in table
    last_known = json.loads((state / "desired.json").read_text())
    assert [i["service"] for i in last_known["instances"]] == ["1.hello.prod.a"]

    revision = fleet.node_views(url)["web1"]["revision_applied"]
    assert revision >= 1
    fleet.operator(url, "unassign", "1.hello.prod.a")
    wait_until(lambda: "1.hello.prod.a" not in web.services(), 120,
               "web1 to stop and unregister 1.hello.prod.a")
    assert not http_ok(port_a)
    assert db.state("1.hello.prod.b") == "running"  # the other node is left alone
    wait_until(lambda: fleet.node_views(url)["web1"]["revision_applied"] > revision, 60,
               "web1 to report the new revision")
    log = web.agent.output()
    assert "stop 1.hello.prod.a" in log and "unregister 1.hello.prod.a" in log


def test_bad_input_changes_nothing(make_fleet, db_url: str) -> None:
    # No agent runs for one and two: with the kit's 3 s lease the reaper would mark them lost
    # (a revision each time) while the operator's calls run, which is not the bad input's doing.
    fleet = make_fleet(db_url, lease=600.0)
    fleet.publish_examples("svc-script")
    url = fleet.start_coordinator().url
    one, two = fleet.node("one"), fleet.node("two")
    one.join(url, "role=web")
    two.join(url)

    def status() -> dict:
        return json.loads(fleet.operator(url, "status", "--json").stdout)

    before = status()
    line = one_line_error(fleet.operator(url, "assign", "1.x.y.z", "--package", PACKAGE,
                                         "--nodes", "nosuch", check=False))
    assert "nosuch" in line and "unknown node" in line
    line = one_line_error(fleet.operator(url, "assign", "1.x.y.z", "--package", PACKAGE,
                                         "--nodes", "role=nothing", check=False))
    assert "role=nothing" in line
    line = one_line_error(fleet.operator(url, "assign", "1.x.y.z", "--package",
                                         "org.example:svc-script:9.9", "--nodes", "one",
                                         check=False))
    assert "org.example:svc-script:9.9" in line and "not in channel" in line
    one_line_error(fleet.operator(url, "assign", "1.x.y.z", "--package", "no-version:x",
                                  "--nodes", "one", check=False), code=2)
    one_line_error(fleet.operator(url, "unassign", "1.x.y.z", check=False))
    line = one_line_error(fleet.operator(url, "assign", "1.x.y.z", "--package", PACKAGE,
                                         "--nodes", "one", "--", "--bind={node.adress}",
                                         check=False))
    assert "unknown placeholder {node.adress}" in line and "{node.address}" in line
    assert status() == before  # nothing changed, not even the revision

    # A joined name cannot be taken by a second join; a used join token is spent.
    token = fleet.token("node", fresh=True)
    first = fleet.node("three")
    first.cli("node", "join", "--coordinator", url, "--token", token, "--name", "three",
              "--address", first.address)
    again = fleet.node("four")
    line = one_line_error(again.cli("node", "join", "--coordinator", url, "--token", token,
                                    "--name", "four", "--address", again.address,
                                    check=False))
    assert "join token" in line
    assert not (again.home / "state" / "node" / "node.json").exists()
    line = one_line_error(again.cli("node", "join", "--coordinator", url, "--token",
                                    fleet.token("node", fresh=True), "--name", "one",
                                    "--address", again.address, check=False))
    assert "has joined already" in line
    line = one_line_error(again.cli("node", "join", "--coordinator", url, "--token",
                                    fleet.token("admin", fresh=True), "--name", "five",
                                    "--address", again.address, check=False))
    assert "cannot join" in line
    line = one_line_error(again.cli("node", "join", "--coordinator", url, "--token", "x",
                                    "--name", "Bad Name", "--address", again.address,
                                    check=False), code=2)
    assert "--name" in line
    assert set(fleet.node_views(url)) == {"one", "two", "three"}

    # A node reads only its own document; forged and revoked credentials are refused.
    with fleet.api(url, one.credential()) as api:
        assert api.get("/api/fleet/nodes/one/desired", params={"wait": 0}).status_code == 200
        other = api.get("/api/fleet/nodes/two/desired", params={"wait": 0})
        assert other.status_code == 403 and "may not" in other.json()["detail"]
        assert api.post("/api/fleet/nodes/two/report",
                        json={"revision_applied": 0}).status_code == 403
        assert api.get("/api/fleet/nodes").status_code == 403  # not an operator
    with fleet.api(url, "shn_forged") as api:
        assert api.get("/api/fleet/nodes/one/desired", params={"wait": 0}).status_code == 401
    fleet.operator(url, "revoke", "two")
    with fleet.api(url, two.credential()) as api:
        refused = api.get("/api/fleet/nodes/two/desired", params={"wait": 0})
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    agent = two.start_agent()
    assert agent.popen.wait(timeout=60) == 3  # the agent stops; systemd does not restart it
    assert "refused this node" in agent.output()
    assert fleet.node_views(url)["two"]["lease_state"] == "revoked"


def test_lost_node_and_leave(make_fleet, db_url: str) -> None:
    fleet = make_fleet(db_url, lease=2.0)
    fleet.publish_examples("svc-script")
    url = fleet.start_coordinator().url
    node = fleet.node("n1")
    node.join(url)
    agent = node.start_agent()
    wait_until(lambda: fleet.node_views(url)["n1"]["agent_version"], 60, "a first report")
    assert fleet.node_views(url)["n1"]["lease_state"] == "alive"
    fleet.kill(agent)
    wait_until(lambda: fleet.node_views(url)["n1"]["lease_state"] == "lost", 60,
               "the lease to run out")
    assert "lost" in fleet.operator(url, "nodes").stdout
    node.start_agent()
    wait_until(lambda: fleet.node_views(url)["n1"]["lease_state"] == "alive", 60,
               "the node to come back")
    fleet.kill(node.agent)
    node.cli("node", "leave")
    assert fleet.node_views(url)["n1"]["lease_state"] == "revoked"
    line = one_line_error(node.cli("node", "status", check=False), code=2)
    assert "has not joined" in line
