"""Worker registration: a worker names itself, its platforms and its capacity; builds it
held before a restart go back to the queue at once.
"""

from __future__ import annotations

import re

from sqlalchemy import select, update

from shipyard.db.farm_models import QUEUED, RUNNING, FarmToken
from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.errors import Conflict, FarmError, Forbidden
from shipyard.farm.leases import lose_attempt
from shipyard.farm.statements import B, W, insert_ignore, notify_queued
from shipyard.formats.farm import Registered
from shipyard.timeutil import utcnow

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


def register_worker(db: FarmDB, cfg: FarmConfig, token_id: int, name: str,
                    platforms: list[str], capacity: int, http_url: str) -> Registered:
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
            if insert_ignore(conn, W, {"name": name, "paused": False, **values},
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
            if lose_attempt(conn, cfg, dict(row._mapping), f"worker {name} restarted") == QUEUED:
                requeued.append(row.id)
        if requeued:
            notify_queued(conn)
    return Registered(worker=name, session=session_id, requeued=requeued,
                      lease_seconds=cfg.lease_seconds, heartbeat_seconds=cfg.heartbeat_seconds,
                      log_max_bytes=cfg.log_max_bytes, max_upload_bytes=cfg.max_upload_bytes)
