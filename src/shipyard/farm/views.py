"""The views of builds, packages and workers, as the API and the pages show them: the wire
models of :mod:`shipyard.formats.farm`, built from a row.

A build that succeeded but whose package the repository refused is shown as
``publish-failed``: not a build state (the build's own result stands, and its lease/attempt
logic never sees it) but what every view shows and what the filters accept, so it never
passes for a success.
"""

from __future__ import annotations

from datetime import datetime

from shipyard.db.farm_models import BUILD_STATES, SUCCEEDED
from shipyard.db.farm_models import FINAL_STATES as FINAL_STATES  # for the pages
from shipyard.db.farm_models import LIVE_STATES as LIVE_STATES  # for the pages
from shipyard.farm.config import FarmConfig
from shipyard.farm.statements import RowLike
from shipyard.formats.farm import ArtifactView, BuildView, PackageView, WorkerStatus, WorkerView
from shipyard.timeutil import aware, utcnow

PUBLISH_FAILED = "publish-failed"
FILTER_STATES = (*BUILD_STATES, PUBLISH_FAILED)


def iso(moment: datetime | None) -> str | None:
    moment = aware(moment)
    return moment.isoformat() if moment else None


def status_of(b: RowLike) -> str:
    """The state a person sees: ``publish-failed`` for a success the repository refused."""
    if b["state"] == SUCCEEDED and b["publish_state"] == "error":
        return PUBLISH_FAILED
    return str(b["state"])


def build_view(b: RowLike, cfg: FarmConfig) -> BuildView:
    artifact = None
    if b["artifact_name"]:
        artifact = ArtifactView(name=b["artifact_name"], size=b["artifact_size"],
                                sha256=b["artifact_sha256"],
                                url=f"/api/builds/{b['id']}/artifact")
    return BuildView(
        id=b["id"], package=b["package"], version=b["version"],
        commit=b["commit"], ref=b["ref"], repo_url=b["repo_url"],
        subdir=b["subdir"], platform=b["platform"], maintainer=b["maintainer"],
        state=b["state"], forced=bool(b["forced"]), attempt=b["attempt"],
        worker=b["worker"], lease_expires_at=iso(b["lease_expires_at"]),
        abort_requested=bool(b["abort_requested"]), requested_by=b["requested_by"],
        requested_at=iso(b["requested_at"]),
        first_claimed_at=iso(b["first_claimed_at"]),
        claimed_at=iso(b["claimed_at"]), finished_at=iso(b["finished_at"]),
        reason=b["reason"], log_bytes=b["log_bytes"],
        log_truncated=bool(b["log_truncated"]), artifact=artifact,
        publish_state=b["publish_state"], publish_error=b["publish_error"],
        status=status_of(b), url=cfg.build_url(b["id"]),
    )


def package_view(p: RowLike) -> PackageView:
    return PackageView(
        name=p["name"], repo_url=p["repo_url"], subdir=p["subdir"],
        maintainer=p["maintainer"], head_commit=p["head_commit"],
        head_version=p["head_version"], head_ref=p["head_ref"],
        created_at=iso(p["created_at"]), updated_at=iso(p["updated_at"]),
        last_success_at=iso(p["last_success_at"]),
        last_success_version=p["last_success_version"],
        last_build_id=p["last_build_id"],
    )


def worker_view(w: RowLike, cfg: FarmConfig, running: list[int],
                now: datetime | None = None) -> WorkerView:
    now = now or utcnow()
    seen = aware(w["last_seen_at"])
    online = seen is not None and (now - seen).total_seconds() <= max(cfg.lease_seconds, 30.0)
    status: WorkerStatus = "offline" if not online else ("busy" if running else "idle")
    if w["paused"] and online:
        status = "paused"
    return WorkerView(
        name=w["name"], platforms=split_list(w["platforms"]),
        capacity=w["capacity"], http_url=w["http_url"], paused=bool(w["paused"]),
        registered_at=iso(w["registered_at"]), last_seen_at=iso(w["last_seen_at"]),
        status=status, running=running,
    )


def split_list(value: str) -> list[str]:
    return [item for item in value.split(",") if item]

