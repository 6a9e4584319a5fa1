"""SQLAlchemy models of the repository state (tables created by migration 0002). Times are UTC.

One database holds the state of one repository: which packages are in the pool (with the
size and sha256 they were accepted with, so a coordinate can never change its bytes), which
channel lists which package, which channels changed since they were last published, and one
row per publication (a generation). The files under ``<repo>/`` are derived from these rows
and from the accepted queue; ``repo.ini`` holds the configuration.

Dirty tracking uses two counters per channel instead of a flag: every change bumps
``dirty_seq``, a publication records the ``dirty_seq`` it read before rendering the index and
stores it as ``published_seq`` after the flip. A change that lands while a pass is running
therefore leaves the channel dirty for the next pass instead of being lost.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.db.models import Base
from shipyard.timeutil import utcnow


class RepoPackage(Base):
    """An archive accepted into the pool. Immutable once written."""

    __tablename__ = "repo_package"
    __table_args__ = (UniqueConstraint("pkg_group", "ident", "version",
                                       name="uq_repo_package_coord"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group: Mapped[str] = mapped_column("pkg_group", String(255))
    ident: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text, default="")
    maintainer: Mapped[str] = mapped_column(Text, default="")
    requires: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of strings
    service: Mapped[bool] = mapped_column(Boolean, default=False)
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RepoChannel(Base):
    """A channel's change counters; its priority lives in ``repo.ini``."""

    __tablename__ = "repo_channel"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    dirty_seq: Mapped[int] = mapped_column(Integer, default=1)
    published_seq: Mapped[int] = mapped_column(Integer, default=0)


class RepoChannelPackage(Base):
    """Membership: ``package`` is listed in ``channel``'s index."""

    __tablename__ = "repo_channel_package"

    channel: Mapped[str] = mapped_column(
        String(64), ForeignKey("repo_channel.name", ondelete="CASCADE"), primary_key=True)
    package_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("repo_package.id", ondelete="CASCADE"), primary_key=True,
        index=True)
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RepoPublication(Base):
    """One generation: ``building`` until its pass ends as ``published``, ``discarded``
    (a pre-publication hook failed) or ``abandoned`` (the run died; found by recovery)."""

    __tablename__ = "repo_publication"

    serial: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    channels: Mapped[str] = mapped_column(Text, default="{}")  # JSON {channel: dirty_seq}
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
