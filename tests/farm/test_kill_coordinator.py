"""kill -9 the coordinator again and again while builds flow: every build still ends in
success, none is lost, none succeeds twice, and the farm works normally afterwards."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

from farmkit import Farm, Source, _make_farm, request_ids, wait_until  # noqa: F401

BUILDS = 20
KILLS = 8

# The builds here report to files of the test (pids, runs): without the sandbox, which
# would hide those paths (tests/farm/test_sandbox.py covers the sandboxed worker).
HOST_VISIBLE = ("--no-sandbox",)


def test_coordinator_killed_at_random_moments(make_farm: Callable[..., Farm],
                                              tmp_path: Path) -> None:
    farm = make_farm(f"sqlite:///{tmp_path / 'farm.sqlite'}", lease=2.0,
                     extra_env={"SHIPYARD_FARM_MAX_ATTEMPTS": "20"})
    runs = tmp_path / "runs.txt"
    coordinator = farm.start_coordinator()
    url, port = coordinator.url, int(coordinator.url.rsplit(":", 1)[1])
    farm.start_worker("w1", url, extra=HOST_VISIBLE)
    farm.start_worker("w2", url, extra=HOST_VISIBLE)
    source = Source.create(farm, url)
    source.package("p", "org.example", "p", "1.0", f"sleep 0.2; pwd >> {runs}")
    _commit, output = source.push("p")
    ids = request_ids(output)
    with farm.api(url, "admin") as api:
        for _ in range(BUILDS - 1):
            ids.append(api.post("/api/packages/org.example:p/builds",
                                json={"force": True}).json()["build"]["id"])

    rng = random.Random(20261122)
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.0, 0.8))  # a varied moment to kill at, not a synchronisation
        farm.kill(coordinator, signal.SIGKILL)
        coordinator = farm.start_coordinator(port=port)

    def finished() -> bool:
        builds = farm.builds(url)
        return len(builds) == BUILDS and all(b["state"] in ("succeeded", "failed")
                                             for b in builds)

    wait_until(finished, 120, interval=0.5, what="every build to finish")
    builds = {b["id"]: b for b in farm.builds(url)}
    assert sorted(builds) == sorted(ids)
    assert {b["state"] for b in builds.values()} == {"succeeded"}, [
        (b["id"], b["reason"]) for b in builds.values() if b["state"] != "succeeded"]
    for build_id, build in builds.items():
        log = farm.log(url, build_id)
        assert log.count("[shipyard] build succeeded") == 1, log
        assert build["artifact"] is not None
    # Every successful attempt ran its command; retried attempts may have run it too, but
    # never after the build succeeded.
    ran = {line.split("/builds/")[1].split("/")[0] for line in runs.read_text().split()}
    assert {f"{b['id']}-{b['attempt']}" for b in builds.values()} <= ran

    # And the farm works normally afterwards.
    source.package("p", "org.example", "p", "2.0", "echo fine")
    _commit, output = source.push("p 2.0")
    (later,) = request_ids(output)
    assert farm.wait_state(url, later, "succeeded", "failed")["state"] == "succeeded"
