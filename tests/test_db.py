"""The migration chain on SQLite and PostgreSQL: upgrade, the fast path, downgrade; the
PostgreSQL pool's test of idle connections."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from helpers import wait_until
from shipyard import db

REPO_TABLES = {"repo_package", "repo_channel", "repo_channel_package", "repo_publication"}


def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.normalise_url(url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_head_revision_matches_alembic() -> None:
    """The pinned head is Alembic's: a new migration fails here until HEAD_REVISION moves."""
    script = ScriptDirectory.from_config(_alembic("sqlite://"))
    assert script.get_heads() == [db.HEAD_REVISION]
    assert db.head_revision() == script.get_current_head()


def test_at_revision_agrees_with_alembic_migration_context(db_url: str) -> None:
    from alembic.runtime.migration import MigrationContext

    assert not db._at_revision(db_url, db.HEAD_REVISION)  # nothing there yet
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    assert heads == (db.HEAD_REVISION,)
    assert db._at_revision(db_url, heads[0])


def test_upgrade_creates_tables_and_downgrade_removes_them(db_url: str) -> None:
    from alembic import command

    db.upgrade(db_url)
    tables = _tables(db_url)
    assert {"script_activity", "alembic_version"} | REPO_TABLES <= tables
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == db.head_revision()
        assert db._at_revision(db_url, version)
        assert not db._at_revision(db_url, "0001")
        # The unique coordinate constraint is what makes "one coordinate, one content" hold
        # even if two publishers ever raced.
        with engine.begin() as conn:
            row = {"g": "org.x", "i": "a", "v": "1", "f": "pool/x", "s": 1, "h": "0" * 64}
            insert = text("INSERT INTO repo_package (pkg_group, ident, version, filename, "
                          "size, sha256, summary, maintainer, requires, service, added) "
                          "VALUES (:g, :i, :v, :f, :s, :h, '', '', '[]', false, "
                          "CURRENT_TIMESTAMP)")
            conn.execute(insert, row)
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, row)
    finally:
        engine.dispose()

    with db.make_engine(db_url).begin() as conn:
        cfg = _alembic(db_url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert not (REPO_TABLES & _tables(db_url))
    assert "script_activity" in _tables(db_url)

    db._upgraded.discard(db.normalise_url(db_url))
    db.upgrade(db_url)  # and back up again
    assert _tables(db_url) >= REPO_TABLES


def _terminated(pg_admin_url: str, engine: Any) -> int:
    """Use one pooled connection, then have the server end it behind the pool's back."""
    import psycopg

    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        wait_until(lambda: admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                         (pid,)).fetchone()[0] == 0, 10)
    return int(pid)


def test_a_pooled_connection_idle_for_a_while_is_tested_before_use(
        pg_url: str, pg_admin_url: str) -> None:
    """Busy connections are not pinged (a round trip per checkout); idle ones are, so a
    server restart while the pool sat idle costs nobody an error."""
    from sqlalchemy.exc import OperationalError

    from shipyard.db import normalise_url, postgres_engine

    pinged = postgres_engine(normalise_url(pg_url), idle_ping=0.0, pool_size=1)
    try:
        dead = _terminated(pg_admin_url, pinged)
        with pinged.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != dead
    finally:
        pinged.dispose()

    trusted = postgres_engine(normalise_url(pg_url), idle_ping=3600.0, pool_size=1)
    try:
        _terminated(pg_admin_url, trusted)
        with pytest.raises(OperationalError), trusted.connect() as conn:
            conn.execute(text("SELECT 1"))
        with trusted.connect() as conn:  # the pool dropped the dead one
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        trusted.dispose()
