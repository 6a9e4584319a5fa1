"""Farm reads the pages need that the API has no route for (counts, the publish backlog).
Read-only, one short transaction each; everything else comes from
:mod:`shipyard.farm.queries`, the same functions the JSON API uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select

from shipyard.db.farm_models import FAILED, SUCCEEDED, FarmBuild
from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.views import build_view
from shipyard.timeutil import utcnow


def failures_since(db: FarmDB, hours: float) -> int:
    since = utcnow() - timedelta(hours=hours)
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(FarmBuild).where(
            or_(FarmBuild.state == FAILED,
                and_(FarmBuild.state == SUCCEEDED, FarmBuild.publish_state == "error")),
            FarmBuild.finished_at >= since)) or 0


def publish_backlog(db: FarmDB, cfg: FarmConfig, limit: int = 50) -> dict[str, Any]:
    """Successful builds not yet in the repository, and those that could not get there."""
    with db.read() as session:
        waiting = session.scalar(select(func.count()).select_from(FarmBuild).where(
            FarmBuild.publish_state.in_(("pending", "uploaded")))) or 0
        table = FarmBuild.__table__
        errors = [build_view(dict(row._mapping), cfg) for row in session.execute(
            select(table).where(table.c.publish_state == "error")
            .order_by(table.c.id.desc()).limit(limit))]
        published = session.scalar(select(func.count()).select_from(FarmBuild).where(
            FarmBuild.publish_state == "published")) or 0
    return {"waiting": waiting, "errors": errors, "published": published}
