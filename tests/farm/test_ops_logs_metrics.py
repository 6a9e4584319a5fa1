"""Operating the farm: the coordinator and the workers log one line per event (text or
JSON, without timestamps under systemd), no secret ever reaches a log, and ``/metrics``
reports the farm in Prometheus' text format with figures that follow what happens."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import httpx
from farmkit import (  # noqa: F401
    Farm,
    Mailbox,
    Source,
    _farm,
    _make_farm,
    _smtp,
    _sqlite_farm,
    request_ids,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families

from conftest import Shipyard

SMTP_PASSWORD = "smtp-secret-Pa55word-0123"


def _repository(shipyard: Shipyard, tmp_path: Path) -> Path:
    shipyard.run("repo", "keygen")
    repo = tmp_path / "repo"
    shipyard.run("repo", "init", str(repo))
    return repo


def test_one_log_line_per_event_and_never_a_secret(
        sqlite_farm: Farm, shipyard: Shipyard, tmp_path: Path,
        smtp: tuple[Mailbox, int]) -> None:
    farm = sqlite_farm
    box, port = smtp
    farm.extra_env.update(SHIPYARD_SMTP_HOST="127.0.0.1", SHIPYARD_SMTP_PORT=str(port),
                          SHIPYARD_SMTP_SENDER="farm@example.org",
                          SHIPYARD_SMTP_PASSWORD=SMTP_PASSWORD)
    coordinator = farm.start_coordinator(repo=_repository(shipyard, tmp_path))
    url = coordinator.url
    # The worker as a systemd unit runs it: token in the environment, JSON to the journal.
    worker_env = {**farm.env, "SHIPYARD_FARM_TOKEN": farm.token("worker"),
                  "JOURNAL_STREAM": "8:12345"}
    worker = farm._spawn("worker-w1", [
        "farm", "worker", "--coordinator", url, "--name", "w1", "--log-format", "json",
        "--workdir", str(farm.root / "wd1")], worker_env)
    source = Source.create(farm, url)
    source.package("good", "org.example", "good", "1.0", "echo good")
    source.package("bad", "org.example", "bad", "1.0", "echo broken; exit 3")
    _commit, output = source.push("one good, one bad")
    ids = {farm.build(url, b)["package"]: b for b in request_ids(output)}
    good, bad = ids["org.example:good"], ids["org.example:bad"]
    assert farm.wait_state(url, good, "succeeded", "failed")["state"] == "succeeded"
    assert farm.wait_state(url, bad, "succeeded", "failed")["state"] == "failed"
    wait_until(lambda: farm.build(url, good)["publish_state"] == "published", 60,
               what="the good build to be published")
    wait_until(lambda: box.messages, 60, what="the failure mail")

    # A worker killed mid-build: its lease runs out and the build is queued again.
    source.package("slow", "org.example", "slow", "1.0", "echo slow; sleep 300")
    _commit, output = source.push("a slow one")
    (slow,) = request_ids(output)
    wait_until(lambda: "slow" in farm.log(url, slow), 60, what="the slow build to run")
    farm.kill(worker, signal.SIGKILL)
    wait_until(lambda: f"build {slow}: lease lost -> queued" in coordinator.output(), 60,
               what="the coordinator to log the lost lease")
    farm.cli("farm", "build", "abort", str(slow), "--coordinator", url,
             "--token", farm.token("admin"))

    text = coordinator.output()
    for expected in (f"build {good} attempt 1 claimed by w1", f"build {bad} attempt 1 claimed",
                     f"build {good} attempt 1 on w1: success -> succeeded",
                     f"build {bad} attempt 1 on w1: failure -> failed",
                     f"published builds {good}", f"(build {bad}) sent to",
                     f"build {slow}: abort by test-admin (cancelled)", "worker w1 registered"):
        wait_until(lambda e=expected: e in coordinator.output(), 30,  # type: ignore[misc]
                   what=f"{expected!r} in the coordinator's log")
    text = coordinator.output()
    # Outside systemd each line has its own UTC timestamp.
    event_lines = [line for line in text.splitlines() if "shipyard.farm" in line]
    assert event_lines and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING)"
                                        r" shipyard\.farm", line) for line in event_lines), text

    # The worker's JSON lines: one object per event, no timestamp under JOURNAL_STREAM.
    entries = [json.loads(line) for line in worker.output().splitlines()
               if line.startswith("{")]
    assert entries and all("ts" not in entry for entry in entries)
    seen = {(entry.get("event"), entry.get("build")) for entry in entries}
    assert {("register", None), ("claim", good), ("finish", good), ("claim", bad),
            ("finish", bad), ("claim", slow)} <= seen, seen
    finish = next(e for e in entries if e.get("event") == "finish" and e["build"] == bad)
    assert finish["result"] == "failure" and finish["level"] == "info"

    secrets = [farm.token(role) for role in ("worker", "hook", "admin")] + [SMTP_PASSWORD]
    for proc in farm.procs:
        for secret in secrets:
            assert secret not in proc.output(), (proc.name, secret[:8])


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{url}/metrics", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_follow_the_farm(farm: Farm, shipyard: Shipyard, tmp_path: Path) -> None:
    """On SQLite and on PostgreSQL (the gauges are read from the database)."""
    url = farm.start_coordinator(repo=_repository(shipyard, tmp_path)).url
    before = _scrape(url)
    assert before[("shipyard_farm_queue_length", ())] == 0
    assert before[("shipyard_farm_builds", (("state", "succeeded"),))] == 0
    assert ("shipyard_repo_last_publish_seconds", ()) not in before

    source = Source.create(farm, url)
    source.package("a", "org.example", "a", "1.0", "echo a")
    source.package("b", "org.example", "b", "1.0", "exit 1")
    _commit, output = source.push("two builds, no worker yet")
    built, broken = request_ids(output)
    queued = _scrape(url)
    assert queued[("shipyard_farm_queue_length", ())] == 2
    assert queued[("shipyard_farm_builds", (("state", "queued"),))] == 2

    farm.start_worker("w1", url)
    for build in (built, broken):
        farm.wait_state(url, build, "succeeded", "failed")
    wait_until(lambda: ("shipyard_repo_last_publish_seconds", ()) in _scrape(url), 60,
               what="a publication to show in the metrics")
    after = _scrape(url)
    assert after[("shipyard_farm_queue_length", ())] == 0
    assert after[("shipyard_farm_builds", (("state", "succeeded"),))] == 1
    assert after[("shipyard_farm_builds", (("state", "failed"),))] == 1
    assert after[("shipyard_farm_build_duration_seconds_count", (("result", "succeeded"),))] == 1
    assert after[("shipyard_farm_build_duration_seconds_count", (("result", "failed"),))] == 1
    assert after[("shipyard_farm_worker_last_seen_seconds", (("worker", "w1"),))] >= 0
    assert after[("shipyard_repo_last_publish_seconds", ())] >= 0
