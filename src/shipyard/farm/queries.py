"""Reads for the API, the pages and the CLI: builds, failures, workers, packages, stale
packages, counts, the publish backlog. Read-only transactions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from shipyard.db.farm_models import BUILD_STATES, FAILED, QUEUED, RUNNING, SUCCEEDED
from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.errors import FarmError, NotFound
from shipyard.farm.statements import BUILD, PACKAGE_NAMED, B, P, W
from shipyard.farm.views import FILTER_STATES, PUBLISH_FAILED, build_view, package_view, worker_view
from shipyard.formats.farm import (
    BuildDetail,
    BuildView,
    PackageView,
    StalePackage,
    Stats,
    WorkerView,
)
from shipyard.timeutil import aware, utcnow

# What a list shows of a build: all but the tail of its output.
_LISTED = [c for c in B.c if c.name != "tail"]


def get_build(db: FarmDB, cfg: FarmConfig, build_id: int) -> BuildDetail:
    with db.rtx() as conn:
        build = conn.execute(BUILD, {"p_build": build_id}).first()
    if build is None:
        raise NotFound(f"no build {build_id}")
    return BuildDetail(**dict(build_view(build._mapping, cfg)), tail=build.tail)


def list_builds(db: FarmDB, cfg: FarmConfig, *, state: str | None = None,
                package: str | None = None, worker: str | None = None, limit: int = 50,
                before: int | None = None) -> list[BuildView]:
    if state is not None and state not in FILTER_STATES:
        raise FarmError(f"unknown state {state!r} (expected one of: "
                        f"{', '.join(FILTER_STATES)})")
    query = select(*_LISTED)
    refused = B.c.publish_state == "error"
    if state == PUBLISH_FAILED:
        query = query.where(B.c.state == SUCCEEDED, refused)
    elif state == SUCCEEDED:
        query = query.where(B.c.state == SUCCEEDED,
                            or_(B.c.publish_state.is_(None), ~refused))
    elif state:
        query = query.where(B.c.state == state)
    if package:
        query = query.where(B.c.package == package)
    if worker:
        query = query.where(B.c.worker == worker)
    if before:
        query = query.where(B.c.id < before)
    order = B.c.id.asc() if state == QUEUED else B.c.id.desc()
    query = query.order_by(order).limit(max(1, min(limit, 1000)))
    with db.rtx() as conn:
        rows = conn.execute(query).all()
    return [build_view(row._mapping, cfg) for row in rows]


# A failed build, or a success the repository refused.
_FAILED = or_(B.c.state == FAILED, (B.c.state == SUCCEEDED) & (B.c.publish_state == "error"))


def list_failures(db: FarmDB, cfg: FarmConfig, limit: int = 10) -> list[BuildView]:
    """The newest builds that failed or whose package the repository refused."""
    query = (select(*_LISTED).where(_FAILED)
             .order_by(B.c.id.desc()).limit(max(1, min(limit, 1000))))
    with db.rtx() as conn:
        return [build_view(row._mapping, cfg) for row in conn.execute(query).all()]


def list_workers(db: FarmDB, cfg: FarmConfig) -> list[WorkerView]:
    now = utcnow()
    with db.rtx() as conn:
        running: dict[str, list[int]] = {}
        for build_id, worker in conn.execute(
                select(B.c.id, B.c.worker).where(B.c.state == RUNNING).order_by(B.c.id)):
            running.setdefault(worker, []).append(build_id)
        rows = conn.execute(select(W).order_by(W.c.name)).all()
    return [worker_view(row._mapping, cfg, running.get(row.name, []), now) for row in rows]


def get_worker(db: FarmDB, cfg: FarmConfig, name: str) -> WorkerView:
    for view in list_workers(db, cfg):
        if view.name == name:
            return view
    raise NotFound(f"no worker {name!r}")


def list_packages(db: FarmDB) -> list[PackageView]:
    with db.rtx() as conn:
        return [package_view(row._mapping)
                for row in conn.execute(select(P).order_by(P.c.name))]


def get_package(db: FarmDB, name: str) -> PackageView:
    with db.rtx() as conn:
        row = conn.execute(PACKAGE_NAMED, {"p_name": name}).first()
    if row is None:
        raise NotFound(f"unknown package {name!r}")
    return package_view(row._mapping)


def stale_packages(db: FarmDB, days: float, now: datetime | None = None) -> list[StalePackage]:
    """Packages whose last success is older than ``days`` days, or that never succeeded."""
    now = now or utcnow()
    cutoff = now - timedelta(days=days)
    with db.rtx() as conn:
        rows = conn.execute(select(P).where(or_(P.c.last_success_at.is_(None),
                                                P.c.last_success_at < cutoff))
                            .order_by(P.c.name)).all()
    result = []
    for row in rows:
        last = aware(row.last_success_at)
        result.append(StalePackage(
            **dict(package_view(row._mapping)),
            days_since_success=(None if last is None
                                else round((now - last).total_seconds() / 86400, 2))))
    return result


def stats(db: FarmDB) -> Stats:
    with db.rtx() as conn:
        counts: dict[str, int] = dict(conn.execute(
            select(B.c.state, func.count()).group_by(B.c.state)).all())
        workers = conn.execute(select(func.count()).select_from(W)).scalar() or 0
        packages = conn.execute(select(func.count()).select_from(P)).scalar() or 0
    return Stats(builds={state: int(counts.get(state, 0)) for state in BUILD_STATES},
                 workers=workers, packages=packages)


def failures_since(db: FarmDB, hours: float) -> int:
    """How many builds failed, or were refused by the repository, in the last ``hours``."""
    since = utcnow() - timedelta(hours=hours)
    with db.rtx() as conn:
        return conn.execute(select(func.count()).select_from(B).where(
            _FAILED, B.c.finished_at >= since)).scalar() or 0


@dataclass(frozen=True)
class PublishBacklog:
    """Successful builds not yet in the repository, and those that could not get there."""

    waiting: int
    errors: list[BuildView]
    published: int


def publish_backlog(db: FarmDB, cfg: FarmConfig, limit: int = 50) -> PublishBacklog:
    def count(*states: str) -> int:
        return conn.execute(select(func.count()).select_from(B).where(
            B.c.publish_state.in_(states))).scalar() or 0

    with db.rtx() as conn:
        errors = [build_view(row._mapping, cfg) for row in conn.execute(
            select(*_LISTED).where(B.c.publish_state == "error")
            .order_by(B.c.id.desc()).limit(limit))]
        return PublishBacklog(count("pending", "uploaded"), errors, count("published"))
