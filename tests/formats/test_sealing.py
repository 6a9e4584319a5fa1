"""Sealed secrets: only the recipient's key opens them, only under the same context, and any
changed byte is refused."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.formats import sealing
from shipyard.formats.sealing import SealError

CTX = sealing.link_context("xmpp-component", "1.echo.prod.b", "1.chat.prod.a", "node-a")


@pytest.fixture(scope="module")
def key():
    return sealing.generate_private_key()


def test_round_trip_through_text_keys(key):
    text = sealing.seal("s3cret-password", sealing.public_key_text(key), CTX)
    assert text.startswith("shipyard-sealed-v1:")
    assert "s3cret-password" not in text
    again = sealing.load_private_key(sealing.private_key_text(key))
    assert sealing.open_sealed_text(text, again, CTX) == "s3cret-password"


def test_two_seals_of_one_secret_differ(key):
    public = key.public_key()
    assert sealing.seal("pw", public, CTX) != sealing.seal("pw", public, CTX)


def test_wrong_key_fails(key):
    text = sealing.seal("pw", key.public_key(), CTX)
    other = sealing.generate_private_key()
    with pytest.raises(SealError, match="could not be opened"):
        sealing.open_sealed(text, other, CTX)


@pytest.mark.parametrize("field", range(4))
def test_context_mismatch_fails(key, field):
    parts = ["xmpp-component", "1.echo.prod.b", "1.chat.prod.a", "node-a"]
    text = sealing.seal("pw", key.public_key(), sealing.link_context(*parts))
    parts[field] = parts[field] + "x"
    with pytest.raises(SealError):
        sealing.open_sealed(text, key, sealing.link_context(*parts))


def test_context_fields_cannot_shift(key):
    text = sealing.seal("pw", key.public_key(), sealing.link_context("a", "b.c", "d", "n"))
    with pytest.raises(SealError):
        sealing.open_sealed(text, key, sealing.link_context("a", "b", "c.d", "n"))
    with pytest.raises(SealError, match="NUL"):
        sealing.link_context("a\0b", "c", "d", "n")


def test_every_flipped_byte_is_refused(key):
    text = sealing.seal("pw", key.public_key(), CTX)
    blob = base64.urlsafe_b64decode(text[len(sealing.PREFIX):])
    for index in range(len(blob)):
        altered = bytearray(blob)
        altered[index] ^= 0x01
        forged = sealing.PREFIX + base64.urlsafe_b64encode(bytes(altered)).decode()
        with pytest.raises(SealError):
            sealing.open_sealed(forged, key, CTX)


@pytest.mark.parametrize("text, message", [
    ("plain", "expected the shipyard-sealed-v1"),
    ("shipyard-sealed-v2:AAAA", "expected the shipyard-sealed-v1"),
    ("shipyard-sealed-v1:!!!", "not valid base64"),
    ("shipyard-sealed-v1:" + base64.urlsafe_b64encode(b"x" * 40).decode(), "truncated"),
    ("shipyard-sealed-v1:" + base64.urlsafe_b64encode(b"\0" * 80).decode(), "could not"),
])
def test_malformed_text_is_one_clear_error(key, text, message):
    with pytest.raises(SealError, match=message):
        sealing.open_sealed(text, key, CTX)


@pytest.mark.parametrize("text", ["", "AAAA", "not base64 at all"])
def test_bad_public_key_text(text):
    with pytest.raises(SealError, match="public key"):
        sealing.seal("pw", text, CTX)


def test_oversized_secret_refused(key):
    with pytest.raises(SealError, match="too large"):
        sealing.seal(b"x" * (sealing.MAX_PLAINTEXT + 1), key.public_key(), CTX)


@settings(max_examples=60, deadline=None)
@given(secret=st.binary(max_size=512), context=st.binary(max_size=64),
       other=st.binary(max_size=64))
def test_property_round_trip_and_context_binding(key, secret, context, other):
    text = sealing.seal(secret, key.public_key(), context)
    assert sealing.open_sealed(text, key, context) == secret
    if other != context:
        with pytest.raises(SealError):
            sealing.open_sealed(text, key, other)
