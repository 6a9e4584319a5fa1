"""The fast index renderer writes exactly the bytes of the reference JSON encoding."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.coords import PackageCoord, version_key
from shipyard.formats import index
from shipyard.formats.index import ChannelIndex, PackageEntry, dump_json, pool_path

labels = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True)
versions = st.from_regex(r"[0-9][0-9a-z.+~]{0,8}", fullmatch=True).filter(
    lambda v: ".." not in v)


@st.composite
def entries(draw) -> PackageEntry:  # type: ignore[no-untyped-def]
    coord = PackageCoord(draw(labels), draw(labels), draw(versions))
    return PackageEntry(
        group=coord.group, id=coord.id, version=coord.version or "",
        filename=pool_path(coord, draw(st.sampled_from(["gz", "zst"]))),
        size=draw(st.integers(0, 2**40)), sha256=draw(st.from_regex(r"[0-9a-f]{64}",
                                                                    fullmatch=True)),
        summary=draw(st.text(max_size=20)), maintainer=draw(st.text(max_size=20)),
        requires=tuple(draw(st.lists(st.text(max_size=12), max_size=3))),
        service=draw(st.booleans()),
    )


def _reference(channel: str, serial: int, packages: list[PackageEntry]) -> bytes:
    ordered = sorted(packages, key=lambda p: (p.group, p.id, version_key(p.version)))
    return dump_json({"format": index.FORMAT, "channel": channel, "serial": serial,
                      "packages": [p.to_dict() for p in ordered]})


def test_fast_renderer_is_enabled() -> None:
    assert index._FAST_RENDER


@settings(max_examples=100, deadline=None)
@given(st.lists(entries(), max_size=12), labels, st.integers(0, 10**9))
def test_fast_renderer_matches_reference(packages: list[PackageEntry], channel: str,
                                         serial: int) -> None:
    data = ChannelIndex(channel, serial, packages).to_bytes()
    assert data == _reference(channel, serial, packages)
    parsed = ChannelIndex.from_bytes(data, "test")
    assert sorted(parsed.packages, key=repr) == sorted(packages, key=repr)


ascii_versions = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.+~_-]{0,10}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(ascii_versions, min_size=2, max_size=8))
def test_version_key_gives_dpkg_order(items: list[str]) -> None:
    from shipyard.coords import compare_versions

    keyed = sorted(items, key=index._version_key)
    compared = sorted(items, key=version_key)
    assert keyed == compared
    for a in items[:3]:
        for b in items[:3]:
            expect = compare_versions(a, b)
            got = (index._version_key(a) > index._version_key(b)) - (
                index._version_key(a) < index._version_key(b))
            assert got == expect, (a, b)


def test_version_key_known_cases() -> None:
    ordered = ["1.0~rc1", "1.0", "1.0+b1", "1.0.1", "1.00", "1.2", "1.10", "1a", "2~", "2"]
    assert sorted(reversed(ordered), key=index._version_key) == sorted(ordered,
                                                                        key=version_key)
