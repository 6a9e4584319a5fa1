"""The attempt lifecycle: claim, heartbeat, log reports, finish, and the reaper.

A build moves::

    queued --claim--> running --finish--> succeeded | failed | aborted
      |                  | lease runs out (worker gone): back to queued, at most
      |                  |   farm.max_attempts claims, then failed with the reason
      +--abort--> cancelled   (abort of a running build: the worker kills it)

Each claim increments ``attempt``; every report from a worker names (build, attempt, worker)
and is applied with a compare-and-set on those three, so a report from an attempt that was
taken away (its lease ran out and another worker has the build now) changes nothing and is
answered 409. That is how a worker that comes back from a network partition learns to kill
its copy of the build (Koji does the same). Every function is one short transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, or_, select, update

from shipyard.db.farm_models import ABORTED, FAILED, QUEUED, RUNNING, SUCCEEDED
from shipyard.farm.buildlog import LogWriter
from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.errors import Conflict, FarmError, Forbidden, NotFound
from shipyard.farm.outbox import queue_failure_mail
from shipyard.farm.statements import (
    BUILD,
    BUILD_LOCKED,
    B,
    Build,
    W,
    notify_queued,
    row_dict,
    set_build,
    set_package,
)
from shipyard.farm.views import build_view, split_list
from shipyard.formats.farm import Finished, HeartbeatOut, Job, LogOut
from shipyard.timeutil import aware, utcnow

TAIL_CHARS = 8192


# The worker and whether anything is queued at all, in one statement: an idle worker's
# poll costs one round trip and never a write.
_SELECT_WORKER = select(W.c.token_id, W.c.paused, W.c.capacity, W.c.platforms,
                        W.c.last_seen_at,
                        exists().where(B.c.state == QUEUED).label("queued"),
                        ).where(W.c.name == bindparam("name"))
_RUNNING = B.alias("running")
_RUNNING_ON_WORKER = select(func.count()).select_from(_RUNNING).where(
    _RUNNING.c.state == RUNNING, _RUNNING.c.worker == bindparam("p_worker")).scalar_subquery()
_TOUCH_WORKER = update(W).where(W.c.name == bindparam("p_name")).values(
    last_seen_at=bindparam("p_seen"))


def _claim_statement(platforms: str) -> Any:
    pick = select(B.c.id).where(B.c.state == QUEUED)
    if platforms == "list":
        pick = pick.where(or_(B.c.platform.is_(None),
                              B.c.platform.in_(bindparam("platforms", expanding=True))))
    else:
        pick = pick.where(B.c.platform.is_(None))
    pick = pick.order_by(B.c.id).limit(1).with_for_update(skip_locked=True)
    return (update(B).where(B.c.id == pick.scalar_subquery(), B.c.state == QUEUED,
                            bindparam("p_capacity") > _RUNNING_ON_WORKER)
            .values(state=RUNNING, attempt=B.c.attempt + 1, worker=bindparam("p_worker"),
                    lease_expires_at=bindparam("p_lease"), claimed_at=bindparam("p_now"),
                    first_claimed_at=func.coalesce(B.c.first_claimed_at, bindparam("p_first")),
                    log_pos=0, artifact_name=None, artifact_size=None, artifact_sha256=None)
            .returning(*B.c))


_CLAIM = {"list": _claim_statement("list"), "none": _claim_statement("none")}


def claim(db: FarmDB, cfg: FarmConfig, name: str, token_id: int,
          platforms: list[str] | None = None) -> Job | None:
    """Hand the oldest queued build this worker can run to it, or None.

    The claim is one UPDATE on a row picked with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL)
    or under ``BEGIN IMMEDIATE`` (SQLite), committed at once: two workers, or two
    coordinators, can never claim one build, and nothing stays locked while it runs. An
    empty queue is seen in a read-only transaction, so idle workers polling it never take
    the write lock.
    """
    now = utcnow()
    with db.rtx() as conn:
        worker = conn.execute(_SELECT_WORKER, {"name": name}).first()
        if worker is None:
            raise NotFound(f"worker {name!r} is not registered")
        if worker.token_id != token_id:
            raise Forbidden(f"worker {name!r} is registered with another token")
    waiting = not worker.paused and worker.queued
    seen = aware(worker.last_seen_at)
    touch = seen is None or (now - seen).total_seconds() > 5.0
    if not waiting:
        if touch:
            with db.tx() as conn:
                conn.execute(_TOUCH_WORKER, {"p_name": name, "p_seen": now})
        return None
    allowed = platforms if platforms is not None else split_list(worker.platforms)
    params: dict[str, Any] = {"p_worker": name, "p_now": now, "p_first": now,
                              "p_capacity": worker.capacity,
                              "p_lease": now + timedelta(seconds=cfg.lease_seconds)}
    if allowed:
        params["platforms"] = allowed
    header = f" on worker {name} at {now.strftime('%Y-%m-%d %H:%M:%S')} UTC\n"
    with db.tx() as conn:
        if touch:
            conn.execute(_TOUCH_WORKER, {"p_name": name, "p_seen": now})
        build = row_dict(conn.execute(_CLAIM["list" if allowed else "none"], params).first())
        if build is None:
            return None
        log = LogWriter(build, cfg)
        log.note(f"[shipyard] attempt {build['attempt']}{header}")
        changes = log.flush(conn)
        set_build(conn, build["id"], changes)
    build.update(changes)
    view = build_view(build, cfg)
    return Job(build=view, attempt=view.attempt, lease_seconds=cfg.lease_seconds,
               heartbeat_seconds=cfg.heartbeat_seconds, log_max_bytes=cfg.log_max_bytes,
               max_upload_bytes=cfg.max_upload_bytes)


def current_attempt(conn: Connection, build_id: int, worker: str, attempt: int,
                    *, lock: bool = True) -> Build:
    """The build, if (worker, attempt) is its current running attempt; else 409."""
    query = BUILD_LOCKED if lock else BUILD
    build = row_dict(conn.execute(query, {"p_build": build_id}).first())
    if build is None:
        raise NotFound(f"no build {build_id}")
    if build["state"] != RUNNING or build["attempt"] != attempt or build["worker"] != worker:
        raise Conflict(_stale(build, worker, attempt))
    return build


def _stale(b: Mapping[str, Any], worker: str, attempt: int) -> str:
    if b["state"] == RUNNING:
        return (f"build {b['id']} attempt {attempt} of worker {worker} is not current: "
                f"attempt {b['attempt']} runs on worker {b['worker']}")
    return (f"build {b['id']} attempt {attempt} of worker {worker} is not current: "
            f"the build is {b['state']} (attempt {b['attempt']})")


_HEARTBEAT = (update(B).where(B.c.id == bindparam("p_id"), B.c.attempt == bindparam("p_attempt"),
                              B.c.worker == bindparam("p_worker"), B.c.state == RUNNING)
              .values(lease_expires_at=bindparam("p_lease"))
              .returning(B.c.abort_requested))
_TOUCH_WORKER_IF_OLD = update(W).where(W.c.name == bindparam("p_name"),
                                       W.c.last_seen_at < bindparam("p_old")).values(
    last_seen_at=bindparam("p_seen"))


def heartbeat(db: FarmDB, cfg: FarmConfig, build_id: int, worker: str,
              attempt: int) -> HeartbeatOut:
    """Renew the lease. Zero rows updated means the attempt was taken away: 409, and the
    worker kills its build. The answer carries an abort request."""
    now = utcnow()
    expires = now + timedelta(seconds=cfg.lease_seconds)
    with db.tx() as conn:
        row = conn.execute(_HEARTBEAT, {"p_id": build_id, "p_attempt": attempt,
                                        "p_worker": worker, "p_lease": expires}).first()
        if row is None:
            build = row_dict(conn.execute(BUILD, {"p_build": build_id}).first())
            if build is None:
                raise NotFound(f"no build {build_id}")
            raise Conflict(_stale(build, worker, attempt))
        conn.execute(_TOUCH_WORKER_IF_OLD, {"p_name": worker, "p_seen": now,
                                            "p_old": now - timedelta(seconds=5)})
    return HeartbeatOut(abort=bool(row.abort_requested), lease_expires_at=expires.isoformat())


def report_log(db: FarmDB, cfg: FarmConfig, build_id: int, worker: str, attempt: int,
               pos: int, data: str) -> LogOut:
    """Append worker output. ``pos`` is where ``data`` starts in this attempt's output
    (characters), so a chunk re-sent after a lost answer is not stored twice."""
    with db.tx() as conn:
        build = current_attempt(conn, build_id, worker, attempt)
        changes: dict[str, Any] = {
            "lease_expires_at": utcnow() + timedelta(seconds=cfg.lease_seconds)}
        end = pos + len(data)
        if end > build["log_pos"]:
            log = LogWriter(build, cfg)
            if pos > build["log_pos"]:
                log.note(f"\n[shipyard] {pos - build['log_pos']} characters of output lost\n")
            log.output(data[max(0, build["log_pos"] - pos):])
            changes.update(log.flush(conn), log_pos=end)
        set_build(conn, build_id, changes)
        build.update(changes)
    return LogOut(abort=bool(build["abort_requested"]), pos=build["log_pos"],
                  truncated=bool(build["log_truncated"]))


RESULTS = ("success", "failure", "aborted", "released")
_RESULT_STATE = {"success": SUCCEEDED, "failure": FAILED, "aborted": ABORTED}


def finish(db: FarmDB, cfg: FarmConfig, build_id: int, worker: str, attempt: int, result: str,
           reason: str = "", tail: str = "", log_pos: int | None = None,
           log: str = "") -> Finished:
    """Record the result of the current attempt. Repeating the same finish (its answer was
    lost) answers the same; a finish from an attempt that is not current is 409."""
    if result not in RESULTS:
        raise FarmError(f"unknown result {result!r} (expected one of: {', '.join(RESULTS)})")
    now = utcnow()
    with db.tx() as conn:
        build = row_dict(conn.execute(BUILD_LOCKED, {"p_build": build_id}).first())
        if build is None:
            raise NotFound(f"no build {build_id}")
        if (build["attempt"] == attempt and build["worker"] == worker
                and build["state"] == _RESULT_STATE.get(result)):
            return Finished(build=build_view(build, cfg), repeated=True)
        if build["state"] != RUNNING or build["attempt"] != attempt or build["worker"] != worker:
            raise Conflict(_stale(build, worker, attempt))
        if result == "success" and not build["artifact_name"]:
            raise FarmError(f"build {build_id}: success reported before the package was "
                            "uploaded")
        writer = LogWriter(build, cfg)
        changes: dict[str, Any] = {"tail": tail[-TAIL_CHARS:]}
        if log and log_pos is not None and log_pos + len(log) > build["log_pos"]:
            writer.output(log[max(0, build["log_pos"] - log_pos):])
            changes["log_pos"] = log_pos + len(log)
        if result == "released":
            changes.update(writer.flush(conn))
            build.update(changes)
            lose_attempt(conn, cfg, build,
                         reason or f"worker {worker} gave the build back", changes)
            return Finished(build=build_view(build, cfg), repeated=False)
        changes.update(finished_at=now, lease_expires_at=None)
        if result == "success":
            changes.update(state=SUCCEEDED, reason="",
                           publish_state="pending" if cfg.publish else None)
            writer.note("[shipyard] build succeeded\n")
            set_package(conn, build["package_id"], {
                "last_success_at": now, "last_success_version": build["version"],
                "last_build_id": build_id})
        elif result == "aborted":
            why = build["reason"] or reason or "aborted"
            changes.update(state=ABORTED, reason=why, dedup_key=None)
            writer.note(f"[shipyard] build aborted: {why}\n")
        else:
            why = reason or "build failed"
            changes.update(state=FAILED, reason=why, dedup_key=None)
            writer.note(f"[shipyard] build failed: {why}\n")
        changes.update(writer.flush(conn))
        set_build(conn, build_id, changes)
        build.update(changes)
        if result == "failure":
            queue_failure_mail(conn, cfg, build)
    return Finished(build=build_view(build, cfg), repeated=False)


def lose_attempt(conn: Connection, cfg: FarmConfig, build: Build, why: str,
                 changes: dict[str, Any] | None = None) -> str:
    """An attempt ended without a result (worker gone, restarted or released the build):
    queue the build again, unless it was aborted or has used up its attempts. Updates
    ``build`` in place and returns its new state."""
    now = utcnow()
    log = LogWriter(build, cfg)
    update_ = dict(changes or {})
    update_["lease_expires_at"] = None
    if build["abort_requested"]:
        update_.update(state=ABORTED, finished_at=now, dedup_key=None,
                       reason=f"{build['reason'] or 'aborted'} ({why})")
        log.note(f"[shipyard] build aborted: {why}\n")
    elif build["attempt"] >= cfg.max_attempts:
        update_.update(state=FAILED, finished_at=now, dedup_key=None,
                       reason=f"gave up after {build['attempt']} attempt(s) "
                              f"(farm.max_attempts = {cfg.max_attempts}); last: {why}")
        log.note(f"[shipyard] {update_['reason']}\n")
    else:
        update_.update(state=QUEUED, worker=None)
        log.note(f"[shipyard] attempt {build['attempt']} lost: {why}; queued again "
                 f"({build['attempt']} of {cfg.max_attempts} attempts used)\n")
    update_.update(log.flush(conn))
    set_build(conn, build["id"], update_)
    build.update(update_)
    if build["state"] == FAILED:
        queue_failure_mail(conn, cfg, build)
    elif build["state"] == QUEUED:
        notify_queued(conn)
    return str(build["state"])


def reap(db: FarmDB, cfg: FarmConfig, *, limit: int = 200) -> list[tuple[int, str]]:
    """Requeue (or fail, or finish aborting) builds whose lease ran out."""
    now = utcnow()
    with db.rtx() as conn:
        if conn.execute(select(B.c.id).where(B.c.state == RUNNING,
                                             B.c.lease_expires_at < now).limit(1)).first() is None:
            return []
    changed: list[tuple[int, str]] = []
    with db.tx() as conn:
        rows = conn.execute(
            select(B).where(B.c.state == RUNNING, B.c.lease_expires_at < now)
            .order_by(B.c.id).limit(limit).with_for_update(skip_locked=True)).all()
        for row in rows:
            build = dict(row._mapping)
            expired = aware(build["lease_expires_at"])
            state = lose_attempt(conn, cfg, build,
                                 f"worker {build['worker']} stopped heartbeating (lease ran "
                                 f"out at {expired.strftime('%H:%M:%S') if expired else '?'} "
                                 "UTC)")
            changed.append((build["id"], state))
    return changed


