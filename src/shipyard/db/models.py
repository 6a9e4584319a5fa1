"""SQLAlchemy models of the repository and farm state. Times are UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ScriptActivity(Base):
    """One run of a periodic job (the publisher, the stale check): Launchpad's table,
    but written for failures too, with the error, so monitoring sees both."""

    __tablename__ = "script_activity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    hostname: Mapped[str] = mapped_column(String(255))
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # running | success | failure
    message: Mapped[str] = mapped_column(Text, default="")
