"""The farm's database handle: short read and write transactions, nothing held for long.

On SQLite every write transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock
before reading, so a claim that reads the queue and then updates it can never fail with
"database is locked" halfway (in WAL mode a deferred transaction that read an older snapshot
cannot be upgraded to a writer). On PostgreSQL a write transaction is an ordinary READ
COMMITTED one; the claim uses ``FOR UPDATE SKIP LOCKED`` (see :mod:`shipyard.farm.leases`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session

from shipyard.config import Settings, url_password_masked
from shipyard.db import make_engine, normalise_url, postgres_engine, sqlite_url, upgrade
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    import sqlite3


def default_db_url(settings: Settings) -> str:
    """``farm.db`` or SQLite at ``<state>/farm.sqlite``."""
    configured = settings.farm.db.strip()
    if configured:
        return configured
    return sqlite_url(Path(settings.state_dir) / "farm.sqlite")


def _private_file(path: Path) -> None:
    """The farm's SQLite file holds password, token and cookie-key material: create it 0600
    (SQLite gives its -wal and -shm files the same mode) and tighten an older, wider one."""
    if str(path) in ("", ":memory:"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise ShipyardError(f"cannot create farm database {path}: {exc.strerror}") from None
    with contextlib.suppress(OSError):
        info = path.stat()
        if info.st_mode & 0o077 and info.st_uid == os.geteuid():
            os.chmod(path, 0o600)


class FarmDB:
    """An engine plus ``read()`` / ``write()`` sessions that commit at the end of the block."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = normalise_url(url)
        if self.url.startswith("sqlite:///"):
            _private_file(Path(self.url[len("sqlite:///"):]))
        try:
            upgrade(self.url)
        except ShipyardError:
            raise
        except Exception as exc:  # the driver's: connection refused, no such database
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            raise ShipyardError(f"cannot open farm database {url_password_masked(self.url)}: "
                                f"{first}") from None
        if pool_size != 5 and self.url.startswith("postgresql+psycopg://"):
            # A pool that fits the coordinator's thread pool.
            self.engine: Engine = postgres_engine(self.url, pool_size=pool_size,
                                                  max_overflow=pool_size)
        else:
            self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._write_lock: contextlib.AbstractContextManager[object] = (
            threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext())
        if self.dialect == "sqlite":
            self._sqlite_transactions(self.engine)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @staticmethod
    def _sqlite_transactions(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would BEGIN
            # DEFERRED lazily otherwise).
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            mode = "IMMEDIATE" if conn.get_execution_options().get("farm_write") else "DEFERRED"
            conn.exec_driver_sql(f"BEGIN {mode}")

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed when the block ends without an exception.

        On SQLite the threads of one process also queue on a lock of their own: SQLite's
        busy handler sleeps in growing steps (1, 2, 5, 10 ms, ...) while another writer
        holds the lock, so without it a busy coordinator spends its time asleep.
        """
        with self._write_lock, self.engine.connect() as conn:
            conn.execution_options(farm_write=True)
            with Session(bind=conn, expire_on_commit=False) as session:
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise

    @contextlib.contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction on a bare connection (Core statements, no ORM bookkeeping:
        the hot paths of the coordinator hold the write lock as briefly as possible)."""
        with self._write_lock, self.engine.connect() as conn:
            conn.execution_options(farm_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def rtx(self) -> Iterator[Connection]:
        """A read-only transaction on a bare connection.

        On PostgreSQL it runs in autocommit: under READ COMMITTED every statement takes its
        own snapshot anyway, so a read transaction adds nothing but the BEGIN and ROLLBACK
        round trips. On SQLite it is a real (deferred) transaction: one snapshot for all of
        its statements.
        """
        with self.engine.connect() as conn:
            if self.dialect != "sqlite":
                conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
                return
            with conn.begin() as trans:
                try:
                    yield conn
                finally:
                    trans.rollback()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self.engine.connect() as conn, Session(bind=conn, expire_on_commit=False) as session:
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
