"""Web users: the people who may force, abort, requeue and pause through the pages.

Managed with ``shipyard farm user add|list|remove|passwd`` against the farm database.
Removing a user (or changing the password) ends that user's sessions at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from shipyard.db.web_models import WebSession, WebUser
from shipyard.errors import ShipyardError, UsageError
from shipyard.farm.db import FarmDB
from shipyard.timeutil import aware, utcnow
from shipyard.web.passwords import burn_time, check_new_password, hash_password, verify_password

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    created_at: datetime | None
    last_signin_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "last_signin_at": (self.last_signin_at.isoformat()
                                   if self.last_signin_at else None)}


def _user(row: WebUser) -> User:
    return User(row.id, row.name, aware(row.created_at), aware(row.last_signin_at))


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"invalid user name {name!r}: expected [A-Za-z0-9][A-Za-z0-9._@-]* "
                         "(at most 100 characters)")
    return name


def add_user(db: FarmDB, name: str, password: str) -> User:
    check_name(name)
    check_new_password(password)
    hashed = hash_password(password)
    try:
        with db.write() as session:
            if session.scalar(select(WebUser.id).where(WebUser.name == name)) is not None:
                raise ShipyardError(f"user {name!r} exists already (use farm user passwd)")
            row = WebUser(name=name, password_hash=hashed, created_at=utcnow())
            session.add(row)
            session.flush()
            return _user(row)
    except IntegrityError:  # a concurrent add of the same name won
        raise ShipyardError(f"user {name!r} exists already (use farm user passwd)") from None


def set_password(db: FarmDB, name: str, password: str) -> User:
    """A new password; every session of the user ends."""
    check_new_password(password)
    hashed = hash_password(password)
    with db.write() as session:
        row = session.scalar(select(WebUser).where(WebUser.name == name))
        if row is None:
            raise ShipyardError(f"no user {name!r}")
        row.password_hash = hashed
        session.execute(delete(WebSession).where(WebSession.user_id == row.id))
        return _user(row)


def find_user(db: FarmDB, name: str) -> User | None:
    with db.read() as session:
        row = session.scalar(select(WebUser).where(WebUser.name == name))
        return _user(row) if row is not None else None


def list_users(db: FarmDB) -> list[User]:
    with db.read() as session:
        return [_user(row) for row in session.scalars(select(WebUser).order_by(WebUser.name))]


def remove_user(db: FarmDB, name: str) -> User:
    with db.write() as session:
        row = session.scalar(select(WebUser).where(WebUser.name == name))
        if row is None:
            raise ShipyardError(f"no user {name!r}")
        user = _user(row)
        session.execute(delete(WebSession).where(WebSession.user_id == row.id))
        session.delete(row)
        return user


def authenticate(db: FarmDB, name: str, password: str) -> User | None:
    """The user if ``password`` is theirs. Slow on purpose (scrypt), also for unknown names."""
    with db.read() as session:
        row = session.scalar(select(WebUser).where(WebUser.name == name)) if name else None
        stored = row.password_hash if row is not None else None
        user = _user(row) if row is not None else None
    if stored is None or user is None:
        burn_time(password)
        return None
    if not verify_password(password, stored):
        return None
    with db.write() as session:
        found = session.get(WebUser, user.id)
        if found is not None:
            found.last_signin_at = utcnow()
    return user
