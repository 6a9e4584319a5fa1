"""The coordinator goes away and comes back; several coordinators share one PostgreSQL
database. Real processes throughout."""

from __future__ import annotations

import json

import pytest
from fleetkit import PACKAGE, _make_fleet, http_ok  # noqa: F401

from helpers import free_port, wait_until


def test_coordinator_down_changes_nothing_and_catches_up(make_fleet) -> None:
    fleet = make_fleet(lease=30.0)
    fleet.publish_examples("svc-script")
    port = free_port()
    coordinator = fleet.start_coordinator(port)
    url = coordinator.url
    node = fleet.node("n1")
    node.join(url)
    agent = node.start_agent(wait=5.0)
    first, second = free_port(), free_port()
    fleet.operator(url, "assign", "1.first.prod.a", "--package", PACKAGE, "--nodes", "n1",
                   "--", f"--port={first}")
    wait_until(lambda: http_ok(first), 120, "the first instance to run")
    pid = node.services()["1.first.prod.a"]["pid"]

    fleet.kill(coordinator)
    wait_until(lambda: "unreachable" in agent.output(), 60,
               "the agent to notice the coordinator is gone")
    # Meanwhile the operator assigns through another coordinator of the same database,
    # which this agent does not know: it can learn of it only from its own coordinator.
    other = fleet.start_coordinator(name="other")
    fleet.operator(other.url, "assign", "1.second.prod.a", "--package", PACKAGE, "--nodes",
                   "n1", "--", f"--port={second}")
    fleet.kill(other)
    assert agent.alive()
    services = node.services()
    assert set(services) == {"1.first.prod.a"}  # nothing applied, nothing removed
    assert services["1.first.prod.a"]["pid"] == pid and http_ok(first)

    fleet.start_coordinator(port, name="back")
    wait_until(lambda: http_ok(second), 120, "the assignment made meanwhile to be applied")
    assert node.services()["1.first.prod.a"]["pid"] == pid  # never restarted
    assert "answers again" in agent.output()
    log = agent.output().splitlines()
    unreachable = [line for line in log if "unreachable" in line]
    assert len(unreachable) == 1, unreachable  # one line per event, not one per retry


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
