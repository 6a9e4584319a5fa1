"""SQLAlchemy models of the farm's web interface (tables created by migration 0004).

They live in the farm database, not in files, because several coordinators may share one
PostgreSQL database: a user added on one host, a session opened through one coordinator
and the failed sign-ins counted against an address must hold for all of them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.db.models import Base


class WebUser(Base):
    """A person who may change things through the pages. ``password_hash`` is a
    self-describing scrypt string (see :mod:`shipyard.web.passwords`)."""

    __tablename__ = "web_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_signin_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                            nullable=True)


class WebSession(Base):
    """A signed-in browser. Only the sha256 of the session id is stored, so a leaked
    database does not hand out live sessions; deleting the row signs the browser out."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_expires", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id", ondelete="CASCADE"),
                                         index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    address: Mapped[str] = mapped_column(String(100), default="")


class WebSigninFailure(Base):
    """One failed sign-in from an address; counted over a sliding window to rate limit."""

    __tablename__ = "web_signin_failures"
    __table_args__ = (Index("ix_web_signin_failures_address", "address", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebSecret(Base):
    """Random keys the coordinators share (the HMAC key that signs cookies and CSRF
    tokens). Created once by whichever coordinator starts first."""

    __tablename__ = "web_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
