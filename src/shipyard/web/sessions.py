"""Sessions, cookie signatures, CSRF tokens and the sign-in rate limit.

A session is a random 256-bit id. The browser holds ``<id>.<hmac>`` in an HttpOnly,
SameSite=Strict cookie; the database holds only ``sha256(id)`` with the user and an expiry,
so signing out (deleting the row) really ends the session, and a stolen database yields no
usable cookie. The HMAC key is random, created once in the farm database and shared by all
coordinators on it; a cookie with a bad signature is dropped without a database lookup.

CSRF: every POST form carries ``HMAC(key, "csrf", binding)`` where the binding is the
session id (signed in) or a random pre-session cookie (the sign-in form itself). A page on
another site can neither read the token nor (SameSite=Strict) send our cookies; the token is
the second wall.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from shipyard.db.web_models import WebSecret, WebSession, WebSigninFailure, WebUser
from shipyard.farm.db import FarmDB
from shipyard.timeutil import aware, utcnow
from shipyard.web.users import User

SESSION_COOKIE = "shipyard_session"
PRE_COOKIE = "shipyard_presession"
FLASH_COOKIE = "shipyard_flash"
SECRET_NAME = "cookie-hmac"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def load_secret(db: FarmDB) -> bytes:
    """The shared HMAC key, created by the first coordinator that needs it."""
    with db.read() as session:
        row = session.get(WebSecret, SECRET_NAME)
        if row is not None:
            return bytes.fromhex(row.value)
    try:
        with db.write() as session:
            session.add(WebSecret(name=SECRET_NAME, value=secrets.token_hex(32),
                                  created_at=utcnow()))
    except IntegrityError:  # another coordinator created it at the same moment
        pass
    with db.read() as session:
        row = session.get(WebSecret, SECRET_NAME)
        assert row is not None
        return bytes.fromhex(row.value)


class Signer:
    """HMAC-SHA256 under one key, with a purpose string so a value signed for one use
    (a session cookie) is never accepted for another (a CSRF token, a flash message)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, purpose: str, value: str) -> str:
        return f"{value}.{self.mac(purpose, value)}"

    def unsign(self, purpose: str, token: str | None) -> str | None:
        if not token or "." not in token or len(token) > 4096:
            return None
        value, _, mac = token.rpartition(".")
        if hmac.compare_digest(mac.encode(), self.mac(purpose, value).encode()):
            return value
        return None

    def csrf(self, binding: str) -> str:
        return self.mac("csrf", binding)

    def check_csrf(self, binding: str | None, token: str | None) -> bool:
        if not binding or not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf(binding).encode())


# ---------------------------------------------------------------------------------------
# Sessions


def create_session(db: FarmDB, user: User, address: str, hours: float) -> str:
    """A new session id for ``user`` (always new: no session fixation)."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    with db.write() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at < now))
        session.add(WebSession(id_hash=_hash(sid), user_id=user.id, created_at=now,
                               expires_at=now + timedelta(hours=hours), address=address[:100]))
    return sid


def session_user(db: FarmDB, sid: str) -> User | None:
    with db.read() as session:
        row = session.execute(
            select(WebUser).join(WebSession, WebSession.user_id == WebUser.id)
            .where(WebSession.id_hash == _hash(sid), WebSession.expires_at > utcnow())
        ).scalar()
        if row is None:
            return None
        return User(row.id, row.name, aware(row.created_at), aware(row.last_signin_at))


def end_session(db: FarmDB, sid: str) -> None:
    with db.write() as session:
        session.execute(delete(WebSession).where(WebSession.id_hash == _hash(sid)))


# ---------------------------------------------------------------------------------------
# Failed sign-ins, per address


def blocked_for(db: FarmDB, address: str, limit: int, window: float) -> float:
    """Seconds until ``address`` may try again (0: it may now)."""
    now = utcnow()
    since = now - timedelta(seconds=window)
    with db.read() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(WebSigninFailure.at))
            .where(WebSigninFailure.address == address, WebSigninFailure.at > since)).one()
    if count < limit or oldest is None:
        return 0.0
    oldest_at: datetime = aware(oldest)
    return max(1.0, (oldest_at + timedelta(seconds=window) - now).total_seconds())


def record_failure(db: FarmDB, address: str, window: float) -> None:
    now = utcnow()
    with db.write() as session:
        session.execute(delete(WebSigninFailure).where(
            WebSigninFailure.at < now - timedelta(seconds=window)))
        session.add(WebSigninFailure(address=address[:100], at=now))


def clear_failures(db: FarmDB, address: str) -> None:
    with db.write() as session:
        session.execute(delete(WebSigninFailure).where(WebSigninFailure.address == address))
