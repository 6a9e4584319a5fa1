"""FarmClient over plain HTTP keeps its connection alive between calls, never sends a call
down a connection the coordinator has closed, streams uploads, and reports an unreachable
or refusing coordinator as before."""

from __future__ import annotations

import os
import signal

import psutil
import pytest
from farmkit import Farm, _make_farm, _sqlite_farm  # noqa: F401

import helpers
from shipyard.farm.client import ApiError, FarmClient
from shipyard.farm.errors import CoordinatorUnreachable


def _connections_to(port: int) -> list[object]:
    return [conn for conn in psutil.Process().net_connections(kind="tcp")
            if conn.raddr and conn.raddr.port == port and conn.status == "ESTABLISHED"]


def test_keep_alive_restart_upload_and_errors(sqlite_farm: Farm) -> None:
    port = helpers.free_port()
    coordinator = sqlite_farm.start_coordinator(port=port)
    url = coordinator.url
    worker = FarmClient(url, sqlite_farm.token("worker"), timeout=30.0)
    hook = FarmClient(url, sqlite_farm.token("hook"), timeout=30.0)
    try:
        worker.post("/api/workers/register", {"name": "wt", "capacity": 1})
        for _ in range(5):
            assert [w["name"] for w in worker.get("/api/workers")] == ["wt"]
        assert len(_connections_to(port)) == 1  # the worker's calls shared one connection

        queued = hook.post("/api/builds", {
            "commit": "c" * 40, "repo_url": "/nowhere.git", "subdir": "p",
            "group": "org.example", "id": "pkg", "version": "1.0"})["build"]["id"]

        # The coordinator is killed and comes back on the same port: the connection kept
        # from before is dead, and a call that may not retry must not go down it.
        os.kill(coordinator.popen.pid, signal.SIGKILL)
        coordinator.popen.wait(timeout=30)
        with pytest.raises(CoordinatorUnreachable, match="unreachable: ConnectError"):
            worker.post("/api/workers/wt/claim", {"wait": 0}, retry_for=0.0)
        sqlite_farm.start_coordinator(port=port)
        response = worker.request("POST", "/api/workers/wt/claim", json={"wait": 5},
                                  retry_for=0.0)
        assert response.status_code == 200, response.text
        job = response.json()
        assert job["build"]["id"] == queued

        # An upload larger than one chunk arrives whole.
        archive = sqlite_farm.root / "pkg-1.0.tar.gz"
        payload = os.urandom(300_000)
        archive.write_bytes(payload)
        ident = {"worker": "wt", "attempt": job["attempt"]}
        worker.upload(f"/api/builds/{queued}/artifact", archive,
                      {**ident, "filename": archive.name}, retry_for=0.0)
        done = worker.post(f"/api/builds/{queued}/finish", {**ident, "result": "success"})
        assert done["build"]["state"] == "succeeded"
        assert worker.http.get(f"/api/builds/{queued}/artifact").content == payload

        # A refusal is final and carries the coordinator's one line.
        with pytest.raises(ApiError) as refused:
            worker.post(f"/api/builds/{queued}/heartbeat", ident, retry_for=None)
        assert refused.value.status == 409 and "\n" not in refused.value.message
        assert refused.value.message.startswith(
            f"coordinator refused POST /api/builds/{queued}/heartbeat: 409 ")
    finally:
        worker.close()
        hook.close()
