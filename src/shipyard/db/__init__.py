"""Database access: engines, sessions and migrations for the repository and farm state.

SQLite by default, PostgreSQL by URL. Schema changes go through the Alembic migrations in
``shipyard/db/migrations``; :func:`upgrade` applies them and is called by every process
that opens a database, so a fresh database and an old one end at the same schema.

Layer (docs/architecture.md): beside ``formats``, above the base modules only; the stages
that own tables (repo, farm, web) read them through their own modules.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from shipyard.errors import ConfigError

if TYPE_CHECKING:
    import sqlite3

    import psycopg
    from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).parent / "migrations"
_upgraded: set[str] = set()
_lock = threading.Lock()


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).absolute()}"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and pick the psycopg 3 driver for it."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if url.startswith("postgresql+psycopg://"):
        return postgres_engine(url)
    raise ConfigError(f"unsupported database URL {url!r} (use sqlite:/// or postgresql://)")


IDLE_PING_SECONDS = 10.0


def postgres_engine(url: str, *, idle_ping: float = IDLE_PING_SECONDS, **pool: int) -> Engine:
    """A PostgreSQL engine that tests a pooled connection only when it has been idle.

    ``pool_pre_ping`` costs a round trip on every checkout, which on a busy coordinator is
    one statement in five. A connection in steady use is known to be alive; one that sat in
    the pool for a while (the server may have restarted meanwhile) is pinged, and a dead one
    is replaced before anyone sees it. A server that dies under a busy connection still
    fails that one statement, and SQLAlchemy then drops the whole pool.
    """
    import time

    from sqlalchemy import exc

    engine = create_engine(url, **pool)

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: object, record: ConnectionPoolEntry) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn: psycopg.Connection[Any], record: ConnectionPoolEntry,
               _proxy: object) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < idle_ping:
            return
        try:
            dbapi_conn.execute("SELECT 1")
            if not dbapi_conn.autocommit:
                dbapi_conn.rollback()
        except Exception as error:
            raise exc.DisconnectionError(f"stale pooled connection: {error}") from error

    return engine


# The newest migration's revision. Alembic's ``ScriptDirectory`` is the authority on the
# chain (``tests/test_db.py`` fails when this differs from its ``get_current_head()``, so a
# new migration cannot land without moving it) and ``upgrade`` runs through Alembic.
# Why pinned rather than asked of Alembic here: every short command that opens a database
# (``repo publish``, ``farm build list``, ``fleet assign`` ...) checks the schema first, and
# loading Alembic's script directory (it imports every migration) or its MigrationContext
# adds 170-230 ms of CPU to every such command (getrusage, 3 runs each, 2026-12-07): a
# third more on the publish benchmark's one-upload figure. ``_at_revision`` likewise reads
# Alembic's own ``alembic_version`` table with one SELECT; ``tests/test_db.py`` checks it
# against ``MigrationContext.get_current_heads()``.
HEAD_REVISION = "0005"


def head_revision() -> str:
    """The single head of the migration chain (see ``HEAD_REVISION``)."""
    return HEAD_REVISION


def _at_revision(url: str, revision: str) -> bool:
    """Whether the database already stands at ``revision`` (False on any doubt)."""
    from sqlalchemy import text

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        return [row[0] for row in current] == [revision]
    except Exception:  # no table yet, no database yet: let Alembic handle it
        return False
    finally:
        engine.dispose()


def upgrade(url: str) -> None:
    """Apply every pending migration to the database at ``url`` (once per process)."""
    url = normalise_url(url)
    with _lock:
        if url in _upgraded:
            return
        if _at_revision(url, HEAD_REVISION):
            _upgraded.add(url)
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        cfg.attributes["configure_logger"] = False
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Serialise concurrent upgrades of one database by several processes.
                    from sqlalchemy import text

                    connection.execute(text("SELECT pg_advisory_xact_lock(74201)"))
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        finally:
            engine.dispose()
        _upgraded.add(url)


def session_factory(url: str) -> sessionmaker:
    upgrade(url)
    return sessionmaker(make_engine(url), expire_on_commit=False)
