"""The coordinator's process-local fleet side: waking parked long polls, and the lease
reaper. Nothing here is the record: the revision lives in the database, and this only
decides *when* a parked poll looks at it again.

Three wake-ups, any of which suffices alone: a change made through this process wakes its
polls at once; on PostgreSQL a LISTEN thread hears every coordinator's NOTIFY; and one
task reads the revision every ``fleet.poll_seconds`` in case a notification was missed
(a listener that reconnects misses what was sent meanwhile). So 1,000 parked polls cost
one query per period, not 1,000.

What a woken poll answers comes from one :class:`~.snapshot.Snapshot` per revision, read
once (single flight) and shared by every poll parked here: waking 1,000 polls costs one
read of the fleet's rows, not 1,000 reads of each node's own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from starlette.concurrency import run_in_threadpool

from shipyard.db.background import listen, stop_tasks
from shipyard.fleet import service
from shipyard.fleet import snapshot as snapshots
from shipyard.fleet.db import FleetDB

log = logging.getLogger("shipyard.fleet")


class Hub:
    def __init__(self, db: FleetDB, *, lease_seconds: float, poll_seconds: float) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.loop: asyncio.AbstractEventLoop | None = None
        self.revision = 0
        self._event: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = threading.Event()
        self.started = time.monotonic()
        self._snapshot: snapshots.Snapshot | None = None
        self._loading: asyncio.Future[snapshots.Snapshot] | None = None

    # -- wake-ups -----------------------------------------------------------------------------

    def event(self) -> asyncio.Event:
        """The event the next change sets (take it *before* reading the revision)."""
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def changed(self, revision: int | None = None) -> None:
        """Wake every parked poll (on the event loop)."""
        if revision is not None and revision > self.revision:
            self.revision = revision
        event, self._event = self._event, asyncio.Event()
        if event is not None:
            event.set()

    def changed_threadsafe(self, revision: int | None = None) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.changed, revision)

    # -- the shared snapshot ------------------------------------------------------------------

    async def snapshot(self, at_least: int) -> snapshots.Snapshot:
        """The fleet at revision ``at_least`` or later: the cached one, or one read for
        every poll asking meanwhile (a single read in flight at a time). Gives up waiting
        for ``at_least`` after two reads (the database is the record, not what we were
        told), so a caller gets the newest it has."""
        snap = self._snapshot
        for _ in range(2):
            if snap is not None and snap.revision >= at_least:
                return snap
            if self._loading is None:
                self._loading = asyncio.ensure_future(self._load())
            snap = await asyncio.shield(self._loading)
        assert snap is not None
        return snap

    async def _load(self) -> snapshots.Snapshot:
        try:
            snap = await run_in_threadpool(snapshots.read_snapshot, self.db)
        finally:
            self._loading = None
        if self._snapshot is None or snap.revision >= self._snapshot.revision:
            self._snapshot = snap
        if snap.revision > self.revision:
            self.changed(snap.revision)
        return snap

    async def read_revision(self) -> int:
        """The revision in the database now (for answers that may not wait)."""
        current = await run_in_threadpool(self._read_revision)
        if current > self.revision:
            self.changed(current)
        return current

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- background ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.revision = await run_in_threadpool(self._read_revision)
        self._tasks.append(asyncio.create_task(self._watch()))
        self._tasks.append(asyncio.create_task(self._reaper()))
        if self.db.is_postgres:
            threading.Thread(target=self._listen, name="fleet-listen", daemon=True).start()

    async def stop(self) -> None:
        self._stop.set()
        self.changed()
        await stop_tasks(self._tasks)

    def _read_revision(self) -> int:
        with self.db.rtx() as conn:
            return service.revision(conn)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                current = await run_in_threadpool(self._read_revision)
            except Exception as exc:  # the database is away: polls keep their index
                log.warning("fleet watch: %s: %s", type(exc).__name__, exc)
                continue
            if current != self.revision:
                self.changed(current)

    async def _reaper(self) -> None:
        """Mark nodes lost when their lease ran out. Not within the first lease after a
        start: agents that kept running while the coordinator was down renew first."""
        interval = max(0.2, min(self.lease_seconds / 4.0, 5.0))
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.started < self.lease_seconds:
                continue
            try:
                lost = await run_in_threadpool(service.reap, self.db)
            except Exception as exc:
                log.warning("fleet reaper: %s: %s", type(exc).__name__, exc)
                continue
            if lost:
                log.info("fleet: node(s) lost (lease ran out): %s", ", ".join(lost))
                self.changed(await run_in_threadpool(self._read_revision))

    def _listen(self) -> None:
        listen(self.db.url, service.NOTIFY_CHANNEL, self._stop,
               lambda payload: self.changed_threadsafe(int(payload) if payload.isdigit()
                                                       else None), log, "fleet listener")
