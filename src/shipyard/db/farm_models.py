"""SQLAlchemy models of the farm state (tables created by migration 0003). Times are UTC.

Everything the coordinator knows lives here, so a coordinator can be killed and restarted,
or several can serve one PostgreSQL database, without losing a request, a lease, a log line
or a mail (syncpkgd kept its queue in memory and lost it on a crash).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.db.models import Base

# Build states. ``queued`` and ``running`` are live; the others are final.
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
CANCELLED = "cancelled"
LIVE_STATES = (QUEUED, RUNNING)
FINAL_STATES = (SUCCEEDED, FAILED, ABORTED, CANCELLED)
BUILD_STATES = LIVE_STATES + FINAL_STATES

# ``node``: a one-time join token, exchanged by ``shipyard node join`` for a node credential.
ROLES = ("worker", "hook", "admin", "node")


class FarmToken(Base):
    """An API token; only the sha256 of the secret is stored (tokens are 256-bit random)."""

    __tablename__ = "farm_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FarmPackage(Base):
    """A package the farm has heard of (from a push or a request): where its source lives,
    its newest pushed commit and version, and its last success (for ``farm stale``)."""

    __tablename__ = "farm_packages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    repo_url: Mapped[str] = mapped_column(Text, default="")
    subdir: Mapped[str] = mapped_column(String(500), default="")
    maintainer: Mapped[str] = mapped_column(Text, default="")
    head_commit: Mapped[str] = mapped_column(String(64), default="")
    head_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    head_ref: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                             nullable=True)
    last_success_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_build_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class FarmWorker(Base):
    """A build worker as it registered; bound to the token it registered with."""

    __tablename__ = "farm_workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    platforms: Mapped[str] = mapped_column(Text, default="")
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    http_url: Mapped[str] = mapped_column(Text, default="")
    session: Mapped[str] = mapped_column(String(64), default="")
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)


class FarmBuild(Base):
    """One build request and its attempts. ``attempt`` grows at every claim; every report
    from a worker names (build, attempt) and is refused unless that attempt is current."""

    __tablename__ = "farm_builds"
    __table_args__ = (
        Index("ix_farm_builds_state_id", "state", "id"),
        Index("ix_farm_builds_package_id", "package_id", "id"),
        Index("ix_farm_builds_lease", "state", "lease_expires_at"),
        Index("ix_farm_builds_publish", "publish_state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("farm_packages.id"))
    package: Mapped[str] = mapped_column(String(300))
    version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    commit: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(255), default="")
    repo_url: Mapped[str] = mapped_column(Text)
    subdir: Mapped[str] = mapped_column(String(500), default="")
    platform: Mapped[str | None] = mapped_column(String(100), nullable=True)
    maintainer: Mapped[str] = mapped_column(Text, default="")
    committer: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20))
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    # Holds "<package>:<version>" while the build is queued, running or succeeded, so two
    # hooks or coordinators racing to request one version create one build (unique).
    dedup_key: Mapped[str | None] = mapped_column(String(600), unique=True, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
    abort_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str] = mapped_column(String(100), default="")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    tail: Mapped[str] = mapped_column(Text, default="")
    log_bytes: Mapped[int] = mapped_column(Integer, default=0)
    log_pos: Mapped[int] = mapped_column(Integer, default=0)
    log_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    artifact_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    artifact_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    publish_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    publish_error: Mapped[str] = mapped_column(Text, default="")


class FarmLogChunk(Base):
    """An appended piece of a build log; ``offset`` is its first byte in the whole log."""

    __tablename__ = "farm_log_chunks"
    __table_args__ = (Index("ix_farm_log_chunks_build", "build_id", "offset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("farm_builds.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)


class FarmOutbox(Base):
    """A mail to send. Written in the transaction that fails the build, so it is never lost;
    ``key`` is unique, so a failure mails once; ``sent_at`` is set after the SMTP server
    accepted it, and a sender holds ``claimed_until`` so two coordinators never both send."""

    __tablename__ = "farm_outbox"
    __table_args__ = (Index("ix_farm_outbox_pending", "sent_at", "next_try_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    build_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recipient: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_try_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                           nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
