"""SQLAlchemy models of the repo state (tables created by the Alembic migrations). Times are UTC."""

from __future__ import annotations

from shipyard.db.models import Base  # noqa: F401
