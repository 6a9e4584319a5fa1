"""API tokens: created once, shown once, stored as a hash, revocable.

Tokens are 256 bits from :mod:`secrets`, so a plain sha256 is enough to store them (no
password-stretching needed: there is nothing to guess). The role says what a token may do:
``worker`` the worker protocol, ``hook`` build requests, ``admin`` everything a person
does (requests, abort, requeue, pause).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from shipyard.db.farm_models import ROLES, FarmToken
from shipyard.errors import ShipyardError, UsageError
from shipyard.farm.db import FarmDB
from shipyard.timeutil import aware, utcnow

PREFIX = "shy_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "name": self.name, "role": self.role,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


def _info(row: FarmToken) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.role, aware(row.created_at),
                     aware(row.revoked_at), aware(row.last_used_at))


def create_token(db: FarmDB, role: str, name: str | None = None) -> tuple[str, TokenInfo]:
    """A new token of ``role``; the secret is returned here and never again."""
    if role not in ROLES:
        raise UsageError(f"unknown token role {role!r} (expected one of: {', '.join(ROLES)})")
    secret = PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        row = FarmToken(name=name or role, role=role, token_hash=hash_token(secret),
                        created_at=utcnow())
        session.add(row)
        session.flush()
        info = _info(row)
    return secret, info


def list_tokens(db: FarmDB) -> list[TokenInfo]:
    with db.read() as session:
        return [_info(row) for row in session.scalars(select(FarmToken).order_by(FarmToken.id))]


def revoke_token(db: FarmDB, ident: str) -> list[TokenInfo]:
    """Revoke by id or by name (every live token of that name)."""
    with db.write() as session:
        query = select(FarmToken).where(FarmToken.revoked_at.is_(None))
        if ident.isdigit():
            query = query.where(FarmToken.id == int(ident))
        else:
            query = query.where(FarmToken.name == ident)
        rows = list(session.scalars(query))
        if not rows:
            raise ShipyardError(f"no live token with id or name {ident!r}")
        now = utcnow()
        for row in rows:
            row.revoked_at = now
        return [_info(row) for row in rows]


def lookup(db: FarmDB, secret: str) -> TokenInfo | None:
    """The live token with this secret, or None."""
    digest = hash_token(secret)
    with db.read() as session:
        row = session.scalar(select(FarmToken).where(FarmToken.token_hash == digest))
        if row is None or row.revoked_at is not None:
            return None
        return _info(row)
