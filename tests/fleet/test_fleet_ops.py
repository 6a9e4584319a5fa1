"""Operating the fleet (issue 17 items 2 and 3 on the fleet side): the node agent and the
coordinator log one line per fleet event (text or JSON), no credential or token reaches
any of their logs, and ``/metrics`` follows the fleet (nodes by lease state, seconds since
each node was heard from, instances by state, link pairs by state)."""

from __future__ import annotations

import json
import signal

import httpx
from fleetkit import PACKAGE, _make_fleet, http_ok  # noqa: F401
from prometheus_client.parser import text_string_to_metric_families
from test_fleet_api import bearer, join, serve

from helpers import free_port, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", timeout=30)  # anonymous, like the pages
    assert answer.status_code == 200
    values = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def nodes(samples: Samples, state: str) -> float:
    return samples[("shipyard_fleet_nodes", (("state", state),))]


def instances(samples: Samples, state: str) -> float:
    return samples[("shipyard_fleet_instances", (("state", state),))]


def last_seen(samples: Samples, node: str) -> float | None:
    return samples.get(("shipyard_fleet_node_last_seen_seconds", (("node", node),)))


def test_agents_and_coordinator_log_fleet_events_and_metrics_follow(make_fleet,
                                                                     db_url: str) -> None:
    fleet = make_fleet(db_url)
    fleet.publish_examples("svc-script")
    coordinator = fleet.start_coordinator()
    url = coordinator.url
    before = scrape(url)
    assert [nodes(before, s) for s in ("alive", "lost", "revoked")] == [0, 0, 0]
    assert instances(before, "running") == 0

    a, b = fleet.node("a"), fleet.node("b")
    a.join(url, "role=web")
    b.join(url)
    joined = scrape(url)  # (a's lease may have run out already: no agent runs yet)
    assert nodes(joined, "alive") + nodes(joined, "lost") == 2
    assert last_seen(joined, "a") is not None and last_seen(joined, "a") >= 0
    # a logs JSON (as a unit under journald would: no timestamp), b plain text
    agent_a = fleet.spawn("agent-a", ["node", "agent", "--wait", "5", "--heartbeat", "0.5",
                                      "--log-format", "json", "--log-level", "debug"],
                          {**a.env, "JOURNAL_STREAM": "8:1234"})
    b.start_agent()
    wait_until(lambda: nodes(scrape(url), "alive") == 2, 60, "both nodes alive")
    port = free_port()
    fleet.operator(url, "assign", "1.hello.prod.a", "--package", PACKAGE, "--nodes", "a",
                   "--", f"--port={port}")
    wait_until(lambda: http_ok(port), 120, "1.hello.prod.a to answer on a")
    wait_until(lambda: instances(scrape(url), "running") == 1, 60,
               "the running instance in the metrics")

    # b's agent killed: after its lease the node is lost, and its last-seen figure grows
    assert b.agent is not None
    fleet.kill(b.agent, signal.SIGKILL)
    lost = wait_until(lambda: (s := scrape(url)) and nodes(s, "lost") == 1 and s, 60,
                      "b to show as lost in the metrics")
    assert nodes(lost, "alive") == 1
    assert last_seen(lost, "b") >= fleet.lease  # type: ignore[operator]
    assert last_seen(lost, "a") < fleet.lease  # type: ignore[operator]
    # The metrics call b lost once its lease ran out; the reaper marks it (and logs it) on its
    # next round: only a node it marked can be logged as back.
    wait_until(lambda: "node(s) lost (lease ran out): b" in coordinator.output(), 30,
               "the reaper to mark b lost")
    b.start_agent()
    wait_until(lambda: nodes(scrape(url), "alive") == 2, 60, "b to be back in the metrics")
    wait_until(lambda: "node b is back" in coordinator.output(), 30,
               "the coordinator to log b's return")

    fleet.operator(url, "unassign", "1.hello.prod.a")
    wait_until(lambda: not http_ok(port), 120, "1.hello.prod.a to be stopped")
    fleet.operator(url, "revoke", "b")
    wait_until(lambda: b.agent is not None and not b.agent.alive(), 60,
               "b's agent to stop once revoked")
    assert b.agent is not None and b.agent.popen.returncode == 3
    revoked = scrape(url)
    assert (nodes(revoked, "alive"), nodes(revoked, "revoked")) == (1, 1)
    assert last_seen(revoked, "b") is None

    # The coordinator: one line per event, after the change.
    wait_until(lambda: "unassigned 1.hello.prod.a from a" in coordinator.output(), 30,
               "the unassign line")
    text = coordinator.output()
    for expected in ("node a joined from ", "(address 127.0.1.2, role=web",
                     "node b joined from", "assigned 1.hello.prod.a (" + PACKAGE + ") to a by",
                     "node(s) lost (lease ran out): b", "node b is back",
                     "unassigned 1.hello.prod.a from a by", "node b revoked by"):
        assert expected in text, (expected, text)

    # Agent a: JSON, one object per event, no timestamp under journald.
    entries = [json.loads(line) for line in agent_a.output().splitlines()
               if line.startswith("{")]
    assert entries and all("ts" not in e for e in entries)
    seen = [(e.get("event"), e.get("action")) for e in entries]
    for wanted in [("start", None), ("desired", None), ("converge", None),
                   ("action", "install"), ("action", "register"), ("action", "start"),
                   ("action", "unregister")]:
        assert wanted in seen, (wanted, seen)
    # Agent b: text, the coordinator's refusal said once, at the end.
    text_b = b.agent.output()
    assert "ERROR shipyard.node: the coordinator refused this node" in text_b
    assert "answers again" not in text_b or "changing nothing" in text_b

    # Never a secret: the node credentials, join or admin tokens in no log.
    secrets = [a.credential(), b.credential(), fleet.token("admin")]
    for proc in fleet.procs:
        for secret in secrets:
            assert secret not in proc.output(), (proc.name, secret[:6])


def test_link_pairs_by_state_in_the_metrics(tmp_path) -> None:
    """Pair states as the acceptors' nodes report them, and disabled pairs (in-process)."""
    with serve(tmp_path) as (url, tokens):
        empty = scrape(url)
        assert empty[("shipyard_fleet_link_pairs", (("state", "linked"),))] == 0
        server = join(url, tokens["join0"], "a")
        pair = {"announcer": "1.echo.prod.b", "acceptor": "1.chat.prod.a",
                "interface": "jabber-component", "state": "linked", "last_error": ""}
        failed = {**pair, "announcer": "1.upper.prod.c", "state": "failed",
                  "last_error": "adapter exited 1"}
        answer = httpx.post(f"{url}/api/fleet/nodes/a/report", headers=bearer(server),
                            json={"revision_applied": 0, "links": [pair, failed]}, timeout=30)
        assert answer.status_code == 200, answer.text
        reported = scrape(url)
        assert reported[("shipyard_fleet_link_pairs", (("state", "linked"),))] == 1
        assert reported[("shipyard_fleet_link_pairs", (("state", "failed"),))] == 1
        answer = httpx.post(f"{url}/api/fleet/links/disable", headers=bearer(tokens["admin"]),
                            json={"announcer": "1.other.prod.d", "acceptor": "1.chat.prod.a"},
                            timeout=30)
        assert answer.status_code == 200, answer.text
        disabled = scrape(url)
        assert disabled[("shipyard_fleet_link_pairs", (("state", "disabled"),))] == 1
        assert disabled[("shipyard_fleet_revision", ())] > empty[("shipyard_fleet_revision",
                                                                   ())]
