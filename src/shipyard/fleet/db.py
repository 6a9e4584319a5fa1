"""The fleet's database handle: short transactions on the coordinator's database.

The same database as the farm's (its tables come from the same migration chain), opened
through :mod:`shipyard.db` rather than the farm's handle, because the fleet stage stands
beside the farm and does not import it. On SQLite a write transaction begins IMMEDIATE, so
a read-then-update never fails half-way on the write lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, event

from shipyard.db import make_engine, normalise_url, postgres_engine, upgrade
from shipyard.errors import ShipyardError


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every fleet time is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def redact(url: str) -> str:
    import re

    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class FleetDB:
    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = normalise_url(url)
        try:
            upgrade(self.url)
        except ShipyardError:
            raise
        except Exception as exc:  # the driver's: connection refused, no such database
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ShipyardError(f"cannot open fleet database {redact(self.url)}: {first}") \
                from None
        if self.url.startswith("postgresql+psycopg://"):
            self.engine: Engine = postgres_engine(self.url, pool_size=pool_size,
                                                  max_overflow=pool_size)
        else:
            self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            @event.listens_for(self.engine, "connect")
            def _autocommit_driver(dbapi_conn, _record):  # type: ignore[no-untyped-def]
                dbapi_conn.isolation_level = None

            @event.listens_for(self.engine, "begin")
            def _begin(conn):  # type: ignore[no-untyped-def]
                write = conn.get_execution_options().get("fleet_write")
                conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if write else 'DEFERRED'}")

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextlib.contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends without an exception."""
        with self.engine.connect() as conn:
            conn.execution_options(fleet_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def rtx(self) -> Iterator[Connection]:
        """A read transaction (one snapshot on SQLite; READ COMMITTED on PostgreSQL)."""
        with self.engine.connect() as conn, conn.begin() as trans:
            try:
                yield conn
            finally:
                trans.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
