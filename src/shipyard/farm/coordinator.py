"""The coordinator's process-local side: waking waiting claims, token checks, and the
background loops (reaper, mail, publisher). Everything durable is in the database; what
is here is only there to be fast (a cache, an in-process wake-up) and may be lost at any
time without losing work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from starlette.concurrency import run_in_threadpool

from shipyard.config import Settings
from shipyard.db.background import listen, stop_tasks
from shipyard.db.farm_models import FarmToken, FarmWorker
from shipyard.farm import events, leases, mailer, statements
from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.errors import Forbidden, NotFound
from shipyard.farm.tokens import TokenInfo, hash_token
from shipyard.formats.farm import PublishRound
from shipyard.timeutil import aware, utcnow

log = logging.getLogger("shipyard.farm")

TOKEN_CACHE_SECONDS = 2.0
WORKER_CACHE_SECONDS = 5.0


@dataclass
class _Cached:
    value: Any
    until: float


class Coordinator:
    """Shared by every request of one coordinator process."""

    def __init__(self, settings: Settings, db: FarmDB, cfg: FarmConfig,
                 repo_dir: Path | None, *, publish: bool = True) -> None:
        self.settings = settings
        self.db = db
        self.cfg = cfg
        self.repo_dir = repo_dir
        self.publish = publish and repo_dir is not None
        # Tells this process apart from any other coordinator a client might reach on the
        # same address (the demo's readiness check compares it).
        self.instance = secrets.token_hex(8)
        self.smtp = mailer.SmtpConfig.from_settings(settings)
        self.poll_seconds = max(0.05, settings.farm.poll_seconds)
        self.started = time.monotonic()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queue_event: asyncio.Event | None = None
        self._mail_event: asyncio.Event | None = None
        self._publish_event: asyncio.Event | None = None
        self._tokens: dict[str, _Cached] = {}
        self._workers: dict[tuple[str, int], float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self.last_publish: PublishRound | None = None
        self._publish_backoff = 1.0

    # -- wake-ups ---------------------------------------------------------------------------

    def queue_event(self) -> asyncio.Event:
        assert self._queue_event is not None
        return self._queue_event

    def wake_claims(self) -> None:
        """Wake every waiting claim (call on the event loop)."""
        event = self._queue_event
        self._queue_event = asyncio.Event()
        if event is not None:
            event.set()

    def wake_claims_threadsafe(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake_claims)

    def wake_mailer(self) -> None:
        if self._mail_event is not None:
            self._mail_event.set()

    def wake_publisher(self) -> None:
        if self._publish_event is not None:
            self._publish_event.set()

    # -- tokens and workers -----------------------------------------------------------------

    def cached_token(self, secret: str) -> TokenInfo | None:
        """The token for ``secret`` if it was verified moments ago (no database access, so
        the event loop may call it)."""
        cached = self._tokens.get(hash_token(secret))
        if cached is not None and cached.until > time.monotonic():
            return cached.value
        return None

    def verify_token(self, secret: str) -> TokenInfo | None:
        """The live token for ``secret`` (cached briefly: revocation lands within seconds)."""
        digest = hash_token(secret)
        now = time.monotonic()
        cached = self._tokens.get(digest)
        if cached is not None and cached.until > now:
            return cached.value
        with self.db.read() as session:
            row = session.scalar(select(FarmToken).where(FarmToken.token_hash == digest))
            if row is None or row.revoked_at is not None:
                self._tokens.pop(digest, None)
                return None
            info = TokenInfo(row.id, row.name, row.role, aware(row.created_at),
                             None, aware(row.last_used_at))
        last = info.last_used_at
        if last is None or utcnow() - last > timedelta(minutes=1):
            with self.db.write() as session:
                session.execute(update(FarmToken).where(FarmToken.id == info.id)
                                .values(last_used_at=utcnow())
                                .execution_options(synchronize_session=False))
            info = TokenInfo(info.id, info.name, info.role, info.created_at, None, utcnow())
        if len(self._tokens) > 10_000:
            self._tokens.clear()
        self._tokens[digest] = _Cached(info, now + TOKEN_CACHE_SECONDS)
        return info

    def worker_checked(self, name: str, token: TokenInfo) -> bool:
        """Whether :meth:`check_worker` passed moments ago (no database access)."""
        return self._workers.get((name, token.id), 0.0) > time.monotonic()

    def check_worker(self, name: str, token: TokenInfo) -> None:
        """A worker report must come with the token that worker registered with."""
        key = (name, token.id)
        now = time.monotonic()
        if self._workers.get(key, 0.0) > now:
            return
        with self.db.read() as session:
            worker = session.scalar(select(FarmWorker).where(FarmWorker.name == name))
            if worker is None:
                raise NotFound(f"worker {name!r} is not registered")
            if worker.token_id != token.id:
                raise Forbidden(f"worker {name!r} is registered with another token")
        if len(self._workers) > 10_000:
            self._workers.clear()
        self._workers[key] = now + WORKER_CACHE_SECONDS

    def forget_worker(self, name: str) -> None:
        for key in [key for key in self._workers if key[0] == name]:
            self._workers.pop(key, None)

    # -- background loops -------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._queue_event = asyncio.Event()
        self._mail_event = asyncio.Event()
        self._publish_event = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._reaper()))
        if self.smtp.enabled:
            self._tasks.append(asyncio.create_task(self._every(
                "mailer", self._mail_event, 2.0, self._send_mail)))
        if self.publish:
            self._tasks.append(asyncio.create_task(self._every(
                "publisher", self._publish_event, 5.0, self._publish, debounce=0.1)))
        if self.db.is_postgres:
            self._listener = threading.Thread(target=self._listen, name="farm-listen",
                                              daemon=True)
            self._listener.start()

    async def stop(self) -> None:
        self._stop.set()
        self.wake_claims()
        await stop_tasks(self._tasks)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _reaper(self) -> None:
        """Requeue builds whose lease ran out. Not in the first lease period after a start:
        workers that kept building while this coordinator was down get the chance to
        renew their leases first, so a restart loses nothing."""
        interval = max(0.2, min(self.cfg.lease_seconds / 4.0, 2.0))
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.started < self.cfg.lease_seconds:
                continue
            try:
                changed = await run_in_threadpool(leases.reap, self.db, self.cfg)
            except Exception as exc:  # keep reaping whatever one round ran into
                log.warning("reaper: %s: %s", type(exc).__name__, exc)
                continue
            if changed:
                events.reaped(changed)
                if any(state == "queued" for _, state in changed):
                    self.wake_claims()
                self.wake_mailer()

    async def _every(self, name: str, event: asyncio.Event, period: float,
                     work: Callable[[], Awaitable[None]], debounce: float = 0.0) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=period)
            if debounce and event.is_set():
                await asyncio.sleep(debounce)  # let successes close together share a run
            event.clear()
            try:
                await work()
            except Exception as exc:
                log.warning("%s: %s: %s", name, type(exc).__name__, exc)

    async def _send_mail(self) -> None:
        await run_in_threadpool(mailer.send_due, self.db, self.smtp)

    async def _publish(self) -> None:
        from shipyard.farm.publisher import has_pending, publish_pending

        assert self.repo_dir is not None
        if not await run_in_threadpool(has_pending, self.db):
            return
        report = await run_in_threadpool(
            publish_pending, self.db, self.cfg, self.settings, self.repo_dir)
        self.last_publish = report
        events.publish_round(report)
        if report.publish_error or report.busy:
            # Retry, backing off (a publisher that fails, e.g. for want of its signing key,
            # would otherwise write a failed activity row every second).
            await asyncio.sleep(self._publish_backoff)
            self._publish_backoff = min(self._publish_backoff * 2, 60.0)
            self.wake_publisher()
        else:
            self._publish_backoff = 1.0
        if report.errors:
            self.wake_mailer()  # the maintainers of refused packages learn why

    def _listen(self) -> None:
        """LISTEN for requests queued through other coordinators (PostgreSQL). A listener
        misses what is sent while it is disconnected, so waiting claims also poll."""
        listen(self.db.url, statements.NOTIFY_CHANNEL, self._stop,
               lambda _payload: self.wake_claims_threadsafe(), log)
