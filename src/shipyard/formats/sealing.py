"""Secrets sealed for one node's X25519 key, so they can cross hosts through the coordinator.

A link password leaves the announcer's node only in this form (DESIGN.md "Fleet", Secrets):
the coordinator stores and forwards the text but cannot open it. The construction is the
usual ECIES shape: a fresh ephemeral X25519 key per message, HKDF-SHA256 over the shared
secret (salted with both public keys, so a ciphertext is bound to its recipient), and
ChaCha20-Poly1305. The caller's *context* (for a link: interface, announcer, acceptor and
the recipient node) is authenticated as associated data, so a copy sealed for one pair or
node cannot be replayed to another even by someone who can rewrite the coordinator's rows.

The text form is ``shipyard-sealed-v1:<urlsafe base64>``; the version prefix is also part of
the associated data, so a future format can never be confused with this one.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shipyard.errors import ShipyardError

PREFIX = "shipyard-sealed-v1:"
_KEY_LEN = 32
_NONCE_LEN = 12
_TAG_LEN = 16
_INFO = b"shipyard sealed secret v1"
# A link password is a few dozen bytes; anything this large is not one of ours.
MAX_PLAINTEXT = 64 * 1024


class SealError(ShipyardError):
    """A sealed secret could not be opened: wrong key, wrong context, or altered text."""


def generate_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_key_text(key: X25519PrivateKey | X25519PublicKey) -> str:
    """The public half as urlsafe base64 of its 32 raw bytes (what the coordinator stores)."""
    public = key.public_key() if isinstance(key, X25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode("ascii")


def private_key_text(key: X25519PrivateKey) -> str:
    """The private key as urlsafe base64 of its 32 raw bytes, for a 0600 file on the node."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict urlsafe base64: the stdlib's lenient decoder would silently drop stray
    characters, so two different texts could open as one."""
    return base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)


def _raw32(text: str, what: str) -> bytes:
    try:
        raw = _b64decode(text.strip())
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SealError(f"{what} is not base64") from None
    if len(raw) != _KEY_LEN:
        raise SealError(f"{what} must be {_KEY_LEN} bytes, got {len(raw)}")
    return raw


def load_public_key(text: str) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(_raw32(text, "X25519 public key"))


def load_private_key(text: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_raw32(text, "X25519 private key"))


def _context_bytes(context: str | bytes) -> bytes:
    return context.encode("utf-8") if isinstance(context, str) else bytes(context)


def link_context(interface: str, announcer: str, acceptor: str, node: str) -> str:
    """The associated data for a link password: one pair, sent to one acceptor node.

    Fields are joined by NUL, which none of them may contain (service coordinates and node
    names are validated before they get here), so two different tuples never collide.
    """
    fields = ("link", interface, announcer, acceptor, node)
    if any("\0" in field for field in fields):
        raise SealError("a link context field contains NUL")
    return "\0".join(fields)


def _derive(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=_KEY_LEN, salt=eph_pub + recipient_pub,
                info=_INFO)
    return hkdf.derive(shared)


def _aad(context: str | bytes, recipient_pub: bytes) -> bytes:
    return PREFIX.encode("ascii") + recipient_pub + _context_bytes(context)


def seal(secret: str | bytes, recipient: X25519PublicKey | str, context: str | bytes) -> str:
    """Seal ``secret`` so only the holder of ``recipient``'s private key can open it, and
    only when it names the same ``context``."""
    plaintext = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(plaintext) > MAX_PLAINTEXT:
        raise SealError(f"secret too large to seal ({len(plaintext)} bytes)")
    public = load_public_key(recipient) if isinstance(recipient, str) else recipient
    recipient_pub = public.public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    ephemeral = X25519PrivateKey.generate()
    eph_pub = ephemeral.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
    key = _derive(ephemeral.exchange(public), eph_pub, recipient_pub)
    nonce = os.urandom(_NONCE_LEN)
    body = ChaCha20Poly1305(key).encrypt(nonce, plaintext, _aad(context, recipient_pub))
    return PREFIX + base64.urlsafe_b64encode(eph_pub + nonce + body).decode("ascii")


def open_sealed(text: str, private_key: X25519PrivateKey | str, context: str | bytes) -> bytes:
    """Open a sealed secret; :class:`SealError` (one line, no detail that helps a forger)
    when the key, the context or any byte of the text is wrong."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise SealError("not a sealed secret (expected the shipyard-sealed-v1: form)")
    try:
        blob = _b64decode(text[len(PREFIX):])
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SealError("sealed secret is not valid base64") from None
    if len(blob) < _KEY_LEN + _NONCE_LEN + _TAG_LEN:
        raise SealError("sealed secret is truncated")
    private = load_private_key(private_key) if isinstance(private_key, str) else private_key
    recipient_pub = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                      serialization.PublicFormat.Raw)
    eph_pub = blob[:_KEY_LEN]
    nonce = blob[_KEY_LEN:_KEY_LEN + _NONCE_LEN]
    body = blob[_KEY_LEN + _NONCE_LEN:]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError:  # an all-zero (low order) ephemeral key
        raise SealError("sealed secret could not be opened") from None
    key = _derive(shared, eph_pub, recipient_pub)
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, body, _aad(context, recipient_pub))
    except InvalidTag:
        raise SealError("sealed secret could not be opened (wrong key, wrong context, "
                        "or altered)") from None


def open_sealed_text(text: str, private_key: X25519PrivateKey | str,
                     context: str | bytes) -> str:
    plain = open_sealed(text, private_key, context)
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise SealError("sealed secret is not UTF-8 text") from None
