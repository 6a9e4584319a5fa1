"""Property tests of coordinates: parse round trips, a total version order, and no accepted
coordinate that resolves outside the software root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shipyard.coords import (
    GROUP_RE,
    ID_RE,
    LABEL_RE,
    MAX_PART,
    VERSION_RE,
    PackageCoord,
    Requirement,
    ServiceCoord,
    compare_versions,
    newest,
    version_key,
)
from shipyard.errors import CoordinateError

PROPS = settings(max_examples=200, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
ROOT = Path("/srv/software")


def _part(pattern) -> st.SearchStrategy[str]:
    return st.from_regex(pattern, fullmatch=True).filter(
        lambda s: len(s) <= MAX_PART and ".." not in s)


groups = _part(GROUP_RE)
ids = _part(ID_RE)
versions = _part(VERSION_RE)
labels = st.from_regex(LABEL_RE, fullmatch=True).filter(lambda s: len(s) <= 63)
# Versions built from the characters that matter to the order: digits, letters, ~ . + -
order_versions = st.text(alphabet="0123456789.~+-ab", min_size=1, max_size=8).map(
    lambda s: "1" + s).filter(lambda s: ".." not in s)
hostile = st.lists(st.sampled_from([*"a0.:/~-_+\\\x00 ", "..", "/..", ":..", "a.b", "1.0"]),
                   max_size=12).map("".join)


@PROPS
@given(groups, ids, st.none() | versions)
def test_package_coord_round_trip(group: str, ident: str, version: str | None) -> None:
    coord = PackageCoord(group, ident, version)
    text = str(coord)
    assert PackageCoord.parse(text) == coord
    assert str(PackageCoord.parse(text)) == text


@PROPS
@given(groups, ids, st.lists(st.tuples(st.sampled_from([">=", "<=", "==", "!=", ">", "<"]),
                                       versions), max_size=3))
def test_requirement_round_trip(group: str, ident: str, clauses: list[tuple[str, str]]) -> None:
    text = f"{group}:{ident}" + (":" + ",".join(op + v for op, v in clauses) if clauses else "")
    requirement = Requirement.parse(text)
    assert requirement.clauses == tuple(clauses)
    assert Requirement.parse(str(requirement)) == requirement


@PROPS
@given(st.lists(labels, min_size=4, max_size=4))
def test_service_coord_round_trip(parts: list[str]) -> None:
    text = ".".join(parts)
    coord = ServiceCoord.parse(text)
    assert str(coord) == text
    assert coord.runtime_path("/run/x") == Path("/run/x") / text


@PROPS
@given(order_versions, order_versions)
def test_version_order_is_antisymmetric(a: str, b: str) -> None:
    assert compare_versions(a, b) == -compare_versions(b, a)
    assert (compare_versions(a, b) == 0) == (a == b)


@PROPS
@given(order_versions, order_versions, order_versions)
def test_version_order_is_transitive(a: str, b: str, c: str) -> None:
    ordered = sorted([a, b, c], key=version_key)
    x, y, z = ordered
    assert compare_versions(x, y) <= 0 and compare_versions(y, z) <= 0
    assert compare_versions(x, z) <= 0
    if compare_versions(a, b) < 0 and compare_versions(b, c) < 0:
        assert compare_versions(a, c) < 0


@PROPS
@given(st.lists(order_versions, min_size=1, max_size=6))
def test_newest_is_the_maximum(values: list[str]) -> None:
    best = newest(values)
    assert all(compare_versions(best, v) >= 0 for v in values)


@pytest.mark.parametrize(("low", "high"), [
    ("1.9", "1.10"), ("1.0~rc1", "1.0"), ("1.0", "1.0a"), ("1.0", "1.0.1"), ("2", "10"),
    ("1.0~~", "1.0~"), ("0.9", "1.0"), ("1.0", "1.00"),
])
def test_documented_examples(low: str, high: str) -> None:
    assert compare_versions(low, high) < 0
    assert sorted([high, low], key=version_key) == [low, high]


@PROPS
@given(st.one_of(hostile, st.text(max_size=40)))
def test_parsers_raise_only_coordinate_errors(text: str) -> None:
    for parse in (PackageCoord.parse, Requirement.parse, ServiceCoord.parse):
        try:
            parse(text)
        except CoordinateError as exc:
            assert "\n" not in exc.message
            assert exc.exit_code == 2


@PROPS
@given(st.one_of(hostile.map(lambda s: f"a:b:{s}"), hostile.map(lambda s: f"{s}:x:1"),
                 hostile.map(lambda s: f"org:{s}:1"), hostile))
def test_no_accepted_coordinate_leaves_the_root(text: str) -> None:
    try:
        coord = PackageCoord.parse(text, require_version=True)
    except CoordinateError:
        return
    path = coord.install_path(ROOT)
    assert os.path.commonpath([ROOT, path]) == str(ROOT)
    assert path != ROOT
    assert ".." not in path.relative_to(ROOT).parts
    assert path == ROOT.joinpath(*coord.group.split("."), coord.id, coord.version)


@PROPS
@given(groups, ids, versions)
def test_generated_coordinates_stay_inside(group: str, ident: str, version: str) -> None:
    assume(version not in (".",))
    path = PackageCoord(group, ident, version).install_path(ROOT)
    assert path.is_relative_to(ROOT) and len(path.relative_to(ROOT).parts) >= 3
