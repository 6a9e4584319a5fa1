"""The batched node-credential check in-process, on a real SQLite database: the requests of
one moment share one statement; a request arriving while a statement runs gets a read of
its own that starts after it arrived (so a revocation committed before it is seen)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import event, update

from shipyard.db.fleet_models import FleetNode
from shipyard.farm.db import FarmDB
from shipyard.farm.tokens import create_token
from shipyard.fleet import service
from shipyard.fleet.credentials import CredentialBatcher
from shipyard.fleet.db import FleetDB
from shipyard.fleet.errors import Forbidden, Unauthorized
from shipyard.formats import fleet as wire
from shipyard.timeutil import utcnow

T = TypeVar("T")


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own: this worker's main thread may already run
    a loop (the session's Playwright browser, tests/conftest.py), and a loop cannot be
    started inside another."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=120)


def fleet_with_nodes(tmp_path: Path, names: list[str]) -> tuple[FleetDB, dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'farm.sqlite'}"
    farm = FarmDB(url)
    tokens = [create_token(farm, "node")[0] for _ in names]
    farm.dispose()
    db = FleetDB(url)
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    credentials = {}
    for name, token in zip(names, tokens, strict=True):
        body = wire.JoinRequest(name=name, address="127.0.1.9", signing_key=key,
                                sealing_key=key)
        credentials[name] = service.join(db, token, body, 600.0)[0]
    return db, credentials


def node_statements(db: FleetDB) -> list[list[str]]:
    """Records the bound hashes of every statement that reads nodes by credential hash."""
    seen: list[list[str]] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "fleet_nodes" in statement and "credential_hash IN" in statement:
            seen.append([p for p in parameters if isinstance(p, str)])

    return seen


def test_concurrent_requests_share_one_statement(tmp_path: Path) -> None:
    db, creds = fleet_with_nodes(tmp_path, ["a", "b", "c"])
    statements = node_statements(db)
    hashes = {name: service.hash_secret(secret) for name, secret in creds.items()}
    asked = [hashes[n] for n in ("a", "b", "c") * 10] + [service.hash_secret("sy-node-forged")]

    async def main() -> list:
        batcher = CredentialBatcher(db)
        rows = await asyncio.gather(*(batcher.lookup(h) for h in asked))
        assert (batcher.batches, batcher.looked_up) == (1, len(asked))
        return rows

    try:
        rows = run_loop(main())
    finally:
        db.dispose()
    assert len(statements) == 1 and sorted(statements[0]) == sorted(set(asked))
    assert [row.name for row in rows[:-1]] == ["a", "b", "c"] * 10  # each its own row
    assert rows[-1] is None
    with pytest.raises(Unauthorized):
        service.node_for(rows[-1], "a")
    with pytest.raises(Forbidden):
        service.node_for(rows[0], "b")  # a's credential does not make it node b
    assert service.node_for(rows[1], "b").name == "b"


def test_a_request_during_a_read_gets_a_fresh_read_of_its_own(tmp_path: Path) -> None:
    """a's lookup is held inside its statement; meanwhile b is revoked and b's lookup
    arrives. b's answer must come from a second statement, begun after the revocation."""
    db, creds = fleet_with_nodes(tmp_path, ["a", "b"])
    order: list[str] = []
    inside, release = threading.Event(), threading.Event()

    @event.listens_for(db.engine, "after_cursor_execute")
    def _hold(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        if "credential_hash IN" in statement:
            order.append("statement")
            if len(order) == 1:
                inside.set()
                assert release.wait(30), "the test never released the first statement"

    async def main() -> tuple:
        batcher = CredentialBatcher(db)
        first = asyncio.create_task(batcher.lookup(service.hash_secret(creds["a"])))
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, inside.wait, 30), "no statement started"
        # b is revoked by another connection while a's read is in flight...
        with db.engine.begin() as conn:
            conn.execute(update(FleetNode).where(FleetNode.name == "b")
                         .values(revoked_at=utcnow()))
        order.append("revoked")
        b_hash = service.hash_secret(creds["b"])
        second = asyncio.create_task(batcher.lookup(b_hash))
        # Wait (with a deadline) until b's lookup is queued behind the running statement.
        deadline = loop.time() + 30
        while b_hash not in batcher._waiting:
            assert loop.time() < deadline, "b's lookup was never queued"
            await asyncio.wait({second}, timeout=0)  # one turn of the loop for the task
        release.set()
        rows = await asyncio.gather(first, second)
        return rows, batcher.batches

    try:
        (row_a, row_b), batches = run_loop(main())
    finally:
        db.dispose()
    assert batches == 2 and order == ["statement", "revoked", "statement"]
    assert service.node_for(row_a, "a").name == "a"
    with pytest.raises(Unauthorized, match="revoked"):
        service.node_for(row_b, "b")
