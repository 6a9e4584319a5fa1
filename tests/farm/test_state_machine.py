"""The farm's state machine, in-process: FastAPI's TestClient over the coordinator's real
app and an SQLite file, one test per transition (DESIGN.md "Farm"). Fast feedback beside the
real-process tests (test_farm_e2e and friends), which prove the whole.

A lease runs out by moving its expiry into the past and reaping (what the coordinator's
reaper does once a second), so no test waits for a clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from shipyard.config import load_settings
from shipyard.db.farm_models import FarmBuild
from shipyard.farm import leases, outbox
from shipyard.farm.app import create_app
from shipyard.farm.db import FarmDB
from shipyard.farm.tokens import create_token
from shipyard.formats.farm import Finished, Job, Registered
from shipyard.timeutil import utcnow

COMMIT = "a1" * 20
OTHER_COMMIT = "b2" * 20
PACKAGE = "org.example:hello"


@dataclass
class Farm:
    http: TestClient
    app: Any
    tokens: dict[str, str]

    @property
    def db(self) -> FarmDB:
        return self.app.state.coordinator.db

    def call(self, method: str, path: str, role: str | None = None,
             **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return self.http.request(method, path, headers=headers, **kwargs)

    def request(self, version: str = "1.0", commit: str = COMMIT, *, force: bool = False,
                expect: int | None = None, **extra: Any) -> dict[str, Any]:
        body = {"commit": commit, "repo_url": "/src/hello.git", "subdir": "hello",
                "group": "org.example", "id": "hello", "version": version, "force": force,
                "maintainer": "Pat <pat@example.org>", **extra}
        answer = self.call("POST", "/api/builds", "hook", json=body)
        assert answer.status_code in (200, 201), answer.text
        if expect is not None:
            assert answer.status_code == expect, answer.text
        return answer.json()

    def register(self, name: str = "w1", capacity: int = 1) -> dict[str, Any]:
        answer = self.call("POST", "/api/workers/register", "worker",
                           json={"name": name, "capacity": capacity})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def claim(self, worker: str = "w1") -> dict[str, Any] | None:
        answer = self.call("POST", f"/api/workers/{worker}/claim", "worker", json={"wait": 0})
        assert answer.status_code in (200, 204), answer.text
        return answer.json() if answer.status_code == 200 else None

    def report(self, build_id: int, what: str, worker: str, attempt: int,
               **body: Any) -> httpx.Response:
        return self.call("POST", f"/api/builds/{build_id}/{what}", "worker",
                         json={"worker": worker, "attempt": attempt, **body})

    def upload(self, build_id: int, worker: str, attempt: int,
               filename: str = "hello-1.0.tar.gz") -> httpx.Response:
        return self.call("PUT", f"/api/builds/{build_id}/artifact", "worker",
                         params={"worker": worker, "attempt": attempt, "filename": filename},
                         content=b"not really a tarball, the coordinator only stores it")

    def build(self, build_id: int) -> dict[str, Any]:
        answer = self.http.get(f"/api/builds/{build_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def log(self, build_id: int) -> str:
        return str(self.http.get(f"/api/builds/{build_id}/log").json()["text"])

    def reap(self) -> list[tuple[int, str]]:
        coordinator = self.app.state.coordinator
        return leases.reap(coordinator.db, coordinator.cfg)

    def expire_lease(self, build_id: int) -> str:
        """The worker stopped heartbeating long ago: its lease is over; reap. Returns the
        build's state after that (the coordinator's own reaper may be the one that got
        there first: the outcome is the same)."""
        with self.db.write() as session:
            session.execute(update(FarmBuild).where(FarmBuild.id == build_id).values(
                lease_expires_at=utcnow() - timedelta(seconds=60)))
        self.reap()
        return str(self.build(build_id)["state"])


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    db_url = f"sqlite:///{tmp_path / 'farm.sqlite'}"
    # A long lease: the coordinator's own reaper must never take a build away by itself
    # here; the tests end leases on purpose (Farm.expire_lease).
    settings = load_settings(home=tmp_path / "home", env={
        "SHIPYARD_FARM_LEASE_SECONDS": "600", "SHIPYARD_FARM_MAX_ATTEMPTS": "2",
        "SHIPYARD_FARM_ARTIFACTS": str(tmp_path / "artifacts"),
        "SHIPYARD_FARM_POLL_SECONDS": "0.2"})
    db = FarmDB(db_url)
    tokens = {role: create_token(db, role, role)[0] for role in ("worker", "hook", "admin")}
    db.dispose()
    app = create_app(settings, db_url, publish=False)
    with TestClient(app) as http:
        yield Farm(http, app, tokens)


def _claimed(farm: Farm, worker: str = "w1") -> tuple[int, int]:
    job = farm.claim(worker)
    assert job is not None
    return int(job["build"]["id"]), int(job["attempt"])


# ---------------------------------------------------------------------------------------
# request


def test_a_request_queues_one_build_per_version(farm: Farm) -> None:
    first = farm.request(expect=201)
    assert first["created"] and first["build"]["state"] == "queued"
    assert first["build"]["attempt"] == 0 and first["build"]["worker"] is None
    again = farm.request(expect=200)
    assert not again["created"] and again["build"]["id"] == first["build"]["id"]
    assert again["note"] == f"{PACKAGE} 1.0 already queued"
    package = farm.http.get(f"/api/packages/{PACKAGE}").json()
    assert package["head_commit"] == COMMIT and package["last_build_id"] == first["build"]["id"]


def test_a_malformed_manifest_fails_at_once_without_a_worker(farm: Farm) -> None:
    answer = farm.request(version="", expect=201, group=None, id=None,
                          manifest_error="line 3: expected '='")
    build = answer["build"]
    assert build["state"] == "failed" and build["attempt"] == 0
    assert build["reason"] == "malformed manifest: line 3: expected '='"
    assert "cannot be built" in farm.log(build["id"])
    assert not farm.request(version="", expect=200, group=None, id=None,
                            manifest_error="line 3: expected '='")["created"]


# ---------------------------------------------------------------------------------------
# claim, heartbeat, log


def test_a_claim_runs_the_oldest_build_and_an_empty_queue_answers_204(farm: Farm) -> None:
    farm.register()
    assert farm.claim() is None
    first = farm.request("1.0")["build"]["id"]
    farm.request("1.1", OTHER_COMMIT)
    job = farm.claim()
    assert job is not None and job["build"]["id"] == first and job["attempt"] == 1
    assert job["lease_seconds"] == 600 and job["build"]["state"] == "running"
    assert job["build"]["worker"] == "w1" and job["build"]["lease_expires_at"]
    assert "[shipyard] attempt 1 on worker w1" in farm.log(first)
    assert farm.claim() is None  # capacity 1: the second build waits
    assert farm.http.get("/api/workers/w1").json()["status"] == "busy"


def test_a_heartbeat_renews_the_lease(farm: Farm) -> None:
    farm.register()
    farm.request()
    build_id, attempt = _claimed(farm)
    before = farm.build(build_id)["lease_expires_at"]
    answer = farm.report(build_id, "heartbeat", "w1", attempt)
    assert answer.status_code == 200, answer.text
    assert answer.json()["abort"] is False
    assert answer.json()["lease_expires_at"] >= before
    assert farm.build(build_id)["lease_expires_at"] == answer.json()["lease_expires_at"]


def test_log_reports_append_once_even_when_resent(farm: Farm) -> None:
    farm.register()
    farm.request()
    build_id, attempt = _claimed(farm)
    assert farm.report(build_id, "log", "w1", attempt, pos=0, data="one\n").json()["pos"] == 4
    assert farm.report(build_id, "log", "w1", attempt, pos=0, data="one\ntwo\n").json()["pos"] == 8
    log = farm.log(build_id)
    assert log.count("one\n") == 1 and log.count("two\n") == 1


# ---------------------------------------------------------------------------------------
# finish


def test_success_needs_the_package_and_is_recorded_once(farm: Farm) -> None:
    farm.register()
    farm.request()
    build_id, attempt = _claimed(farm)
    early = farm.report(build_id, "finish", "w1", attempt, result="success")
    assert early.status_code == 400 and "before the package was uploaded" in early.text
    stored = farm.upload(build_id, "w1", attempt)
    assert stored.status_code == 200, stored.text
    assert stored.json()["name"] == "hello-1.0.tar.gz"
    done = farm.report(build_id, "finish", "w1", attempt, result="success", tail="ok")
    assert done.status_code == 200, done.text
    assert done.json()["repeated"] is False
    assert "next" not in done.json()  # only a finish that asked for a claim gets one
    build = done.json()["build"]
    assert build["state"] == build["status"] == "succeeded" and build["finished_at"]
    assert build["artifact"]["url"] == f"/api/builds/{build_id}/artifact"
    assert farm.http.get(build["artifact"]["url"]).content.startswith(b"not really")
    # The same finish again (its answer was lost): the same answer, marked repeated.
    repeated = farm.report(build_id, "finish", "w1", attempt, result="success", tail="ok")
    assert repeated.json()["repeated"] is True
    assert repeated.json()["build"]["state"] == "succeeded"
    assert farm.request()["note"] == f"{PACKAGE} 1.0 already built"
    package = farm.http.get(f"/api/packages/{PACKAGE}").json()
    assert package["last_success_version"] == "1.0" and package["last_success_at"]


def test_failure_is_final_and_not_retried_at_the_same_commit(farm: Farm) -> None:
    farm.register()
    build_id = farm.request()["build"]["id"]
    _, attempt = _claimed(farm)
    done = farm.report(build_id, "finish", "w1", attempt, result="failure",
                       reason="exit status 2", tail="error: no such file\n")
    assert done.status_code == 200, done.text
    build = farm.build(build_id)
    assert build["state"] == "failed" and build["reason"] == "exit status 2"
    assert build["tail"] == "error: no such file\n"
    assert "[shipyard] build failed: exit status 2" in farm.log(build_id)
    again = farm.request(expect=200)
    assert not again["created"] and "failed at this commit" in again["note"]
    # A new commit of the same version builds again.
    assert farm.request(commit=OTHER_COMMIT, expect=201)["created"]


def test_a_finish_can_claim_the_next_build(farm: Farm) -> None:
    farm.register()
    first = farm.request("1.0")["build"]["id"]
    second = farm.request("1.1", OTHER_COMMIT)["build"]["id"]
    _, attempt = _claimed(farm)
    done = farm.report(first, "finish", "w1", attempt, result="failure", reason="x",
                       claim=True).json()
    assert done["next"]["build"]["id"] == second and done["next"]["attempt"] == 1


def test_a_released_build_is_queued_again(farm: Farm) -> None:
    farm.register()
    build_id = farm.request()["build"]["id"]
    _, attempt = _claimed(farm)
    done = farm.report(build_id, "finish", "w1", attempt, result="released",
                       reason="worker w1 is stopping")
    assert done.json()["build"]["state"] == "queued" and done.json()["build"]["worker"] is None
    assert "attempt 1 lost: worker w1 is stopping; queued again" in farm.log(build_id)
    assert _claimed(farm) == (build_id, 2)


def test_an_unknown_result_is_refused(farm: Farm) -> None:
    farm.register()
    build_id = farm.request()["build"]["id"]
    _, attempt = _claimed(farm)
    assert farm.report(build_id, "finish", "w1", attempt, result="maybe").status_code == 422
    assert farm.build(build_id)["state"] == "running"


# ---------------------------------------------------------------------------------------
# leases and attempts


def test_a_lost_lease_requeues_until_the_attempts_are_used_up(farm: Farm) -> None:
    farm.register()
    build_id = farm.request()["build"]["id"]
    _claimed(farm)
    assert farm.expire_lease(build_id) == "queued"
    assert "attempt 1 lost: worker w1 stopped heartbeating" in farm.log(build_id)
    assert _claimed(farm) == (build_id, 2)
    assert farm.expire_lease(build_id) == "failed"
    build = farm.build(build_id)
    assert build["state"] == "failed" and build["attempt"] == 2
    assert build["reason"].startswith("gave up after 2 attempt(s) (farm.max_attempts = 2)")
    assert farm.reap() == []  # nothing running: the reaper does nothing


def test_reports_of_a_stale_attempt_are_refused(farm: Farm) -> None:
    farm.register("w1")
    farm.register("w2")
    build_id = farm.request()["build"]["id"]
    _, old = _claimed(farm, "w1")
    farm.expire_lease(build_id)
    assert _claimed(farm, "w2") == (build_id, 2)
    for what, body in (("heartbeat", {}), ("log", {"pos": 0, "data": "late\n"}),
                       ("finish", {"result": "success"}), ("finish", {"result": "failure"})):
        answer = farm.report(build_id, what, "w1", old, **body)
        assert answer.status_code == 409, (what, answer.text)
        assert "attempt 1 of worker w1 is not current: attempt 2 runs on worker w2" \
            in answer.json()["detail"]
    assert farm.upload(build_id, "w1", old).status_code == 409
    build = farm.build(build_id)
    assert build["state"] == "running" and build["worker"] == "w2"
    assert "late" not in farm.log(build_id)
    # And after the build is over, a report of its finished attempt is refused too.
    assert farm.report(build_id, "finish", "w2", 2, result="failure").status_code == 200
    late = farm.report(build_id, "heartbeat", "w2", 2)
    assert late.status_code == 409 and "the build is failed" in late.json()["detail"]


def test_a_restarted_worker_gives_its_builds_back(farm: Farm) -> None:
    farm.register()
    build_id = farm.request()["build"]["id"]
    _claimed(farm)
    again = farm.register()
    assert again["requeued"] == [build_id]
    assert farm.build(build_id)["state"] == "queued"
    assert "worker w1 restarted" in farm.log(build_id)


# ---------------------------------------------------------------------------------------
# operator actions


def test_abort_of_a_queued_build_cancels_it(farm: Farm) -> None:
    build_id = farm.request()["build"]["id"]
    answer = farm.call("POST", f"/api/builds/{build_id}/abort", "admin")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "cancelled" and answer.json()["reason"] == "cancelled by admin"
    again = farm.call("POST", f"/api/builds/{build_id}/abort", "admin")
    assert again.status_code == 409 and "already cancelled" in again.text
    # A cancelled version may be requested again.
    assert farm.request(expect=201)["created"]


def test_abort_of_a_running_build_reaches_its_worker(farm: Farm) -> None:
    farm.register()
    build_id = farm.request()["build"]["id"]
    _, attempt = _claimed(farm)
    answer = farm.call("POST", f"/api/builds/{build_id}/abort", "admin").json()
    assert answer["state"] == "running" and answer["abort_requested"] is True
    assert farm.report(build_id, "heartbeat", "w1", attempt).json()["abort"] is True
    assert farm.report(build_id, "log", "w1", attempt, pos=0, data="x").json()["abort"] is True
    done = farm.report(build_id, "finish", "w1", attempt, result="aborted", reason="killed")
    build = done.json()["build"]
    assert build["state"] == "aborted" and build["reason"] == "aborted by admin"


def test_an_aborted_build_whose_worker_is_gone_ends_aborted(farm: Farm) -> None:
    farm.register()
    build_id = farm.request()["build"]["id"]
    _claimed(farm)
    farm.call("POST", f"/api/builds/{build_id}/abort", "admin")
    assert farm.expire_lease(build_id) == "aborted"
    assert farm.build(build_id)["reason"].startswith("aborted by admin (worker w1 stopped")


def test_requeue_and_force_build_a_finished_version_again(farm: Farm) -> None:
    farm.register()
    build_id = farm.request()["build"]["id"]
    _, attempt = _claimed(farm)
    running = farm.call("POST", f"/api/builds/{build_id}/requeue", "admin")
    assert running.status_code == 409 and "still running" in running.text
    farm.report(build_id, "finish", "w1", attempt, result="failure", reason="flaky")
    requeued = farm.call("POST", f"/api/builds/{build_id}/requeue", "admin").json()
    assert requeued["id"] != build_id and requeued["forced"] is True
    assert requeued["state"] == "queued" and requeued["commit"] == COMMIT
    forced = farm.call("POST", f"/api/packages/{PACKAGE}/builds", "admin",
                       json={"force": True})
    assert forced.status_code == 201, forced.text
    assert forced.json()["build"]["forced"] is True and forced.json()["build"]["version"] == "1.0"
    unknown = farm.call("POST", "/api/packages/org.example:nope/builds", "admin", json={})
    assert unknown.status_code == 404


def test_a_paused_worker_claims_nothing_until_resumed(farm: Farm) -> None:
    farm.register()
    farm.request()
    paused = farm.call("POST", "/api/workers/w1/pause", "admin").json()
    assert paused["paused"] is True and paused["status"] == "paused"
    assert farm.claim() is None
    resumed = farm.call("POST", "/api/workers/w1/resume", "admin").json()
    assert resumed["paused"] is False
    assert farm.claim() is not None
    assert farm.call("POST", "/api/workers/nobody/pause", "admin").status_code == 404


# ---------------------------------------------------------------------------------------
# publishing


def test_a_package_the_repository_refused_is_publish_failed(farm: Farm) -> None:
    farm.register()
    build_id = farm.request()["build"]["id"]
    _, attempt = _claimed(farm)
    farm.upload(build_id, "w1", attempt)
    farm.report(build_id, "finish", "w1", attempt, result="success")
    coordinator = farm.app.state.coordinator
    outbox.fail_publication(coordinator.db, coordinator.cfg,
                            {build_id: "version 1.0 exists with other content"})
    build = farm.build(build_id)
    assert build["state"] == "succeeded" and build["status"] == "publish-failed"
    assert build["publish_state"] == "error"
    assert build["publish_error"] == "version 1.0 exists with other content"
    listed = farm.http.get("/api/builds", params={"state": "publish-failed"}).json()
    assert [b["id"] for b in listed] == [build_id]
    assert farm.http.get("/api/builds", params={"state": "succeeded"}).json() == []
    assert farm.http.get("/api/stats").json()["builds"]["succeeded"] == 1


# ---------------------------------------------------------------------------------------
# the wire models


def test_answers_are_the_wire_models_the_worker_reads(farm: Farm) -> None:
    registered = Registered.model_validate(farm.register())
    assert registered.worker == "w1" and registered.lease_seconds == 600
    farm.request()
    job = Job.model_validate(farm.claim())
    assert job.build.repo_url == "/src/hello.git" and job.build.subdir == "hello"
    assert job.attempt == 1 and job.build.artifact is None
    done = farm.report(job.build.id, "finish", "w1", job.attempt, result="failure",
                       reason="x", claim=True)
    finished = Finished.model_validate(done.json())
    assert finished.build.state == "failed" and "next" in finished.model_fields_set
    assert finished.next is None
    schema = farm.http.get("/openapi.json").json()
    claim = schema["paths"]["/api/workers/{name}/claim"]["post"]["responses"]["200"]
    assert claim["content"]["application/json"]["schema"]["$ref"].endswith("/Job")


def test_health_and_whoami_answer_their_wire_models(farm: Farm) -> None:
    health = farm.call("GET", "/api/health").json()
    assert health["ok"] is True and health["last_publish"] == {}  # no round yet
    assert set(health) == {"ok", "version", "instance", "database", "repository",
                           "last_publish"}
    assert farm.call("GET", "/api/whoami", "worker").json() == {"name": "worker",
                                                                 "role": "worker"}
    assert farm.call("GET", "/api/whoami").status_code == 401


def test_a_publish_round_leaves_unset_fields_off_the_wire() -> None:
    from shipyard.formats.farm import PublishRound

    round_ = PublishRound(uploaded=[3], errors={4: "refused"})
    assert round_.model_dump(mode="json", exclude_none=True) == {
        "uploaded": [3], "published": [], "errors": {"4": "refused"}}
