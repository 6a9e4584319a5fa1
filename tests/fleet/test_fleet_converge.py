"""The agent upgrades in place through ``svc upgrade``, and an agent killed in the middle
of converging picks up where it was: real processes."""

from __future__ import annotations

import json

from fleetkit import PACKAGE, _make_fleet, http_ok  # noqa: F401

from helpers import free_port, wait_until

NEW = "org.example:svc-script:1.1.0"


def test_new_version_is_an_upgrade_and_a_killed_agent_recovers(make_fleet) -> None:
    fleet = make_fleet(lease=30.0)
    fleet.publish_examples("svc-script", versions=("1.1.0",))
    url = fleet.start_coordinator().url
    node = fleet.node("n1")
    node.join(url)
    agent = node.start_agent()
    port = free_port()
    fleet.operator(url, "assign", "1.hello.prod.a", "--package", PACKAGE, "--nodes", "n1",
                   "--", f"--port={port}")
    wait_until(lambda: http_ok(port), 120, "the instance to run")

    fleet.operator(url, "assign", "1.hello.prod.a", "--package", NEW, "--nodes", "n1",
                   "--", f"--port={port}")
    # The agent's line for the action comes after the whole upgrade, including the removal
    # of the old version (which follows the new one's start, so "running" is too early).
    wait_until(lambda: f"upgrade 1.hello.prod.a ({NEW}): upgraded" in agent.output(), 120,
               "the upgrade")
    assert node.services()["1.hello.prod.a"]["package"] == NEW
    assert node.state("1.hello.prod.a") == "running"
    assert http_ok(port)
    installed = [p["coordinate"] for p in json.loads(node.cli("pkg", "list", "--json").stdout)]
    assert installed == [NEW]  # svc upgrade removed the old version once the new one ran

    # Kill the agent as soon as it starts converging to a new assignment; a new agent
    # finishes the job, and the instance is the fleet's (unassign removes it).
    other = free_port()
    fleet.operator(url, "assign", "2.hello.prod.a", "--package", NEW, "--nodes", "n1",
                   "--", f"--port={other}")
    wait_until(lambda: "register 2.hello.prod.a" in agent.output(), 120,
               "the agent to start converging")
    fleet.kill(agent)
    agent = node.start_agent()
    wait_until(lambda: http_ok(other), 120, "the restarted agent to finish")
    fleet.operator(url, "unassign", "2.hello.prod.a")
    wait_until(lambda: "2.hello.prod.a" not in node.services(), 120, "the unassignment")
    assert not http_ok(other) and http_ok(port)
