"""Build requests: a push (or a person) asks for a build of a package at a commit.

Idempotent: a version that is queued, running or built is not queued again, and one that
failed at this very commit is not retried by itself (retrying a broken build helps nobody);
a new commit or ``force`` builds it again. Two hooks or coordinators racing on one version
meet at the unique ``dedup_key`` and create one build.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from shipyard.db.farm_models import ABORTED, FAILED, QUEUED, SUCCEEDED
from shipyard.farm.buildlog import LogWriter
from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.errors import Conflict, NotFound
from shipyard.farm.outbox import queue_failure_mail
from shipyard.farm.statements import (
    INSERT_BUILD,
    PACKAGE_NAMED,
    B,
    Build,
    P,
    insert_ignore,
    notify_queued,
    row_dict,
    set_build,
    set_package,
)
from shipyard.farm.views import build_view
from shipyard.formats.farm import BuildView
from shipyard.timeutil import utcnow


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
    package = row_dict(conn.execute(PACKAGE_NAMED, {"p_name": name}).first())
    if package is None:
        package = row_dict(insert_ignore(conn, P, {
            "name": name, "repo_url": req.repo_url, "subdir": req.subdir,
            "maintainer": req.maintainer, "head_commit": req.commit,
            "head_version": req.version, "head_ref": req.ref, "created_at": now,
            "updated_at": now}, "name"))
        if package is None:  # created by a concurrent request a moment ago
            package = row_dict(conn.execute(PACKAGE_NAMED, {"p_name": name}).first())
        assert package is not None
        return package
    if head:
        changes = {"repo_url": req.repo_url or package["repo_url"], "subdir": req.subdir,
                   "head_commit": req.commit, "head_version": req.version,
                   "head_ref": req.ref or package["head_ref"], "updated_at": now}
        if req.maintainer:
            changes["maintainer"] = req.maintainer
        set_package(conn, package["id"], changes)
        package.update(changes)
    return package


def request_build(db: FarmDB, cfg: FarmConfig, req: BuildRequest, requested_by: str,
                  *, head: bool = True) -> tuple[BuildView, bool, str]:
    """Queue a build unless this version is queued, running or built (idempotent).

    Returns (build, created, note). A version that failed at this very commit is not
    retried by itself (the seed's lesson: retrying a broken build helps nobody); a new
    commit or ``force`` builds it again. Two hooks or coordinators racing on one version
    meet at the unique ``dedup_key`` and create one build.
    """
    with db.tx() as conn:
        return _queue(conn, cfg, req, _package(conn, req, head=head), requested_by)


def _queue(conn: Connection, cfg: FarmConfig, req: BuildRequest, package: Build,
           requested_by: str) -> tuple[BuildView, bool, str]:
    """:func:`request_build` once the package row is known, inside its transaction."""
    now = utcnow()
    name = package["name"]
    if req.manifest_error:
        return _manifest_failure(conn, cfg, package, req, requested_by)
    key = f"{name}:{req.version}" if req.version else f"{name}@{req.commit}"
    label = f"{name} {req.version or ''}".rstrip()
    if not req.force:
        holder = row_dict(conn.execute(select(B).where(B.c.dedup_key == key)).first())
        if holder is not None:
            what = "already built" if holder["state"] == SUCCEEDED else (
                f"already {holder['state']}")
            return build_view(holder, cfg), False, f"{label} {what}"
        query = select(B).where(B.c.package_id == package["id"],
                                B.c.commit == req.commit,
                                B.c.state.in_((FAILED, ABORTED)))
        if req.version:
            query = query.where(B.c.version == req.version)
        earlier = row_dict(conn.execute(query.order_by(B.c.id.desc()).limit(1)).first())
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
        build = row_dict(conn.execute(INSERT_BUILD, values).first())
    else:
        build = row_dict(insert_ignore(conn, B, values, "dedup_key"))
        if build is None:
            holder = row_dict(conn.execute(select(B).where(B.c.dedup_key == key)).first())
            assert holder is not None
            return build_view(holder, cfg), False, f"{label} already {holder['state']}"
    assert build is not None
    set_package(conn, package["id"], {"last_build_id": build["id"]})
    notify_queued(conn)
    return build_view(build, cfg), True, f"queued build {build['id']} of {label}"


def request_package_build(db: FarmDB, cfg: FarmConfig, name: str, commit: str | None,
                          force: bool, requested_by: str) -> tuple[BuildView, bool, str]:
    """``farm build request PACKAGE [--commit C] [--force]``: the package must be known
    (a push announced it); its source location is taken from there. One transaction: the
    package row read here is the one the build is queued for."""
    with db.tx() as conn:
        package = row_dict(conn.execute(PACKAGE_NAMED, {"p_name": name}).first())
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
                      requested_by: str) -> tuple[BuildView, bool, str]:
    """A pushed manifest that does not parse fails at once, with the error in the log and
    the mail, so the maintainer learns about it without a worker ever seeing it."""
    earlier = row_dict(conn.execute(
        select(B).where(B.c.package_id == package["id"], B.c.commit == req.commit,
                        B.c.state == FAILED, B.c.reason.like("malformed manifest%"))
        .limit(1)).first())
    if earlier is not None and not req.force:
        return build_view(earlier, cfg), False, "manifest error already reported"
    now = utcnow()
    reason = f"malformed manifest: {req.manifest_error}"
    build = row_dict(conn.execute(insert(B).values(
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
    set_build(conn, build["id"], changes)
    build.update(changes)
    set_package(conn, package["id"], {"last_build_id": build["id"]})
    queue_failure_mail(conn, cfg, build)
    return build_view(build, cfg), True, f"build {build['id']} of {package['name']} failed: " \
        f"{reason}"


