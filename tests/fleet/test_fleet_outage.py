"""The coordinator goes away for a minute and comes back (three hosts, each its own
network namespace, home and agent); several coordinators share one PostgreSQL database.
Real processes throughout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass

import httpx
import netkit
import psutil
import pytest
from crosskit import CrossFleet, chat_status
from fleetkit import PACKAGE, _make_fleet, http_ok  # noqa: F401
from test_fleet_links import CLIENT_PORT, ECHO_SVC, SERVER, UPPER_SVC, join_and_assign

from conftest import SHIPYARD
from helpers import free_port, wait_until
from kit.procs import Proc

OUTAGE = 60.0  # the figure: the coordinator is away for a full minute
LATE_SVC = "1.late.prod.b"


@dataclass
class Served:
    proc: Proc
    url: str


@pytest.fixture(name="cross")
def _cross():
    with netkit.NetKit() as kit:
        fleet = CrossFleet(kit, lease=30.0)
        try:
            yield fleet
        finally:
            fleet.close()


def _serve(fleet: CrossFleet, port: int, name: str) -> Served:
    """A coordinator on the bridge address at ``port``. Its revision watch runs every ten
    minutes, so only its own writes wake its parked polls: one coordinator cannot learn
    of another's write (on SQLite, without NOTIFY) during this test."""
    bind = f"{fleet.kit.coordinator_address}:{port}"
    proc = fleet.spawn(name, [*SHIPYARD, "farm", "serve", "--bind", bind],
                       {**fleet.coordinator_env, "SHIPYARD_FLEET_POLL_SECONDS": "600"})

    def healthy() -> bool:
        if not proc.alive():
            raise AssertionError(f"{name} exited: {proc.output()}")
        try:
            return httpx.get(f"http://{bind}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 60, f"{name} to answer")
    return Served(proc, f"http://{bind}")


def _instances(fleet: CrossFleet, hosts: list[netkit.Host]) -> dict[tuple[str, str], tuple]:
    """Every instance on every host: (state, pid, the process's start time)."""
    found = {}
    for host in hosts:
        rows = json.loads(fleet.host_cli(host, "svc", "status", "--json").stdout)
        for row in rows:
            started = None
            if row.get("pid"):
                with contextlib.suppress(psutil.Error):
                    started = psutil.Process(row["pid"]).create_time()
            found[(host.name, row["service"])] = (row["state"], row.get("pid"), started)
    return found


def _chat(a: netkit.Host) -> tuple[list[str], list[str]]:
    """The server's view: components configured (what accept adapters wrote) and
    authenticated (transports connected with their passwords)."""
    status = chat_status(a.address, CLIENT_PORT)
    if status is None:
        return ["?"], ["?"]
    return sorted(c["host"] for c in status["configured"]), sorted(status["authenticated"])


def test_coordinator_away_60s_restarts_and_unwires_nothing(cross: CrossFleet) -> None:
    """Three hosts linked across the fleet; the coordinator stops for 60 s. Meanwhile no
    instance on any host is restarted (same pid, same process start time) and no link is
    undone (the server keeps both components configured and authenticated, no agent runs
    an unlink); an assignment committed just before the stop, which no agent could learn
    of, is applied once the coordinator is back, and still nothing else restarts."""
    fleet = cross
    kit = fleet.kit
    a, b, c = kit.add_host("a"), kit.add_host("b"), kit.add_host("c")
    hosts = [a, b, c]
    fleet.publish_examples("chat-server", "jabber-echo", "jabber-upper", "svc-script")
    port = free_port(kit.coordinator_address)
    fleet.url = f"http://{kit.coordinator_address}:{port}"
    coordinator = _serve(fleet, port, "coordinator")
    join_and_assign(fleet, a, b, c)
    linked = (["echo.b.fleet.test", "upper.c.fleet.test"],) * 2
    wait_until(lambda: _chat(a) == linked, 120,
               "both transports configured on and authenticated to the server on a")
    wait_until(lambda: {k: v["state"] for k, v in fleet.pairs().items()} == {
        (ECHO_SVC, SERVER): "linked", (UPPER_SVC, SERVER): "linked"}, 60,
        "both pairs reported linked")
    before = _instances(fleet, hosts)
    assert set(before) == {("a", SERVER), ("b", ECHO_SVC), ("c", UPPER_SVC)}
    assert all(state == "running" and started for state, _pid, started in before.values())
    logs = {name: len(proc.output()) for name, proc in fleet.agents.items()}

    # The stop. The coordinator is frozen first, so no agent can hear of what follows;
    # the assignment is committed through a second coordinator of the same database; then
    # the first one dies. The second is gone too: no coordinator answers for 60 s.
    other = _serve(fleet, free_port(kit.coordinator_address), "other")
    os.kill(coordinator.proc.popen.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    late_port = free_port(kit.coordinator_address)
    env = {**fleet.coordinator_env, "SHIPYARD_FARM_URL": other.url,
           "SHIPYARD_FARM_TOKEN": fleet.admin}
    assigned = subprocess.run([*SHIPYARD, "fleet", "assign", LATE_SVC, "--package", PACKAGE,
                               "--nodes", "b", "--", f"--port={late_port}"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert assigned.returncode == 0, assigned.stderr
    for served in (coordinator, other):
        os.kill(served.proc.popen.pid, signal.SIGKILL)
        served.proc.popen.wait(timeout=60)

    # 60 s away, checked all along: same processes everywhere, links in place, no agent
    # applied or undid anything.
    checks = 0
    while time.monotonic() - stopped < OUTAGE:
        assert _instances(fleet, hosts) == before, "an instance changed while away"
        assert _chat(a) == linked, "a link was undone while the coordinator was away"
        assert all(proc.alive() for proc in fleet.agents.values())
        checks += 1
    assert checks >= 3
    for name, proc in fleet.agents.items():
        assert "unreachable" in proc.output()[logs[name]:], name
        new = proc.output()[logs[name]:]
        for event in ("unlink", "stop ", "restart", "upgrade", LATE_SVC):
            assert event not in new, f"{name} did {event!r} while away:\n{new}"

    # Back (same address): the assignment made just before the stop is applied; the
    # instances that were running are the same processes, still linked.
    _serve(fleet, port, "back")
    wait_until(lambda: _instances(fleet, [b]).get(("b", LATE_SVC), ("",))[0] == "running",
               120, "the assignment made just before the stop to be applied on b")
    after = _instances(fleet, hosts)
    assert {k: v for k, v in after.items() if k[1] != LATE_SVC} == before
    assert _chat(a) == linked
    for name, proc in fleet.agents.items():
        assert "answers again" in proc.output()[logs[name]:], name
        lines = proc.output()[logs[name]:].splitlines()
        unreachable = [line for line in lines if "unreachable" in line]
        assert len(unreachable) == 1, unreachable  # one line per event, not per retry
        assert not any("unlink" in line for line in lines), name


@pytest.mark.postgres
def test_two_coordinators_share_postgresql_and_notify_wakes_polls(make_fleet,
                                                                  pg_url: str) -> None:
    # Parked polls re-read the revision only every 10 minutes and agents park for two:
    # an assignment made through the *other* coordinator can only arrive within the
    # deadline below through PostgreSQL's NOTIFY.
    fleet = make_fleet(pg_url, poll=600.0, lease=60.0)
    fleet.publish_examples("svc-script")
    one = fleet.start_coordinator(name="one")
    two = fleet.start_coordinator(name="two")
    a, b = fleet.node("a"), fleet.node("b")
    a.join(one.url, "side=one")
    b.join(two.url, "side=two")
    a.start_agent(wait=120.0)
    b.start_agent(wait=120.0)

    def settled() -> bool:
        views = fleet.node_views(one.url)
        revision = json.loads(fleet.operator(one.url, "status", "--json").stdout)["revision"]
        return all(views[n]["revision_applied"] == revision for n in ("a", "b"))

    wait_until(settled, 60, "both agents to apply the current revision (then they park)")
    port_a, port_b = free_port(), free_port()
    fleet.operator(one.url, "assign", "1.svc.prod.b", "--package", PACKAGE, "--nodes",
                   "side=two", "--", f"--port={port_b}")
    wait_until(lambda: http_ok(port_b), 60, "b (polling coordinator two) to apply an "
               "assignment made through coordinator one")
    fleet.operator(two.url, "assign", "1.svc.prod.a", "--package", PACKAGE, "--nodes", "a",
                   "--", f"--port={port_a}")
    wait_until(lambda: http_ok(port_a), 60, "a (polling coordinator one) to apply an "
               "assignment made through coordinator two")
    assert set(b.services()) == {"1.svc.prod.b"} and set(a.services()) == {"1.svc.prod.a"}
    rows = json.loads(fleet.operator(two.url, "status", "--json").stdout)["rows"]
    wait_until(lambda: all(r["actual"] == "running" for r in json.loads(
        fleet.operator(two.url, "status", "--json").stdout)["rows"]) and len(rows) == 2, 60,
        "both coordinators to show both instances running")
