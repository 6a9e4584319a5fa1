"""Node credentials checked in batches: one statement and one thread hop for every request
that arrives while the previous check is in flight.

Every node route checks its caller's credential against the database (no cache: a node
revoked a moment ago is refused on its very next request). Done one request at a time,
that is a statement and a worker-thread hop per request, which at a thousand agents
re-polling after a change is the coordinator's largest remaining cost per node. Here the
requests of one moment share the work: each request adds its credential's hash and
awaits its own future; while no check runs, one starts at once; the requests that arrive
meanwhile are collected and read together as soon as it returns, in one
``WHERE credential_hash IN (...)`` statement. A request's read therefore always *starts
after* the request arrived, so it sees every revocation committed before it: batching
changes how many statements run, never how fresh their answer is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from shipyard.db.fleet_models import FleetNode
from shipyard.fleet.db import FleetDB

CHUNK = 1000  # hashes per IN (...) list: well under any database's parameter limit


def read_nodes(db: FleetDB, hashes: Iterable[str]) -> dict[str, Any]:
    """The node rows (revocation included) whose credential hash is among ``hashes``."""
    wanted = sorted(set(hashes))
    found: dict[str, Any] = {}
    with db.rtx() as conn:
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            for row in conn.execute(select(FleetNode).where(
                    FleetNode.credential_hash.in_(chunk))):
                found[row.credential_hash] = row
    return found


class CredentialBatcher:
    """Looks node rows up by credential hash, many requests per statement (see above).

    Lives on the coordinator's event loop; ``batches`` and ``looked_up`` count statements'
    batches and requests served, for tests and the metrics."""

    def __init__(self, db: FleetDB) -> None:
        self.db = db
        self._waiting: dict[str, list[asyncio.Future[Any]]] = {}
        self._draining = False
        self.batches = 0
        self.looked_up = 0

    async def lookup(self, credential_hash: str) -> Any:
        """The node row for ``credential_hash`` as the database has it now, or None."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(credential_hash, []).append(future)
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                try:
                    rows = await run_in_threadpool(read_nodes, self.db, batch)
                except Exception as exc:  # each waiting request fails with the database
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                self.batches += 1
                for credential_hash, futures in batch.items():
                    row = rows.get(credential_hash)
                    for future in futures:
                        self.looked_up += 1
                        if not future.done():  # (its request may have gone meanwhile)
                            future.set_result(row)
        finally:
            self._draining = False
