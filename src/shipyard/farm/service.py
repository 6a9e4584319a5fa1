"""The farm's state machine over the database: request, claim, report, reap.

Every function here is one short transaction. A build moves::

    queued --claim--> running --finish--> succeeded | failed | aborted
      |                  | lease runs out (worker gone): back to queued, at most
      |                  |   farm.max_attempts claims, then failed with the reason
      +--abort--> cancelled   (abort of a running build: the worker kills it)

Each claim increments ``attempt``; every report from a worker names (build, attempt, worker)
and is applied with a compare-and-set on those three, so a report from an attempt that was
taken away (its lease ran out and another worker has the build now) changes nothing and is
answered 409. That is how a worker that comes back from a network partition learns to kill
its copy of the build (Koji does the same).

The statements are SQLAlchemy Core, not the ORM: on SQLite every write transaction of the
coordinator holds one lock, and the time spent inside it bounds the farm's throughput.
"""

from __future__ import annotations

import email.utils
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from shipyard.config import Settings
from shipyard.db.farm_models import (
    ABORTED,
    BUILD_STATES,
    CANCELLED,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    FarmBuild,
    FarmLogChunk,
    FarmOutbox,
    FarmPackage,
    FarmToken,
    FarmWorker,
)
from shipyard.farm.db import FarmDB, aware, utcnow
from shipyard.farm.errors import Conflict, FarmError, Forbidden, NotFound
from shipyard.fsutil import fsync_dir

NOTIFY_CHANNEL = "shipyard_farm"
TAIL_CHARS = 8192
MAIL_TAIL_LINES = 40
# A build that succeeded but whose package the repository refused: not a build state (the
# build's own result stands, and its lease/attempt logic never sees it) but what every view
# shows and what the filters accept, so it never passes for a success.
PUBLISH_FAILED = "publish-failed"
FILTER_STATES = (*BUILD_STATES, PUBLISH_FAILED)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")

B = FarmBuild.__table__
P = FarmPackage.__table__
W = FarmWorker.__table__
L = FarmLogChunk.__table__
O = FarmOutbox.__table__  # noqa: E741

Build = dict[str, Any]

# The hot paths' statements, built once: constructing a statement and its cache key costs
# more CPU than SQLite takes to run it. Values come as execute() parameters; an UPDATE
# without .values() sets the columns its parameters name (besides the WHERE's own).
_PACKAGE_NAMED = select(P).where(P.c.name == bindparam("p_name"))
_UPDATE_PACKAGE = update(P).where(P.c.id == bindparam("p_package"))
_BUILD = select(B).where(B.c.id == bindparam("p_build"))
_BUILD_LOCKED = _BUILD.with_for_update()
_UPDATE_BUILD = update(B).where(B.c.id == bindparam("p_build"))
_INSERT_BUILD = insert(B).returning(*B.c)
_INSERT_LOG = insert(L)


def _set_build(conn: Connection, build_id: int, changes: Mapping[str, Any]) -> None:
    conn.execute(_UPDATE_BUILD, {"p_build": build_id, **changes})


def _set_package(conn: Connection, package_id: int, changes: Mapping[str, Any]) -> None:
    conn.execute(_UPDATE_PACKAGE, {"p_package": package_id, **changes})


@dataclass
class FarmConfig:
    """The settings the state machine needs, read once."""

    lease_seconds: float = 30.0
    max_attempts: int = 3
    log_max_bytes: int = 5 << 20
    max_upload_bytes: int = 1 << 30
    url: str = "http://127.0.0.1:8470"
    artifacts: Path = field(default_factory=lambda: Path("farm-artifacts"))
    mail: bool = False
    publish: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, *, publish: bool = False,
                      bind: str | None = None) -> FarmConfig:
        url = str(settings.get("farm.url") or "").rstrip("/")
        if not url:
            url = "http://" + (bind or str(settings.get("farm.bind")))
        return cls(
            lease_seconds=float(settings.get("farm.lease_seconds")),
            max_attempts=max(1, int(settings.get("farm.max_attempts"))),
            log_max_bytes=int(settings.get("farm.log_max_bytes")),
            max_upload_bytes=int(settings.get("farm.max_upload_bytes")),
            url=url,
            artifacts=Path(settings.get("farm.artifacts")),
            mail=bool(str(settings.get("smtp.host") or "").strip()),
            publish=publish,
        )

    @property
    def heartbeat_seconds(self) -> float:
        """Often enough that an abort lands within seconds and a lease never runs out."""
        return max(0.2, min(self.lease_seconds / 3.0, 2.0))

    def build_url(self, build_id: int) -> str:
        return f"{self.url}/builds/{build_id}"


def _notify(conn: Connection) -> None:
    """Wake claims waiting on other coordinators (PostgreSQL; delivered at commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', 'queued')"))


def _dict(row: Row[Any] | None) -> Build | None:
    return dict(row._mapping) if row is not None else None


# ---------------------------------------------------------------------------------------
# JSON views


def _iso(moment: datetime | None) -> str | None:
    moment = aware(moment)
    return moment.isoformat() if moment else None


def status_of(b: Mapping[str, Any]) -> str:
    """The state a person sees: ``publish-failed`` for a success the repository refused."""
    if b["state"] == SUCCEEDED and b["publish_state"] == "error":
        return PUBLISH_FAILED
    return str(b["state"])


def build_view(b: Mapping[str, Any], cfg: FarmConfig) -> dict[str, Any]:
    artifact = None
    if b["artifact_name"]:
        artifact = {"name": b["artifact_name"], "size": b["artifact_size"],
                    "sha256": b["artifact_sha256"], "url": f"/api/builds/{b['id']}/artifact"}
    return {
        "id": b["id"], "package": b["package"], "version": b["version"],
        "commit": b["commit"], "ref": b["ref"], "repo_url": b["repo_url"],
        "subdir": b["subdir"], "platform": b["platform"], "maintainer": b["maintainer"],
        "state": b["state"], "forced": bool(b["forced"]), "attempt": b["attempt"],
        "worker": b["worker"], "lease_expires_at": _iso(b["lease_expires_at"]),
        "abort_requested": bool(b["abort_requested"]), "requested_by": b["requested_by"],
        "requested_at": _iso(b["requested_at"]),
        "first_claimed_at": _iso(b["first_claimed_at"]),
        "claimed_at": _iso(b["claimed_at"]), "finished_at": _iso(b["finished_at"]),
        "reason": b["reason"], "log_bytes": b["log_bytes"],
        "log_truncated": bool(b["log_truncated"]), "artifact": artifact,
        "publish_state": b["publish_state"], "publish_error": b["publish_error"],
        "status": status_of(b), "url": cfg.build_url(b["id"]),
    }


def package_view(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": p["name"], "repo_url": p["repo_url"], "subdir": p["subdir"],
        "maintainer": p["maintainer"], "head_commit": p["head_commit"],
        "head_version": p["head_version"], "head_ref": p["head_ref"],
        "created_at": _iso(p["created_at"]), "updated_at": _iso(p["updated_at"]),
        "last_success_at": _iso(p["last_success_at"]),
        "last_success_version": p["last_success_version"],
        "last_build_id": p["last_build_id"],
    }


def worker_view(w: Mapping[str, Any], cfg: FarmConfig, running: list[int],
                now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    seen = aware(w["last_seen_at"])
    online = seen is not None and (now - seen).total_seconds() <= max(cfg.lease_seconds, 30.0)
    status = "offline" if not online else ("busy" if running else "idle")
    if w["paused"] and online:
        status = "paused"
    return {
        "name": w["name"], "platforms": _split(w["platforms"]),
        "capacity": w["capacity"], "http_url": w["http_url"], "paused": bool(w["paused"]),
        "registered_at": _iso(w["registered_at"]), "last_seen_at": _iso(w["last_seen_at"]),
        "status": status, "running": running,
    }


def _split(value: str) -> list[str]:
    return [item for item in value.split(",") if item]


# ---------------------------------------------------------------------------------------
# Logs


def _cut_utf8(data: str, limit: int) -> str:
    """The longest prefix of ``data`` that is at most ``limit`` UTF-8 bytes."""
    return data.encode("utf-8")[:max(0, limit)].decode("utf-8", errors="ignore")


class LogWriter:
    """Appends to one build's log within ``farm.log_max_bytes``; collects the chunk rows so
    one INSERT writes them, and tracks the build's new ``log_bytes``/``log_truncated`` for
    the caller's UPDATE of the build row."""

    def __init__(self, b: Mapping[str, Any], cfg: FarmConfig) -> None:
        self.build_id = b["id"]
        self.attempt = b["attempt"]
        self.size = b["log_bytes"]
        self.truncated = bool(b["log_truncated"])
        self.cap = cfg.log_max_bytes
        self.rows: list[dict[str, Any]] = []

    def _chunk(self, data: str) -> None:
        size = len(data.encode("utf-8"))
        self.rows.append({"build_id": self.build_id, "attempt": self.attempt,
                          "offset": self.size, "size": size, "data": data})
        self.size += size

    def _note_truncation(self) -> None:
        self.truncated = True
        self._chunk(f"\n[shipyard] log truncated at {self.size} bytes "
                    "(farm.log_max_bytes); further output dropped\n")

    def output(self, data: str) -> None:
        """Build output: kept up to the cap, then one truncation note, then dropped."""
        if not data or self.truncated:
            return
        room = self.cap - self.size
        if room <= 0:
            self._note_truncation()
            return
        if len(data) * 4 > room and len(data.encode("utf-8")) > room:
            self._chunk(_cut_utf8(data, room))
            self._note_truncation()
            return
        self._chunk(data)

    def note(self, data: str) -> None:
        """A line of the farm's own (attempts, results): always kept, it is short and a
        reader must learn what happened even after a build flooded its log."""
        if data:
            self._chunk(data)

    def flush(self, conn: Connection) -> dict[str, Any]:
        """Insert the chunks, as one row (they are contiguous: a statement fewer for a
        finish that carries output and a note); returns the build columns to update."""
        if self.rows:
            first = self.rows[0]
            row = {**first, "size": sum(r["size"] for r in self.rows),
                   "data": "".join(r["data"] for r in self.rows)}
            conn.execute(_INSERT_LOG, row)
            self.rows = []
        return {"log_bytes": self.size, "log_truncated": self.truncated}


def read_log(db: FarmDB, cfg: FarmConfig, build_id: int, offset: int = 0,
             limit: int = 1 << 20) -> dict[str, Any]:
    """Log text from byte ``offset``: whole chunks, so ``next_offset`` is always a chunk end."""
    with db.rtx() as conn:
        b = conn.execute(select(B.c.state, B.c.log_truncated, B.c.log_bytes)
                         .where(B.c.id == build_id)).first()
        if b is None:
            raise NotFound(f"no build {build_id}")
        rows = conn.execute(
            select(L.c.offset, L.c.size, L.c.data)
            .where(L.c.build_id == build_id, L.c.offset + L.c.size > offset)
            .order_by(L.c.offset)).all()
    parts: list[bytes] = []
    total = 0
    next_offset = offset
    for chunk_offset, size, data in rows:
        raw = data.encode("utf-8")
        if chunk_offset < offset:
            raw = raw[offset - chunk_offset:]
        parts.append(raw)
        total += len(raw)
        next_offset = chunk_offset + size
        if total >= limit:
            break
    return {
        "build": build_id, "state": b.state, "offset": offset, "next_offset": next_offset,
        "text": b"".join(parts).decode("utf-8", errors="replace"),
        "truncated": bool(b.log_truncated), "size": b.log_bytes,
        "complete": b.state in FINAL_STATES and next_offset >= b.log_bytes,
    }


# ---------------------------------------------------------------------------------------
# Requests


@dataclass
class BuildRequest:
    """What a push hook (or a person) asks for. ``group``/``id`` may be missing only when
    the manifest was too broken to name its package (``manifest_error`` is then set)."""

    commit: str
    repo_url: str
    subdir: str = ""
    group: str | None = None
    id: str | None = None
    version: str | None = None
    ref: str = ""
    maintainer: str = ""
    committer: str = ""
    platform: str | None = None
    force: bool = False
    manifest_error: str | None = None


def _insert_ignore(conn: Connection, table: Any, values: dict[str, Any], conflict: str) -> Any:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING RETURNING *, on either database."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = dialect_insert(table).values(**values).on_conflict_do_nothing(
        index_elements=[conflict]).returning(*table.c)
    return conn.execute(statement).first()


def _package(conn: Connection, req: BuildRequest, *, head: bool) -> Build:
    """The package row for a request (created on first sight), updated to the pushed
    head when the request comes from a push."""
    if req.group and req.id:
        name = f"{req.group}:{req.id}"
    else:
        known = conn.execute(select(P.c.name).where(P.c.repo_url == req.repo_url,
                                                    P.c.subdir == req.subdir)).first()
        name = known.name if known is not None else f"path:{req.subdir or '.'}"
    now = utcnow()
    package = _dict(conn.execute(_PACKAGE_NAMED, {"p_name": name}).first())
    if package is None:
        package = _dict(_insert_ignore(conn, P, {
            "name": name, "repo_url": req.repo_url, "subdir": req.subdir,
            "maintainer": req.maintainer, "head_commit": req.commit,
            "head_version": req.version, "head_ref": req.ref, "created_at": now,
            "updated_at": now}, "name"))
        if package is None:  # created by a concurrent request a moment ago
            package = _dict(conn.execute(_PACKAGE_NAMED, {"p_name": name}).first())
        assert package is not None
        return package
    if head:
        changes = {"repo_url": req.repo_url or package["repo_url"], "subdir": req.subdir,
                   "head_commit": req.commit, "head_version": req.version,
                   "head_ref": req.ref or package["head_ref"], "updated_at": now}
        if req.maintainer:
            changes["maintainer"] = req.maintainer
        _set_package(conn, package["id"], changes)
        package.update(changes)
    return package


def request_build(db: FarmDB, cfg: FarmConfig, req: BuildRequest, requested_by: str,
                  *, head: bool = True) -> tuple[dict[str, Any], bool, str]:
    """Queue a build unless this version is queued, running or built (idempotent).

    Returns (build, created, note). A version that failed at this very commit is not
    retried by itself (the seed's lesson: retrying a broken build helps nobody); a new
    commit or ``force`` builds it again. Two hooks or coordinators racing on one version
    meet at the unique ``dedup_key`` and create one build.
    """
    with db.tx() as conn:
        return _queue(conn, cfg, req, _package(conn, req, head=head), requested_by)


def _queue(conn: Connection, cfg: FarmConfig, req: BuildRequest, package: Build,
           requested_by: str) -> tuple[dict[str, Any], bool, str]:
    """:func:`request_build` once the package row is known, inside its transaction."""
    now = utcnow()
    name = package["name"]
    if req.manifest_error:
        return _manifest_failure(conn, cfg, package, req, requested_by)
    key = f"{name}:{req.version}" if req.version else f"{name}@{req.commit}"
    label = f"{name} {req.version or ''}".rstrip()
    if not req.force:
        holder = _dict(conn.execute(select(B).where(B.c.dedup_key == key)).first())
        if holder is not None:
            what = "already built" if holder["state"] == SUCCEEDED else (
                f"already {holder['state']}")
            return build_view(holder, cfg), False, f"{label} {what}"
        query = select(B).where(B.c.package_id == package["id"],
                                B.c.commit == req.commit,
                                B.c.state.in_((FAILED, ABORTED)))
        if req.version:
            query = query.where(B.c.version == req.version)
        earlier = _dict(conn.execute(query.order_by(B.c.id.desc()).limit(1)).first())
        if earlier is not None:
            return (build_view(earlier, cfg), False,
                    f"{label} {earlier['state']} at this commit (build {earlier['id']}); "
                    "push a new commit or force a rebuild")
    values = {
        "package_id": package["id"], "package": name, "version": req.version,
        "commit": req.commit, "ref": req.ref, "repo_url": req.repo_url,
        "subdir": req.subdir, "platform": req.platform,
        "maintainer": req.maintainer or package["maintainer"],
        "committer": req.committer, "state": QUEUED, "forced": req.force,
        "dedup_key": None if req.force else key, "requested_by": requested_by,
        "requested_at": now,
    }
    if req.force:
        build = _dict(conn.execute(_INSERT_BUILD, values).first())
    else:
        build = _dict(_insert_ignore(conn, B, values, "dedup_key"))
        if build is None:
            holder = _dict(conn.execute(select(B).where(B.c.dedup_key == key)).first())
            assert holder is not None
            return build_view(holder, cfg), False, f"{label} already {holder['state']}"
    assert build is not None
    _set_package(conn, package["id"], {"last_build_id": build["id"]})
    _notify(conn)
    return build_view(build, cfg), True, f"queued build {build['id']} of {label}"


def request_package_build(db: FarmDB, cfg: FarmConfig, name: str, commit: str | None,
                          force: bool, requested_by: str) -> tuple[dict[str, Any], bool, str]:
    """``farm build request PACKAGE [--commit C] [--force]``: the package must be known
    (a push announced it); its source location is taken from there. One transaction: the
    package row read here is the one the build is queued for."""
    with db.tx() as conn:
        package = _dict(conn.execute(_PACKAGE_NAMED, {"p_name": name}).first())
        if package is None:
            raise NotFound(f"unknown package {name!r}: no push has announced it to the farm "
                           "yet")
        if not package["head_commit"]:
            raise Conflict(f"package {name} has no known commit; pass --commit")
        use = commit or package["head_commit"]
        version = package["head_version"] if use == package["head_commit"] else None
        group, _, ident = name.partition(":")
        req = BuildRequest(commit=use, repo_url=package["repo_url"], subdir=package["subdir"],
                           group=group if ident else None, id=ident or None, version=version,
                           ref=package["head_ref"], maintainer=package["maintainer"],
                           force=force)
        return _queue(conn, cfg, req, package, requested_by)


def _manifest_failure(conn: Connection, cfg: FarmConfig, package: Build, req: BuildRequest,
                      requested_by: str) -> tuple[dict[str, Any], bool, str]:
    """A pushed manifest that does not parse fails at once, with the error in the log and
    the mail, so the maintainer learns about it without a worker ever seeing it."""
    earlier = _dict(conn.execute(
        select(B).where(B.c.package_id == package["id"], B.c.commit == req.commit,
                        B.c.state == FAILED, B.c.reason.like("malformed manifest%"))
        .limit(1)).first())
    if earlier is not None and not req.force:
        return build_view(earlier, cfg), False, "manifest error already reported"
    now = utcnow()
    reason = f"malformed manifest: {req.manifest_error}"
    build = _dict(conn.execute(insert(B).values(
        package_id=package["id"], package=package["name"], version=req.version,
        commit=req.commit, ref=req.ref, repo_url=req.repo_url, subdir=req.subdir,
        platform=req.platform, maintainer=req.maintainer or package["maintainer"],
        committer=req.committer, state=FAILED, forced=req.force, requested_by=requested_by,
        requested_at=now, finished_at=now, reason=reason, tail=reason,
    ).returning(*B.c)).first())
    assert build is not None
    log = LogWriter(build, cfg)
    log.note(f"[shipyard] {req.subdir or '.'}/shipyard.toml at {req.commit} cannot be "
             f"built:\n{req.manifest_error}\n")
    changes = log.flush(conn)
    _set_build(conn, build["id"], changes)
    build.update(changes)
    _set_package(conn, package["id"], {"last_build_id": build["id"]})
    _queue_failure_mail(conn, cfg, build)
    return build_view(build, cfg), True, f"build {build['id']} of {package['name']} failed: " \
        f"{reason}"


# ---------------------------------------------------------------------------------------
# Workers


def register_worker(db: FarmDB, cfg: FarmConfig, token_id: int, name: str,
                    platforms: list[str], capacity: int, http_url: str) -> dict[str, Any]:
    """Record a worker; builds it held before (it restarted) go back to the queue now
    rather than when their leases run out."""
    if not NAME_RE.fullmatch(name):
        raise FarmError(f"invalid worker name {name!r}: expected [A-Za-z0-9][A-Za-z0-9._@-]*")
    import secrets

    now = utcnow()
    session_id = secrets.token_hex(8)
    values = {"token_id": token_id, "platforms": ",".join(platforms), "capacity": capacity,
              "http_url": http_url, "session": session_id, "registered_at": now,
              "last_seen_at": now}
    with db.tx() as conn:
        worker = conn.execute(select(W.c.id, W.c.token_id).where(W.c.name == name)).first()
        if worker is None:
            if _insert_ignore(conn, W, {"name": name, "paused": False, **values},
                              "name") is None:
                raise Conflict(f"worker {name!r} registered twice at the same moment")
        else:
            if worker.token_id not in (None, token_id):
                owner = conn.execute(select(FarmToken.__table__.c.revoked_at).where(
                    FarmToken.__table__.c.id == worker.token_id)).first()
                if owner is not None and owner.revoked_at is None:
                    raise Forbidden(f"worker name {name!r} is registered with another token")
            conn.execute(update(W).where(W.c.id == worker.id).values(**values))
        held = conn.execute(select(B).where(B.c.state == RUNNING, B.c.worker == name)
                            .with_for_update()).all()
        requeued = []
        for row in held:
            if _lose_attempt(conn, cfg, dict(row._mapping), f"worker {name} restarted") == QUEUED:
                requeued.append(row.id)
        if requeued:
            _notify(conn)
    return {"worker": name, "session": session_id, "requeued": requeued,
            "lease_seconds": cfg.lease_seconds, "heartbeat_seconds": cfg.heartbeat_seconds,
            "log_max_bytes": cfg.log_max_bytes, "max_upload_bytes": cfg.max_upload_bytes}


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
          platforms: list[str] | None = None) -> dict[str, Any] | None:
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
    allowed = platforms if platforms is not None else _split(worker.platforms)
    params: dict[str, Any] = {"p_worker": name, "p_now": now, "p_first": now,
                              "p_capacity": worker.capacity,
                              "p_lease": now + timedelta(seconds=cfg.lease_seconds)}
    if allowed:
        params["platforms"] = allowed
    header = f" on worker {name} at {now.strftime('%Y-%m-%d %H:%M:%S')} UTC\n"
    with db.tx() as conn:
        if touch:
            conn.execute(_TOUCH_WORKER, {"p_name": name, "p_seen": now})
        build = _dict(conn.execute(_CLAIM["list" if allowed else "none"], params).first())
        if build is None:
            return None
        log = LogWriter(build, cfg)
        log.note(f"[shipyard] attempt {build['attempt']}{header}")
        changes = log.flush(conn)
        _set_build(conn, build["id"], changes)
    build.update(changes)
    view = build_view(build, cfg)
    return {"build": view, "attempt": view["attempt"], "lease_seconds": cfg.lease_seconds,
            "heartbeat_seconds": cfg.heartbeat_seconds, "log_max_bytes": cfg.log_max_bytes,
            "max_upload_bytes": cfg.max_upload_bytes}


def _current(conn: Connection, build_id: int, worker: str, attempt: int,
             *, lock: bool = True) -> Build:
    """The build, if (worker, attempt) is its current running attempt; else 409."""
    query = _BUILD_LOCKED if lock else _BUILD
    build = _dict(conn.execute(query, {"p_build": build_id}).first())
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
              attempt: int) -> dict[str, Any]:
    """Renew the lease. Zero rows updated means the attempt was taken away: 409, and the
    worker kills its build. The answer carries an abort request."""
    now = utcnow()
    expires = now + timedelta(seconds=cfg.lease_seconds)
    with db.tx() as conn:
        row = conn.execute(_HEARTBEAT, {"p_id": build_id, "p_attempt": attempt,
                                        "p_worker": worker, "p_lease": expires}).first()
        if row is None:
            build = _dict(conn.execute(_BUILD, {"p_build": build_id}).first())
            if build is None:
                raise NotFound(f"no build {build_id}")
            raise Conflict(_stale(build, worker, attempt))
        conn.execute(_TOUCH_WORKER_IF_OLD, {"p_name": worker, "p_seen": now,
                                            "p_old": now - timedelta(seconds=5)})
    return {"abort": bool(row.abort_requested), "lease_expires_at": expires.isoformat()}


def report_log(db: FarmDB, cfg: FarmConfig, build_id: int, worker: str, attempt: int,
               pos: int, data: str) -> dict[str, Any]:
    """Append worker output. ``pos`` is where ``data`` starts in this attempt's output
    (characters), so a chunk re-sent after a lost answer is not stored twice."""
    with db.tx() as conn:
        build = _current(conn, build_id, worker, attempt)
        changes: dict[str, Any] = {
            "lease_expires_at": utcnow() + timedelta(seconds=cfg.lease_seconds)}
        end = pos + len(data)
        if end > build["log_pos"]:
            log = LogWriter(build, cfg)
            if pos > build["log_pos"]:
                log.note(f"\n[shipyard] {pos - build['log_pos']} characters of output lost\n")
            log.output(data[max(0, build["log_pos"] - pos):])
            changes.update(log.flush(conn), log_pos=end)
        _set_build(conn, build_id, changes)
        build.update(changes)
    return {"abort": bool(build["abort_requested"]), "pos": build["log_pos"],
            "truncated": bool(build["log_truncated"])}


ARCHIVE_RE = re.compile(r"(?P<id>[a-z0-9][a-z0-9._-]*)-(?P<version>[A-Za-z0-9][A-Za-z0-9.+~_-]*)"
                        r"\.tar\.(?:gz|zst)")


def check_upload(db: FarmDB, build_id: int, worker: str, attempt: int, filename: str) -> None:
    """Refuse an upload before reading its body (stale attempt, wrong file name)."""
    with db.rtx() as conn:
        build = _current(conn, build_id, worker, attempt, lock=False)
    _check_archive_name(build, filename)


def _check_archive_name(b: Mapping[str, Any], filename: str) -> str:
    ident = b["package"].partition(":")[2]
    match = ARCHIVE_RE.fullmatch(filename)
    if match is None or ".." in filename or not filename.startswith(ident + "-"):
        raise FarmError(f"upload {filename!r} is not an archive of {b['package']} "
                        f"(expected {ident}-<version>.tar.gz or .tar.zst)")
    # The id may contain '-', so split on the id we expect rather than trusting the regex.
    version = filename[len(ident) + 1:].rsplit(".tar.", 1)[0]
    if b["version"] and version != b["version"]:
        raise FarmError(f"upload {filename!r} is version {version}, the build is of "
                        f"{b['package']} {b['version']}")
    return version


def artifact_file(cfg: FarmConfig, build_id: int, attempt: int, name: str) -> Path:
    """Where the coordinator keeps a build's package: one flat directory, so storing one
    is a rename and one directory fsync; the attempt is in the name, so a stale attempt's
    upload can never replace or remove the current one's."""
    return cfg.artifacts / f"{build_id}-a{attempt}-{name}"


def store_artifact(db: FarmDB, cfg: FarmConfig, build_id: int, worker: str, attempt: int,
                   filename: str, staged: Path, size: int, sha256: str) -> dict[str, Any]:
    """Move a fully received (and fsynced) upload into place, then record it on the build
    if the attempt is still current. The file is durable before the row names it; a file
    of an attempt that lost the race is removed again."""
    target = artifact_file(cfg, build_id, attempt, filename)
    os.replace(staged, target)
    fsync_dir(target.parent)
    try:
        with db.tx() as conn:
            build = _current(conn, build_id, worker, attempt)
            version = _check_archive_name(build, filename)
            changes = {"artifact_name": filename, "artifact_size": size,
                       "artifact_sha256": sha256,
                       "lease_expires_at": utcnow() + timedelta(seconds=cfg.lease_seconds)}
            if build["version"] is None:
                changes["version"] = version
            _set_build(conn, build_id, changes)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return {"name": filename, "size": size, "sha256": sha256}


def artifact_path(db: FarmDB, cfg: FarmConfig, build_id: int) -> Path:
    """The stored package of a build (for downloads and the publisher)."""
    with db.rtx() as conn:
        build = conn.execute(select(B.c.artifact_name, B.c.attempt)
                             .where(B.c.id == build_id)).first()
    if build is None:
        raise NotFound(f"no build {build_id}")
    if not build.artifact_name:
        raise NotFound(f"build {build_id} has no package")
    path = artifact_file(cfg, build_id, build.attempt, build.artifact_name)
    if not path.is_file():
        raise NotFound(f"build {build_id}: its package file is gone")
    return path


RESULTS = ("success", "failure", "aborted", "released")
_RESULT_STATE = {"success": SUCCEEDED, "failure": FAILED, "aborted": ABORTED}


def finish(db: FarmDB, cfg: FarmConfig, build_id: int, worker: str, attempt: int, result: str,
           reason: str = "", tail: str = "", log_pos: int | None = None,
           log: str = "") -> dict[str, Any]:
    """Record the result of the current attempt. Repeating the same finish (its answer was
    lost) answers the same; a finish from an attempt that is not current is 409."""
    if result not in RESULTS:
        raise FarmError(f"unknown result {result!r} (expected one of: {', '.join(RESULTS)})")
    now = utcnow()
    with db.tx() as conn:
        build = _dict(conn.execute(_BUILD_LOCKED, {"p_build": build_id})
                      .first())
        if build is None:
            raise NotFound(f"no build {build_id}")
        if (build["attempt"] == attempt and build["worker"] == worker
                and build["state"] == _RESULT_STATE.get(result)):
            return {"build": build_view(build, cfg), "repeated": True}
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
            _lose_attempt(conn, cfg, build,
                          reason or f"worker {worker} gave the build back", changes)
            return {"build": build_view(build, cfg), "repeated": False}
        changes.update(finished_at=now, lease_expires_at=None)
        if result == "success":
            changes.update(state=SUCCEEDED, reason="",
                           publish_state="pending" if cfg.publish else None)
            writer.note("[shipyard] build succeeded\n")
            _set_package(conn, build["package_id"], {
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
        _set_build(conn, build_id, changes)
        build.update(changes)
        if result == "failure":
            _queue_failure_mail(conn, cfg, build)
    return {"build": build_view(build, cfg), "repeated": False}


def _lose_attempt(conn: Connection, cfg: FarmConfig, build: Build, why: str,
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
    _set_build(conn, build["id"], update_)
    build.update(update_)
    if build["state"] == FAILED:
        _queue_failure_mail(conn, cfg, build)
    elif build["state"] == QUEUED:
        _notify(conn)
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
            state = _lose_attempt(conn, cfg, build,
                                  f"worker {build['worker']} stopped heartbeating (lease ran "
                                  f"out at {expired.strftime('%H:%M:%S') if expired else '?'} "
                                  "UTC)")
            changed.append((build["id"], state))
    return changed


# ---------------------------------------------------------------------------------------
# Operator actions


def abort(db: FarmDB, cfg: FarmConfig, build_id: int, by: str) -> dict[str, Any]:
    """Cancel a queued build; ask the worker of a running one to kill it."""
    now = utcnow()
    with db.tx() as conn:
        build = _dict(conn.execute(_BUILD_LOCKED, {"p_build": build_id})
                      .first())
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
        _set_build(conn, build_id, changes)
        build.update(changes)
    return build_view(build, cfg)


def requeue(db: FarmDB, cfg: FarmConfig, build_id: int, by: str) -> dict[str, Any]:
    """Build a finished build's commit again, as a new forced build."""
    with db.rtx() as conn:
        build = conn.execute(_BUILD, {"p_build": build_id}).first()
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


def set_worker_paused(db: FarmDB, cfg: FarmConfig, name: str, paused: bool) -> dict[str, Any]:
    with db.tx() as conn:
        if conn.execute(update(W).where(W.c.name == name).values(paused=paused)).rowcount == 0:
            raise NotFound(f"no worker {name!r}")
        worker = conn.execute(select(W).where(W.c.name == name)).first()
        running = list(conn.execute(select(B.c.id).where(
            B.c.state == RUNNING, B.c.worker == name)).scalars())
    assert worker is not None
    return worker_view(worker._mapping, cfg, running)


# ---------------------------------------------------------------------------------------
# Reads


def get_build(db: FarmDB, cfg: FarmConfig, build_id: int) -> dict[str, Any]:
    with db.rtx() as conn:
        build = conn.execute(_BUILD, {"p_build": build_id}).first()
    if build is None:
        raise NotFound(f"no build {build_id}")
    view = build_view(build._mapping, cfg)
    view["tail"] = build.tail
    return view


def list_builds(db: FarmDB, cfg: FarmConfig, *, state: str | None = None,
                package: str | None = None, worker: str | None = None, limit: int = 50,
                before: int | None = None) -> list[dict[str, Any]]:
    if state is not None and state not in FILTER_STATES:
        raise FarmError(f"unknown state {state!r} (expected one of: "
                        f"{', '.join(FILTER_STATES)})")
    columns = [c for c in B.c if c.name != "tail"]
    query = select(*columns)
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


def list_failures(db: FarmDB, cfg: FarmConfig, limit: int = 10) -> list[dict[str, Any]]:
    """The newest builds that failed or whose package the repository refused."""
    columns = [c for c in B.c if c.name != "tail"]
    query = (select(*columns)
             .where(or_(B.c.state == FAILED,
                        (B.c.state == SUCCEEDED) & (B.c.publish_state == "error")))
             .order_by(B.c.id.desc()).limit(max(1, min(limit, 1000))))
    with db.rtx() as conn:
        return [build_view(row._mapping, cfg) for row in conn.execute(query).all()]


def list_workers(db: FarmDB, cfg: FarmConfig) -> list[dict[str, Any]]:
    now = utcnow()
    with db.rtx() as conn:
        running: dict[str, list[int]] = {}
        for build_id, worker in conn.execute(
                select(B.c.id, B.c.worker).where(B.c.state == RUNNING).order_by(B.c.id)):
            running.setdefault(worker, []).append(build_id)
        rows = conn.execute(select(W).order_by(W.c.name)).all()
    return [worker_view(row._mapping, cfg, running.get(row.name, []), now) for row in rows]


def get_worker(db: FarmDB, cfg: FarmConfig, name: str) -> dict[str, Any]:
    for view in list_workers(db, cfg):
        if view["name"] == name:
            return view
    raise NotFound(f"no worker {name!r}")


def list_packages(db: FarmDB) -> list[dict[str, Any]]:
    with db.rtx() as conn:
        return [package_view(row._mapping)
                for row in conn.execute(select(P).order_by(P.c.name))]


def get_package(db: FarmDB, name: str) -> dict[str, Any]:
    with db.rtx() as conn:
        row = conn.execute(_PACKAGE_NAMED, {"p_name": name}).first()
    if row is None:
        raise NotFound(f"unknown package {name!r}")
    return package_view(row._mapping)


def stale(db: FarmDB, days: float, now: datetime | None = None) -> list[dict[str, Any]]:
    """Packages whose last success is older than ``days`` days, or that never succeeded."""
    now = now or utcnow()
    cutoff = now - timedelta(days=days)
    with db.rtx() as conn:
        rows = conn.execute(select(P).where(or_(P.c.last_success_at.is_(None),
                                                P.c.last_success_at < cutoff))
                            .order_by(P.c.name)).all()
    result = []
    for row in rows:
        view = package_view(row._mapping)
        last = aware(row.last_success_at)
        view["days_since_success"] = (None if last is None
                                      else round((now - last).total_seconds() / 86400, 2))
        result.append(view)
    return result


def stats(db: FarmDB) -> dict[str, Any]:
    with db.rtx() as conn:
        counts = dict(conn.execute(select(B.c.state, func.count()).group_by(B.c.state)).all())
        workers = conn.execute(select(func.count()).select_from(W)).scalar() or 0
        packages = conn.execute(select(func.count()).select_from(P)).scalar() or 0
    return {"builds": {state: int(counts.get(state, 0)) for state in BUILD_STATES},
            "workers": workers, "packages": packages}


# ---------------------------------------------------------------------------------------
# Failure mail


def _recipient(b: Mapping[str, Any]) -> str | None:
    for candidate in (b["maintainer"], b["committer"]):
        _name, address = email.utils.parseaddr(candidate or "")
        if address and "@" in address:
            return str(candidate)
    return None


def _queue_failure_mail(conn: Connection, cfg: FarmConfig, b: Mapping[str, Any]) -> None:
    """One outbox row per failed build, in the transaction that failed it (unique key:
    a second failure report of the same build never mails twice)."""
    if not cfg.mail:
        return
    recipient = _recipient(b)
    if recipient is None:
        return
    tail_lines = (b["tail"] or b["reason"]).splitlines()[-MAIL_TAIL_LINES:]
    version = b["version"] or "(version unknown)"
    body = "\n".join([
        f"The farm could not build {b['package']} {version}.",
        "",
        f"Package:  {b['package']} {version}",
        f"Commit:   {b['commit']}" + (f" ({b['ref']})" if b["ref"] else ""),
        f"Source:   {b['repo_url']}" + (f" ({b['subdir']})" if b["subdir"] else ""),
        f"Worker:   {b['worker'] or '-'} (attempt {b['attempt']})",
        f"Reason:   {b['reason']}",
        f"Log:      {cfg.build_url(b['id'])}",
        "",
        "Last lines of the output:",
        "",
        *("    " + line for line in tail_lines),
        "",
        "The farm does not retry a failed build by itself: push a new commit of the",
        "package, or force a rebuild (shipyard farm build request "
        f"{b['package']} --force).",
        "",
    ])
    now = utcnow()
    _insert_ignore(conn, O, {
        "key": f"build-failed:{b['id']}", "build_id": b["id"], "recipient": recipient,
        "subject": f"[shipyard] build {b['id']} failed: {b['package']} {version}",
        "body": body, "message_id": f"<shipyard-build-{b['id']}-failed@{socket.getfqdn()}>",
        "created_at": now, "next_try_at": now, "attempts": 0, "last_error": ""}, "key")


def fail_publication(db: FarmDB, cfg: FarmConfig, failures: Mapping[int, str]) -> None:
    """Mark builds whose package the repository refused, and mail each maintainer why (in
    the same transaction: the mark and the mail never part)."""
    if not failures:
        return
    with db.tx() as conn:
        for build_id, why in failures.items():
            _set_build(conn, build_id, {"publish_state": "error", "publish_error": why})
            build = _dict(conn.execute(_BUILD, {"p_build": build_id}).first())
            if build is not None:
                _queue_publish_failure_mail(conn, cfg, build)


def _queue_publish_failure_mail(conn: Connection, cfg: FarmConfig,
                                b: Mapping[str, Any]) -> None:
    if not cfg.mail:
        return
    recipient = _recipient(b)
    if recipient is None:
        return
    body = "\n".join([
        f"The farm built {b['package']} {b['version']}, but the repository refused the "
        "package, so it is not installable.",
        "",
        f"Package:  {b['package']} {b['version']}",
        f"Commit:   {b['commit']}" + (f" ({b['ref']})" if b["ref"] else ""),
        f"Reason:   {b['publish_error']}",
        f"Build:    {cfg.build_url(b['id'])}",
        "",
        "A version, once published, never changes its content: give the package a new",
        "version and push it.",
        "",
    ])
    now = utcnow()
    _insert_ignore(conn, O, {
        "key": f"publish-failed:{b['id']}", "build_id": b["id"], "recipient": recipient,
        "subject": f"[shipyard] build {b['id']} could not be published: "
                   f"{b['package']} {b['version']}",
        "body": body,
        "message_id": f"<shipyard-build-{b['id']}-unpublished@{socket.getfqdn()}>",
        "created_at": now, "next_try_at": now, "attempts": 0, "last_error": ""}, "key")
