"""The migration chain on SQLite and PostgreSQL: upgrade, the fast path, downgrade."""

from __future__ import annotations

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

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
    script = ScriptDirectory.from_config(_alembic("sqlite://"))
    assert db.head_revision() == script.get_current_head()


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
