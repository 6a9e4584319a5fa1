"""SQLAlchemy models of the fleet (tables created by migration 0005). Times are UTC.

One row of :class:`FleetRevision` holds the fleet's global revision: every change to what
any node should run (an assignment, an announcement, a node lost or back, a pair disabled)
bumps it in the same transaction, and a node's long poll compares its index with it. The
coordinator keeps public keys and a hash of each node's credential, never a private key;
an announcement keeps only the link password sealed per acceptor node (ciphertext).
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


class FleetRevision(Base):
    __tablename__ = "fleet_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class FleetNode(Base):
    __tablename__ = "fleet_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    labels: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    address: Mapped[str] = mapped_column(String(255))
    agent_version: Mapped[str] = mapped_column(String(100), default="")
    signing_key: Mapped[str] = mapped_column(String(64))  # Ed25519 public key
    sealing_key: Mapped[str] = mapped_column(String(64))  # X25519 public key
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    join_token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    lease_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lost_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revision_applied: Mapped[int] = mapped_column(BigInteger, default=0)
    # The address the node's last call came from (what the coordinator sees, beside the
    # address the node advertises).
    seen_from: Mapped[str] = mapped_column(String(100), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


class FleetAssignment(Base):
    """One instance a node should run."""

    __tablename__ = "fleet_assignments"
    __table_args__ = (UniqueConstraint("node_id", "service"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("fleet_nodes.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(400))
    package: Mapped[str] = mapped_column(String(400))
    params: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    boot: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FleetInstance(Base):
    """An instance as its node last reported it (actual state)."""

    __tablename__ = "fleet_instances"
    __table_args__ = (UniqueConstraint("node_id", "service"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("fleet_nodes.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(400))
    package: Mapped[str] = mapped_column(String(400), default="")
    state: Mapped[str] = mapped_column(String(20))
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FleetAnnouncement(Base):
    """An announcing instance's link data; ``sealed`` maps acceptor node name to the
    password sealed for that node (JSON), never the password itself."""

    __tablename__ = "fleet_announcements"
    __table_args__ = (UniqueConstraint("node_id", "instance", "interface"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("fleet_nodes.id", ondelete="CASCADE"))
    instance: Mapped[str] = mapped_column(String(400))
    interface: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    sealed: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FleetPair(Base):
    """A link pair's state as the acceptor's node reported it."""

    __tablename__ = "fleet_pairs"
    __table_args__ = (UniqueConstraint("node_id", "announcer", "acceptor", "interface"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("fleet_nodes.id", ondelete="CASCADE"))
    announcer: Mapped[str] = mapped_column(String(400))
    acceptor: Mapped[str] = mapped_column(String(400))
    interface: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    last_error: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FleetDisabledPair(Base):
    """A pair an operator disabled (``fleet links disable A B``), by service coordinate."""

    __tablename__ = "fleet_disabled_pairs"
    __table_args__ = (UniqueConstraint("announcer", "acceptor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    announcer: Mapped[str] = mapped_column(String(400))
    acceptor: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(100), default="")
