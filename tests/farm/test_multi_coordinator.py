"""Two coordinators on one PostgreSQL database, four workers, 200 builds: each build is
claimed by exactly one worker and runs exactly once, to success."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from pathlib import Path

from farmkit import Farm, Source, _make_farm, request_ids, wait_until  # noqa: F401

BUILDS = 200

# The builds here report to files of the test (pids, runs): without the sandbox, which
# would hide those paths (tests/farm/test_sandbox.py covers the sandboxed worker).
HOST_VISIBLE = ("--no-sandbox",)


def test_two_coordinators_four_workers_200_builds(make_farm: Callable[..., Farm],
                                                  pg_url: str, tmp_path: Path) -> None:
    farm = make_farm(pg_url, lease=10.0)
    runs = tmp_path / "runs.txt"
    first = farm.start_coordinator(name="c1")
    second = farm.start_coordinator(name="c2")
    for index, coordinator in enumerate((first, first, second, second)):
        farm.start_worker(f"w{index}", coordinator.url, extra=HOST_VISIBLE)
    source = Source.create(farm, first.url)
    # Every run appends its build directory (<workdir>/builds/<id>-<attempt>/...).
    source.package("p", "org.example", "many", "1.0", f"pwd >> {runs}")
    _commit, output = source.push("one package")
    (announced,) = request_ids(output)

    ids: list[int] = [announced]
    lock = threading.Lock()

    def request(url: str, count: int) -> None:
        with farm.api(url, "admin") as api:
            for _ in range(count):
                answer = api.post("/api/packages/org.example:many/builds", json={"force": True})
                assert answer.status_code == 201, answer.text
                with lock:
                    ids.append(answer.json()["build"]["id"])

    threads = [threading.Thread(target=request, args=(url, (BUILDS - 1) // 2 + extra))
               for url, extra in ((first.url, 0), (second.url, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == BUILDS

    def all_done() -> bool:
        stats = farm.api(second.url).get("/api/stats").json()["builds"]
        return stats["succeeded"] + stats["failed"] >= BUILDS

    wait_until(all_done, 120, interval=0.5, what=f"{BUILDS} builds to finish")
    builds = farm.builds(first.url)
    assert len(builds) == BUILDS
    assert {b["state"] for b in builds} == {"succeeded"}
    assert {b["attempt"] for b in builds} == {1}
    assert {b["worker"] for b in builds} == {"w0", "w1", "w2", "w3"}

    # The build commands ran once per build: no build ran twice, none was skipped.
    lines = runs.read_text().split()
    per_build = collections.Counter(line.split("/builds/")[1].split("/")[0] for line in lines)
    assert len(lines) == BUILDS
    assert set(per_build) == {f"{b}-1" for b in ids}
    assert set(per_build.values()) == {1}
