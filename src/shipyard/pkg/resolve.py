"""Turn ``group:id[:version]`` plus ``requires`` into an ordered install plan.

Rules: ``group:id`` means the newest version in the channel (coords' documented order);
a requirement already met by an installed version is left alone (like apt, Shipyard does
not upgrade behind the operator's back); otherwise the newest channel version matching
every clause is chosen. Requirements are installed before what needs them. A cycle is an
error naming the whole loop, and an unmet requirement is an error before anything is
installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shipyard.coords import PackageCoord, Requirement, newest
from shipyard.errors import ShipyardError
from shipyard.formats.index import ChannelIndex, PackageEntry

if TYPE_CHECKING:
    from _typeshed import SupportsAllComparisons

InstalledLookup = Callable[[str, str], list[str]]


def pick(index: ChannelIndex, coord: PackageCoord) -> PackageEntry:
    """The index entry for ``coord`` (its newest version when none is given)."""
    versions = index.versions_of(coord.group, coord.id)
    if not versions:
        raise ShipyardError(f"{coord.name} is not in channel {index.channel}")
    if coord.version is None:
        best = newest(list(versions))
        assert best is not None
        return versions[best]
    entry = versions.get(coord.version)
    if entry is None:
        shown = ", ".join(sorted(versions, key=_key)[-5:])
        raise ShipyardError(f"{coord} is not in channel {index.channel} (versions there: "
                            f"{shown})")
    return entry


def _key(version: str) -> SupportsAllComparisons:
    from shipyard.coords import version_key

    return version_key(version)


def plan(index: ChannelIndex, root: PackageEntry, installed: InstalledLookup) -> list[PackageEntry]:
    """Entries to install, requirements first, ending with ``root``; no duplicates."""
    ordered: list[PackageEntry] = []
    done: set[str] = set()
    _visit(index, root, installed, ordered, done, [])
    return ordered


def _visit(index: ChannelIndex, entry: PackageEntry, installed: InstalledLookup,
           ordered: list[PackageEntry], done: set[str], stack: list[str]) -> None:
    name = entry.coord.name
    if name in stack:
        loop = " -> ".join([*stack[stack.index(name):], name])
        raise ShipyardError(f"dependency cycle: {loop}")
    if str(entry.coord) in done:
        return
    stack.append(name)
    for text in entry.requires:
        try:
            requirement = Requirement.parse(text)
        except ShipyardError as exc:
            raise ShipyardError(f"{entry.coord}: bad requirement {text!r}: {exc.message}") \
                from None
        dependency = choose(index, requirement, installed, ordered, needed_by=entry.coord)
        if dependency is not None:
            _visit(index, dependency, installed, ordered, done, stack)
    stack.pop()
    done.add(str(entry.coord))
    ordered.append(entry)


def choose(index: ChannelIndex | None, requirement: Requirement, installed: InstalledLookup,
           planned: list[PackageEntry], *, needed_by: PackageCoord) -> PackageEntry | None:
    """``None`` when an installed or already planned version meets ``requirement``,
    else the newest matching channel entry; an error when nothing matches."""
    if any(requirement.matches(v) for v in installed(requirement.group, requirement.id)):
        return None
    for entry in planned:
        if entry.coord.name == requirement.name and requirement.matches(entry.version):
            return None
    if index is None:
        raise ShipyardError(f"{needed_by} requires {requirement}, which is not installed "
                            "(install it first, or configure repo.url to fetch it)")
    versions = index.versions_of(requirement.group, requirement.id)
    best = requirement.best(list(versions))
    if best is None:
        available = ", ".join(sorted(versions, key=_key)) or "none"
        raise ShipyardError(f"{needed_by} requires {requirement}, which channel "
                            f"{index.channel} cannot satisfy (versions there: {available})")
    return versions[best]
