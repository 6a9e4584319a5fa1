"""Hand successful builds to the repository: upload into its accepted queue, then one
publisher run for all of them.

Successes that arrive while a run is going on wait for the next run, so a burst of builds
costs a couple of runs, not one each. State lives on the build row (``publish_state``:
pending -> uploaded -> published, or error), so a coordinator that dies halfway resumes;
an upload repeated after a crash is the same bytes and the publisher counts it unchanged.
Only one coordinator publishes at a time (an ``flock`` in the repository's ``locks/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from shipyard.config import Settings
from shipyard.coords import PackageCoord
from shipyard.db.farm_models import FarmBuild
from shipyard.errors import LockTimeout, ShipyardError
from shipyard.farm.artifacts import artifact_file
from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.outbox import fail_publication
from shipyard.formats.farm import PublishRound
from shipyard.fsutil import file_lock

BATCH = 500


def _set(db: FarmDB, build_ids: list[int], state: str, error: str = "") -> None:
    if not build_ids:
        return
    with db.write() as session:
        session.execute(update(FarmBuild).where(FarmBuild.id.in_(build_ids))
                        .values(publish_state=state, publish_error=error)
                        .execution_options(synchronize_session=False))


def publish_pending(db: FarmDB, cfg: FarmConfig, settings: Settings,
                    repo_dir: Path) -> PublishRound:
    """One round: upload every pending package, run the publisher once if anything was
    uploaded. Returns what happened (for logs and tests)."""
    from shipyard.repo.layout import open_repository
    from shipyard.repo.publish import publish
    from shipyard.repo.store import RepoStore
    from shipyard.repo.upload import upload

    report = PublishRound()
    try:
        lock = file_lock(repo_dir / "locks" / "farm-publisher.lock", timeout=0,
                         what="the farm publisher")
        lock.__enter__()
    except LockTimeout:
        report.busy = True
        return report
    try:
        with db.read() as session:
            pending = session.execute(
                select(FarmBuild.id, FarmBuild.attempt, FarmBuild.artifact_name,
                       FarmBuild.package)
                .where(FarmBuild.publish_state == "pending")
                .order_by(FarmBuild.id).limit(BATCH)).all()
        routes = channel_routes(settings)
        for build_id, attempt, name, package in pending:
            try:
                _upload(settings, repo_dir, artifact_file(cfg, build_id, attempt, str(name)),
                        str(name), upload, routes.get(str(package)))
            except ShipyardError as exc:
                report.errors[build_id] = exc.message
                fail_publication(db, cfg, {build_id: exc.message})
                continue
            report.uploaded.append(build_id)
            _set(db, [build_id], "uploaded")
        with db.read() as session:
            uploaded = session.execute(
                select(FarmBuild.id, FarmBuild.package, FarmBuild.version,
                       FarmBuild.artifact_sha256)
                .where(FarmBuild.publish_state == "uploaded").order_by(FarmBuild.id)).all()
        if not uploaded:
            return report
        try:
            result = publish(settings, repo_dir)
            report.publication = result.message
        except ShipyardError as exc:
            # Left "uploaded": the next round publishes again (the queue is still there).
            report.publish_error = exc.message
            with db.write() as session:
                session.execute(update(FarmBuild)
                                .where(FarmBuild.id.in_([row[0] for row in uploaded]))
                                .values(publish_error=exc.message)
                                .execution_options(synchronize_session=False))
            return report
        repo = open_repository(repo_dir, migrate=False)
        store = RepoStore(repo.db_url)
        done, wrong = [], {}
        for build_id, package, version, sha in uploaded:
            group, _, ident = package.partition(":")
            found = store.find(PackageCoord(group, ident, version))
            if found is not None and found.entry.sha256 == sha:
                done.append(build_id)
            else:
                why = ("the publisher rejected it (see the repository's incoming/rejected)"
                       if found is None else
                       f"the repository holds {package} {version} with other content")
                wrong[build_id] = why
        _set(db, done, "published")
        fail_publication(db, cfg, wrong)
        report.published = done
        report.errors.update(wrong)
        return report
    finally:
        lock.__exit__(None, None, None)


def channel_routes(settings: Settings) -> dict[str, str]:
    """``farm.channels`` (``group:id=channel, ...``) as a dict: which packages the farm
    queues for a channel other than the repository's default (e.g. ``security``, which the
    publisher then publishes first in its fast-track pass)."""
    routes: dict[str, str] = {}
    for item in settings.farm.channels:
        package, sep, channel = str(item).partition("=")
        if not sep or not package.strip() or not channel.strip():
            raise ShipyardError(f"farm.channels: {item!r}: expected group:id=channel")
        routes[package.strip()] = channel.strip()
    return routes


def _upload(settings: Settings, repo_dir: Path, stored: Path, name: str, upload: Any,
            channel: str | None = None) -> None:
    """Queue a stored package under its own name (the repository insists on
    ``<id>-<version>.tar.gz``): a hard link in a scratch directory, no copy."""
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=".farm-", dir=stored.parent))
    try:
        named = scratch / name
        try:
            os.link(stored, named)
        except FileNotFoundError:
            raise ShipyardError(f"the stored package {stored} is gone") from None
        except OSError:
            shutil.copyfile(stored, named)
        upload(settings, repo_dir, named, channel)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def has_pending(db: FarmDB) -> bool:
    with db.read() as session:
        return session.scalar(select(FarmBuild.id).where(
            FarmBuild.publish_state.in_(("pending", "uploaded"))).limit(1)) is not None
