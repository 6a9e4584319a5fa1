"""The coordinator's fleet side in-process (the app under a real Uvicorn in a thread, an
SQLite file): the long poll's index semantics, in-process wake-ups, leases."""

from __future__ import annotations

import base64
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from kit.net import serving
from kit.wait import wait_until
from shipyard.config import load_settings
from shipyard.farm.db import FarmDB
from shipyard.farm.tokens import create_token
from shipyard.server import create_app


@contextlib.contextmanager
def serve(tmp_path: Path, **env: str) -> Iterator[tuple[str, dict[str, str]]]:
    settings = load_settings(home=tmp_path / "home", env={f"SHIPYARD_{k}": v
                                                          for k, v in env.items()})
    url = f"sqlite:///{tmp_path / 'farm.sqlite'}"
    db = FarmDB(url)
    tokens = {"admin": create_token(db, "admin")[0]}
    tokens.update({f"join{i}": create_token(db, "node")[0] for i in range(4)})
    db.dispose()
    app = create_app(settings, url)
    with serving(app) as base:
        yield base, tokens


def join(url: str, token: str, name: str) -> str:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    answer = httpx.post(f"{url}/api/fleet/join", headers={"Authorization": f"Bearer {token}"},
                        json={"name": name, "address": "127.0.1.9", "signing_key": key,
                              "sealing_key": key}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["credential"]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_long_poll_answers_by_index_and_is_woken_in_process(tmp_path: Path) -> None:
    # The fallback re-read is ten minutes away: only the in-process wake-up can answer the
    # parked poll below before its deadline.
    with serve(tmp_path, FLEET_POLL_SECONDS="600", FLEET_LEASE_SECONDS="600") as (url, tok):
        me = join(url, tok["join0"], "me")
        join(url, tok["join1"], "other")
        desired = f"{url}/api/fleet/nodes/me/desired"
        first = httpx.get(desired, params={"index": 0, "wait": 120}, headers=bearer(me),
                          timeout=30).json()
        assert first["node"] == "me" and first["revision"] == 2 and first["instances"] == []
        # Nothing newer than the index: the answer comes when the wait ends, same revision.
        same = httpx.get(desired, params={"index": 2, "wait": 0.3}, headers=bearer(me),
                         timeout=30).json()
        assert same["revision"] == 2
        # Parked at the current index, a change anywhere in the fleet answers it at once.
        parked: dict[str, dict] = {}

        def poll() -> None:
            parked["doc"] = httpx.get(desired, params={"index": 2, "wait": 120},
                                      headers=bearer(me), timeout=150).json()

        thread = threading.Thread(target=poll)
        thread.start()
        wait_until(lambda: thread.is_alive(), 10, "the poll to start")
        revoked = httpx.post(f"{url}/api/fleet/nodes/other/revoke",
                             headers=bearer(tok["admin"]), timeout=30)
        assert revoked.json()["revision"] == 3
        thread.join(timeout=60)
        assert not thread.is_alive(), "the parked poll was not woken by the change"
        assert parked["doc"]["revision"] == 3


def test_lost_node_comes_back_with_a_heartbeat(tmp_path: Path) -> None:
    with serve(tmp_path, FLEET_LEASE_SECONDS="0.5", FLEET_POLL_SECONDS="0.2") as (url, tok):
        me = join(url, tok["join0"], "me")

        def view() -> dict:
            rows = httpx.get(f"{url}/api/fleet/nodes", headers=bearer(tok["admin"]),
                             timeout=30).json()
            return rows[0]

        wait_until(lambda: view()["lease_state"] == "lost", 30, "the lease to run out")

        def revision() -> int:
            return httpx.get(f"{url}/api/fleet/status", headers=bearer(tok["admin"]),
                             timeout=30).json()["revision"]

        # The reaper marks it lost and bumps the revision (links elsewhere follow).
        wait_until(lambda: revision() == 2, 30, "the reaper to record the loss")
        beat = httpx.post(f"{url}/api/fleet/nodes/me/heartbeat", headers=bearer(me),
                          json={"revision_applied": 2}, timeout=30)
        assert beat.status_code == 200 and beat.json()["revision"] == 3
        assert view()["revision_applied"] == 2
        bad = httpx.post(f"{url}/api/fleet/nodes/me/heartbeat", headers=bearer(me),
                         json={"revision_applied": -1}, timeout=30)
        assert bad.status_code == 422
