"""Password hashing for web users: scrypt from the standard library, salted, self-describing.

scrypt (RFC 7914) is memory-hard, so guessing on GPUs is expensive; N=2**15, r=8 costs
32 MiB and 0.1-0.4 s per check on one core: negligible for a sign-in, prohibitive for a
dictionary. The parameters are stored in the hash (``scrypt$N$r$p$salt$key``) so they
can be raised later without breaking existing users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**15, 8, 1
KEY_BYTES = 32
SALT_BYTES = 16
MIN_LENGTH = 8
MAX_LENGTH = 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * r * n + (1 << 20), dklen=KEY_BYTES)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


_dummy: list[str] = []


def burn_time(password: str) -> None:
    """Spend what a real check costs, so an unknown user name is not told apart by timing."""
    if not _dummy:
        _dummy.append(hash_password(secrets.token_hex(8)))
    verify_password(password, _dummy[0])


def check_new_password(password: str) -> None:
    from shipyard.errors import UsageError

    if len(password) < MIN_LENGTH:
        raise UsageError(f"password too short: at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise UsageError(f"password too long: at most {MAX_LENGTH} characters")
