"""Pure parts of the service runtime: cycles, exec placeholders, the registry's fast path."""

from __future__ import annotations

import configparser
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import ShipyardError, UsageError
from shipyard.svc import order
from shipyard.svc.params import check_exec, expand, parse_params
from shipyard.svc.platform import platform_tag
from shipyard.svc.registry import _canonical_fields, parse_registration


def test_find_cycle_names_a_closed_path() -> None:
    assert order.find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert order.find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    cycle = order.find_cycle({"x": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}})
    assert cycle == ["a", "b", "c", "a"]
    assert order.find_cycle({"a": {"a"}}) == ["a", "a"]
    assert order.find_cycle({"a": {"gone"}}) is None  # unknown nodes impose no order


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.sets(st.sampled_from("abcdef")),
                       min_size=1))
def test_find_cycle_agrees_with_a_topological_sort(graph: dict[str, set[str]]) -> None:
    graph = {node: {d for d in deps if d in graph} for node, deps in graph.items()}
    remaining = {node: set(deps) for node, deps in graph.items()}
    while True:
        free = [node for node, deps in remaining.items() if not deps]
        if not free:
            break
        for node in free:
            del remaining[node]
        for deps in remaining.values():
            deps.difference_update(free)
    cycle = order.find_cycle(graph)
    assert (cycle is None) == (not remaining)
    if cycle is not None:
        assert cycle[0] == cycle[-1]
        for node, nxt in itertools.pairwise(cycle):
            assert nxt in graph[node]


def test_reverse_and_restrict() -> None:
    graph = {"app": {"db"}, "web": {"app"}, "db": set()}
    assert order.reverse(graph) == {"app": {"web"}, "web": set(), "db": {"app"}}
    assert order.restrict(graph, ["web", "db"]) == {"web": set(), "db": set()}


def test_exec_placeholders() -> None:
    params = parse_params(["--port=80", "--motd=a b", "--verbose"])
    assert params == {"port": "80", "motd": "a b", "verbose": None}
    line = ["bin/{platform}/srv", "--port={param.port}", "{runtime_dir}/x", "{coordinate}"]
    check_exec(line, params, "svc")
    values = {"platform": "linux-x86_64", "runtime_dir": "/r", "package_dir": "/p",
              "coordinate": "1.a.b.c"}
    assert expand(line, values, params) == ["bin/linux-x86_64/srv", "--port=80", "/r/x",
                                            "1.a.b.c"]
    with pytest.raises(ShipyardError, match="needs parameter --size=VALUE"):
        check_exec(["x", "{param.size}"], params, "svc")
    with pytest.raises(ShipyardError, match="has no value"):
        check_exec(["x", "{param.verbose}"], params, "svc")
    with pytest.raises(ShipyardError, match=r"unknown placeholder \{home\}"):
        check_exec(["x", "{home}"], params, "svc")
    with pytest.raises(UsageError, match="reserved"):
        parse_params(["--coordinate=x"])


def test_platform_tag_spelling() -> None:
    tag = platform_tag()
    system, machine = tag.split("-", 1)
    assert system == system.lower() and machine not in ("amd64", "arm64")


CANONICAL = """[instance]
coordinate = 1.a.test.local
package = org.example:a:1.0
user = shipyard
boot = no
after = 1.b.test.local 1.c.test.local
params = --port=80 '--motd=hello world'
"""


@pytest.mark.parametrize("text", [
    CANONICAL,
    CANONICAL.replace("boot = no\n", "# a comment\nboot = no\n"),
    CANONICAL.replace("params = --port=80", "params = --port=80\n  --extra=1"),
    CANONICAL.replace("user = shipyard", "USER = shipyard"),
    CANONICAL.replace("\n", "\r\n"),
    CANONICAL + "\n[other]\nkey = value\n",
])
def test_registry_fast_path_reads_like_configparser(tmp_path: Path, text: str) -> None:
    path = tmp_path / "1.a.test.local.ini"
    path.write_text(text, newline="")
    registration = parse_registration(path)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    section = parser["instance"]
    assert registration.user == section["user"]
    assert registration.boot is (section["boot"] == "yes")
    assert registration.after == section["after"].split()
    assert " ".join(registration.params).startswith("--port=80")
    if text == CANONICAL:
        assert _canonical_fields(text) is not None
        assert registration.params == ["--port=80", "--motd=hello world"]
    else:
        assert _canonical_fields(text) is None  # read by configparser instead
