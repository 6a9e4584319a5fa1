"""Script activity: one row per run of a periodic job, for monitoring.

Launchpad's ``ScriptActivity`` is written only when a script succeeds, so a monitor learns
of a failure only by the silence. Here the row is written when the run starts (``running``)
and closed as ``success`` or ``failure`` with the error, so ``repo activity`` shows what
went wrong, and ``check`` still alerts on the silence (no recent success) that a dead cron
daemon or a run killed mid-way produces.

Usage::

    with activity.record(db_url, "publish") as run:
        ...
        run.message = "published generation 12"

    activity.last_success(db_url, "publish")  -> datetime | None
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, and_, case, func, insert, select, update

from shipyard.db.models import ScriptActivity
from shipyard.errors import ShipyardError
from shipyard.repo.store import engine_for
from shipyard.timeutil import aware, compact, utcnow

TABLE = cast(Table, ScriptActivity.__table__)  # declarative types it as a FromClause


@dataclass
class ActivityRow:
    id: int
    name: str
    hostname: str
    started: datetime
    completed: datetime | None
    status: str
    message: str

    @property
    def duration(self) -> float | None:
        if self.completed is None:
            return None
        return (self.completed - self.started).total_seconds()

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "name": self.name, "hostname": self.hostname,
            "started": self.started.isoformat(),
            "completed": self.completed.isoformat() if self.completed else None,
            "duration": self.duration, "status": self.status, "message": self.message,
        }


@dataclass
class Run:
    """Handed to the body of :func:`record`; set ``message`` to say what the run did."""

    id: int
    name: str
    message: str = ""


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ShipyardError):
        text = exc.message
    elif isinstance(exc, KeyboardInterrupt):
        text = "interrupted"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:2000]


def start(db_url: str, name: str, *, hostname: str | None = None) -> Run:
    with engine_for(db_url).begin() as conn:
        pk = conn.execute(insert(TABLE).values(
            name=name, hostname=hostname or socket.gethostname(), started=utcnow(),
            completed=None, status="running", message="").returning(TABLE.c.id)).scalar_one()
    return Run(pk, name)


def finish(db_url: str, run: Run, status: str, message: str) -> None:
    with engine_for(db_url).begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == run.id).values(
            completed=utcnow(), status=status, message=message))


@contextmanager
def record(db_url: str, name: str, *, hostname: str | None = None) -> Iterator[Run]:
    """Record one run of ``name``: success when the block ends, failure (with the error's
    one-line message) when it raises; the exception propagates unchanged."""
    run = start(db_url, name, hostname=hostname)
    try:
        yield run
    except BaseException as exc:
        finish(db_url, run, "failure", _one_line(exc))
        raise
    finish(db_url, run, "success", run.message)


def record_failure(db_url: str, name: str, message: str, *, started: datetime | None = None,
                   hostname: str | None = None) -> None:
    """A run that failed before it could start its row (e.g. it never got its lock)."""
    with engine_for(db_url).begin() as conn:
        conn.execute(insert(TABLE).values(
            name=name, hostname=hostname or socket.gethostname(), started=started or utcnow(),
            completed=utcnow(), status="failure", message=message))


def mark_interrupted(db_url: str, name: str) -> int:
    """Close ``running`` rows of ``name`` left by runs that died (call it under the job's
    lock, when no other run of ``name`` can be alive). Returns how many were closed."""
    with engine_for(db_url).begin() as conn:
        result = conn.execute(update(TABLE).where(
            and_(TABLE.c.name == name, TABLE.c.status == "running")).values(
            status="failure", completed=utcnow(),
            message="interrupted: the run died before it finished"))
        return result.rowcount or 0


def _row(r: Row[Any]) -> ActivityRow:
    return ActivityRow(r.id, r.name, r.hostname, aware(r.started), aware(r.completed),
                       r.status, r.message)


def recent(db_url: str, name: str | None = None, limit: int = 20) -> list[ActivityRow]:
    query = select(TABLE).order_by(TABLE.c.started.desc(), TABLE.c.id.desc()).limit(limit)
    if name:
        query = query.where(TABLE.c.name == name)
    with engine_for(db_url).begin() as conn:
        return [_row(r) for r in conn.execute(query)]


def last_success(db_url: str, name: str) -> datetime | None:
    """When the newest successful run of ``name`` completed, or ``None``."""
    query = (select(TABLE.c.completed)
             .where(and_(TABLE.c.name == name, TABLE.c.status == "success"))
             .order_by(TABLE.c.completed.desc()).limit(1))
    with engine_for(db_url).begin() as conn:
        return aware(conn.execute(query).scalar())


@dataclass(frozen=True)
class ScriptSummary:
    """One script's record at a glance (the repository page's table)."""

    name: str
    last_run: ActivityRow | None
    last_success: datetime | None
    last_failure: ActivityRow | None
    runs: int
    failures: int


def summaries(db_url: str) -> list[ScriptSummary]:
    """Every script that ever ran, by name: its last run, last success, last failure."""
    newest = (TABLE.c.started.desc(), TABLE.c.id.desc())
    result = []
    with engine_for(db_url).connect() as conn:
        names = sorted(conn.execute(select(TABLE.c.name).distinct()).scalars())
        for name in names:
            runs, failures = conn.execute(
                select(func.count(), func.sum(case((TABLE.c.status == "failure", 1), else_=0)))
                .where(TABLE.c.name == name)).one()
            last = conn.execute(select(TABLE).where(TABLE.c.name == name)
                                .order_by(*newest).limit(1)).first()
            success = conn.execute(
                select(func.max(TABLE.c.completed))
                .where(and_(TABLE.c.name == name, TABLE.c.status == "success"))).scalar()
            failure = conn.execute(select(TABLE).where(
                and_(TABLE.c.name == name, TABLE.c.status == "failure"))
                .order_by(*newest).limit(1)).first()
            result.append(ScriptSummary(
                name, _row(last) if last else None, aware(success),
                _row(failure) if failure else None, int(runs or 0), int(failures or 0)))
    return result


_AGE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d``, ``1w`` -> a timedelta."""
    match = _AGE_RE.fullmatch(text or "")
    if not match:
        raise ShipyardError(f"invalid age {text!r}: expected a number with s, m, h, d or w "
                            "(e.g. 1h)", exit_code=2)
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def format_age(delta: timedelta) -> str:
    """``42s``, ``5m``, ``1h30m``, ``2d3h``: short and exact enough for an alert."""
    return compact(delta.total_seconds())


def check(db_url: str, name: str, max_age: timedelta, now: datetime | None = None
          ) -> tuple[bool, str]:
    """Whether ``name`` succeeded within ``max_age``, and a sentence saying so."""
    moment = now or utcnow()
    last = last_success(db_url, name)
    if last is None:
        return False, f"{name}: no successful run recorded"
    age = moment - last
    when = last.strftime("%Y-%m-%dT%H:%M:%SZ")
    if age > max_age:
        return False, (f"{name}: last success at {when}, {format_age(age)} ago, "
                       f"older than {format_age(max_age)}")
    return True, f"{name}: last success at {when}, {format_age(age)} ago"
