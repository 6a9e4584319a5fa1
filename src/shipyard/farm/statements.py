"""The farm's tables and the statements its hot paths share, built once.

The statements are SQLAlchemy Core, not the ORM: on SQLite every write transaction of the
coordinator holds one lock, and the time spent inside it bounds the farm's throughput.
Constructing a statement and its cache key costs more CPU than SQLite takes to run it, so
the hot ones are built here at import. Values come as execute() parameters; an UPDATE
without .values() sets the columns its parameters name (besides the WHERE's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, bindparam, insert, select, text, update

from shipyard.db.farm_models import FarmBuild, FarmLogChunk, FarmOutbox, FarmPackage, FarmWorker

NOTIFY_CHANNEL = "shipyard_farm"

B = cast(Table, FarmBuild.__table__)
P = cast(Table, FarmPackage.__table__)
W = cast(Table, FarmWorker.__table__)
L = cast(Table, FarmLogChunk.__table__)
O = cast(Table, FarmOutbox.__table__)  # noqa: E741

Build = dict[str, Any]
# A row as views read it: a dict made from a row, or the row's own mapping.
RowLike = Mapping[Any, Any]

PACKAGE_NAMED = select(P).where(P.c.name == bindparam("p_name"))
UPDATE_PACKAGE = update(P).where(P.c.id == bindparam("p_package"))
BUILD = select(B).where(B.c.id == bindparam("p_build"))
BUILD_LOCKED = BUILD.with_for_update()
UPDATE_BUILD = update(B).where(B.c.id == bindparam("p_build"))
INSERT_BUILD = insert(B).returning(*B.c)
INSERT_LOG = insert(L)


def set_build(conn: Connection, build_id: int, changes: Mapping[str, Any]) -> None:
    conn.execute(UPDATE_BUILD, {"p_build": build_id, **changes})


def set_package(conn: Connection, package_id: int, changes: Mapping[str, Any]) -> None:
    conn.execute(UPDATE_PACKAGE, {"p_package": package_id, **changes})


def notify_queued(conn: Connection) -> None:
    """Wake claims waiting on other coordinators (PostgreSQL; delivered at commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', 'queued')"))


def row_dict(row: Row[Any] | None) -> Build | None:
    return dict(row._mapping) if row is not None else None


def insert_ignore(conn: Connection, table: Any, values: dict[str, Any], conflict: str) -> Any:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING RETURNING *, on either database."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(table).values(**values).on_conflict_do_nothing(
        index_elements=[conflict]).returning(*table.c)
    return conn.execute(statement).first()

