"""A finish can carry the worker's next claim: a busy worker then needs no claim request of
its own per build. The claim it gets is an ordinary one (capacity, order, the attempt's
bookkeeping), and a worker giving a build back never gets another in the same answer."""

from __future__ import annotations

from typing import Any

import httpx
from farmkit import Farm, _farm, _make_farm  # noqa: F401


def _queue(hook: httpx.Client, version: str) -> int:
    answer = hook.post("/api/builds", json={
        "commit": "b" * 40, "repo_url": "/nowhere.git", "subdir": "p",
        "group": "org.example", "id": "pkg", "version": version})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["build"]["id"])


def _upload(worker: httpx.Client, build_id: int, attempt: int, version: str) -> None:
    answer = worker.put(f"/api/builds/{build_id}/artifact",
                        params={"worker": "wn", "attempt": attempt,
                                "filename": f"pkg-{version}.tar.gz"},
                        content=b"package bytes")
    assert answer.status_code == 200, answer.text


def _finish(worker: httpx.Client, build_id: int, attempt: int, result: str,
            **extra: Any) -> dict[str, Any]:
    answer = worker.post(f"/api/builds/{build_id}/finish",
                         json={"worker": "wn", "attempt": attempt, "result": result, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_finish_hands_out_the_next_build_within_capacity(farm: Farm) -> None:
    url = farm.start_coordinator().url
    worker, hook = farm.api(url, "worker"), farm.api(url, "hook")
    assert worker.post("/api/workers/register",
                       json={"name": "wn", "capacity": 1}).status_code == 200
    first, second, third = (_queue(hook, v) for v in ("1.0", "2.0", "3.0"))

    claimed = worker.post("/api/workers/wn/claim", json={"wait": 5}).json()
    assert (claimed["build"]["id"], claimed["attempt"]) == (first, 1)
    # At capacity: a second claim gets nothing although two builds are queued.
    assert worker.post("/api/workers/wn/claim", json={"wait": 0}).status_code == 204

    # Without "claim" the answer has no "next" (older workers see what they always saw).
    _upload(worker, first, 1, "1.0")
    done = _finish(worker, first, 1, "success")
    assert done["build"]["state"] == "succeeded" and "next" not in done

    claimed = worker.post("/api/workers/wn/claim", json={"wait": 5}).json()
    assert claimed["build"]["id"] == second
    _upload(worker, second, 1, "2.0")
    done = _finish(worker, second, 1, "success", claim=True)
    assert done["build"]["state"] == "succeeded"
    following = done["next"]
    assert (following["build"]["id"], following["attempt"]) == (third, 1)
    assert following["lease_seconds"] > 0 and following["heartbeat_seconds"] > 0
    state = farm.build(url, third)
    assert (state["state"], state["worker"], state["attempt"]) == ("running", "wn", 1)
    assert "attempt 1 on worker wn" in farm.log(url, third)

    # Nothing left to build: "next" is null and the worker long-polls as before.
    done = _finish(worker, third, 1, "failure", reason="broken", claim=True)
    assert done["build"]["state"] == "failed" and done["next"] is None


def test_a_released_build_brings_no_next_build(farm: Farm) -> None:
    url = farm.start_coordinator().url
    worker, hook = farm.api(url, "worker"), farm.api(url, "hook")
    assert worker.post("/api/workers/register", json={"name": "wn"}).status_code == 200
    first, second = _queue(hook, "1.0"), _queue(hook, "2.0")
    claimed = worker.post("/api/workers/wn/claim", json={"wait": 5}).json()
    assert claimed["build"]["id"] == first

    done = _finish(worker, first, 1, "released", reason="worker wn shut down", claim=True)
    assert done["build"]["state"] == "queued" and "next" not in done
    assert farm.build(url, second)["state"] == "queued"
