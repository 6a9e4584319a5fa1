"""Database access: engines, sessions and migrations for the repository and farm state.

SQLite by default, PostgreSQL by URL. Schema changes go through the Alembic migrations in
``shipyard/db/migrations``; :func:`upgrade` applies them and is called by every process
that opens a database, so a fresh database and an old one end at the same schema.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from shipyard.errors import ConfigError

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
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if url.startswith("postgresql+psycopg://"):
        return create_engine(url, pool_pre_ping=True)
    raise ConfigError(f"unsupported database URL {url!r} (use sqlite:/// or postgresql://)")


def upgrade(url: str) -> None:
    """Apply every pending migration to the database at ``url`` (once per process)."""
    from alembic import command
    from alembic.config import Config

    url = normalise_url(url)
    with _lock:
        if url in _upgraded:
            return
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
