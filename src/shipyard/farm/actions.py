"""Operator actions: abort or requeue a build, pause or resume a worker.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from shipyard.db.farm_models import CANCELLED, FINAL_STATES, QUEUED, RUNNING
from shipyard.farm.buildlog import LogWriter
from shipyard.farm.buildrequests import BuildRequest, request_build
from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.errors import Conflict, NotFound
from shipyard.farm.statements import BUILD, BUILD_LOCKED, B, W, row_dict, set_build
from shipyard.farm.views import build_view, worker_view
from shipyard.formats.farm import BuildView, WorkerView
from shipyard.timeutil import utcnow


def abort(db: FarmDB, cfg: FarmConfig, build_id: int, by: str) -> BuildView:
    """Cancel a queued build; ask the worker of a running one to kill it."""
    now = utcnow()
    with db.tx() as conn:
        build = row_dict(conn.execute(BUILD_LOCKED, {"p_build": build_id}).first())
        if build is None:
            raise NotFound(f"no build {build_id}")
        log = LogWriter(build, cfg)
        if build["state"] == QUEUED:
            changes: dict[str, Any] = {"state": CANCELLED, "reason": f"cancelled by {by}",
                                       "finished_at": now, "dedup_key": None}
            log.note(f"[shipyard] cancelled by {by}\n")
        elif build["state"] == RUNNING:
            if build["abort_requested"]:
                return build_view(build, cfg)
            changes = {"abort_requested": True, "reason": f"aborted by {by}"}
            log.note(f"[shipyard] abort requested by {by}; worker {build['worker']} kills "
                     "the build\n")
        else:
            raise Conflict(f"build {build_id} is already {build['state']}")
        changes.update(log.flush(conn))
        set_build(conn, build_id, changes)
        build.update(changes)
    return build_view(build, cfg)


def requeue(db: FarmDB, cfg: FarmConfig, build_id: int, by: str) -> BuildView:
    """Build a finished build's commit again, as a new forced build."""
    with db.rtx() as conn:
        build = conn.execute(BUILD, {"p_build": build_id}).first()
    if build is None:
        raise NotFound(f"no build {build_id}")
    if build.state not in FINAL_STATES:
        raise Conflict(f"build {build_id} is still {build.state}")
    group, _, ident = build.package.partition(":")
    req = BuildRequest(commit=build.commit, repo_url=build.repo_url, subdir=build.subdir,
                       group=group if ident else None, id=ident or None,
                       version=build.version, ref=build.ref, maintainer=build.maintainer,
                       committer=build.committer, platform=build.platform, force=True)
    view, _created, _note = request_build(db, cfg, req, by, head=False)
    return view


def set_worker_paused(db: FarmDB, cfg: FarmConfig, name: str, paused: bool) -> WorkerView:
    with db.tx() as conn:
        if conn.execute(update(W).where(W.c.name == name).values(paused=paused)).rowcount == 0:
            raise NotFound(f"no worker {name!r}")
        worker = conn.execute(select(W).where(W.c.name == name)).first()
        running = list(conn.execute(select(B.c.id).where(
            B.c.state == RUNNING, B.c.worker == name)).scalars())
    assert worker is not None
    return worker_view(worker._mapping, cfg, running)


