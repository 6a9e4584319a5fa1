"""Ed25519 keys and detached signatures for repository metadata.

Key files are one line of text so an operator can read, copy and compare them:
``ed25519-public <base64 32 bytes> [comment]`` and ``ed25519-private <base64 seed>``
(mode 0600). A key id is the first 16 hex digits of the public key's sha256; signatures name
it, so a node may trust several keys at once while keys are rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from shipyard.errors import ConfigError, VerificationError
from shipyard.fsutil import atomic_write

PUBLIC_TAG = "ed25519-public"
PRIVATE_TAG = "ed25519-private"
_RAW = serialization.Encoding.Raw


@dataclass(frozen=True)
class PublicKey:
    raw: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def to_text(self, comment: str = "") -> str:
        body = base64.b64encode(self.raw).decode()
        return f"{PUBLIC_TAG} {body}{' ' + comment if comment else ''}\n"


@dataclass(frozen=True)
class PrivateKey:
    key: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw))

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def to_text(self) -> str:
        seed = self.key.private_bytes(_RAW, serialization.PrivateFormat.Raw,
                                      serialization.NoEncryption())
        return f"{PRIVATE_TAG} {base64.b64encode(seed).decode()}\n"


def generate_key() -> PrivateKey:
    return PrivateKey(Ed25519PrivateKey.generate())


def write_keypair(private_path: str | os.PathLike[str], key: PrivateKey,
                  comment: str = "") -> Path:
    """Write the private key (0600) and ``<path>.pub``; returns the public key path."""
    private = Path(private_path)
    private.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(private, key.to_text(), mode=0o600)
    public = private.with_name(private.name + ".pub")
    atomic_write(public, key.public.to_text(comment), mode=0o644)
    return public


def _decode(path: Path, tag: str, length: int) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"key file {path} cannot be read: {exc}") from None
    fields = text.split()
    if len(fields) < 2 or fields[0] != tag:
        raise ConfigError(f"key file {path}: expected a line starting with '{tag} '")
    try:
        raw = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise ConfigError(f"key file {path}: key is not valid base64") from None
    if len(raw) != length:
        raise ConfigError(f"key file {path}: expected a {length}-byte key, got {len(raw)}")
    return raw


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    target = Path(path)
    mode = target.stat().st_mode & 0o077 if target.exists() else 0
    if mode:
        raise ConfigError(f"private key {target} is readable by others (chmod 600 it)")
    raw = _decode(target, PRIVATE_TAG, 32)
    return PrivateKey(Ed25519PrivateKey.from_private_bytes(raw))


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    return PublicKey(_decode(Path(path), PUBLIC_TAG, 32))


def load_public_keys(paths: list[str] | list[Path]) -> list[PublicKey]:
    return [load_public_key(p) for p in paths]


def sign_detached(data: bytes, keys: list[PrivateKey]) -> bytes:
    """A signature envelope (JSON) over ``data`` by every key in ``keys``."""
    envelope = {
        "format": 1,
        "algorithm": "ed25519",
        "signatures": [
            {"key_id": k.public.key_id, "signature": base64.b64encode(k.sign(data)).decode()}
            for k in keys
        ],
    }
    return (json.dumps(envelope, sort_keys=True, indent=1) + "\n").encode()


def verify_detached(data: bytes, envelope: bytes, trusted: list[PublicKey], what: str) -> str:
    """Return the key id that signed ``data``; raise :class:`VerificationError` otherwise."""
    try:
        parsed = json.loads(envelope)
        signatures = parsed["signatures"]
        if parsed.get("algorithm") != "ed25519" or not isinstance(signatures, list):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise VerificationError(f"{what}: signature file is malformed") from None
    by_id = {key.key_id: key for key in trusted}
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        key = by_id.get(entry.get("key_id", ""))
        if key is None:
            continue
        try:
            signature = base64.b64decode(entry.get("signature", ""), validate=True)
        except (binascii.Error, TypeError, ValueError):
            continue
        if key.verify(signature, data):
            return key.key_id
    ids = ", ".join(sorted(by_id)) or "none"
    raise VerificationError(f"{what}: no valid signature by a trusted key (trusted: {ids})")
