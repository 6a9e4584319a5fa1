"""Channels as readers and operators see them: what is published, and promotion.

``read_published`` reads the current generation the way a client does (the release, then
each index checked against the hash the release gives it), for ``repo list``, the web
pages and tests; ``published_in`` and ``first_listed`` answer the demo's questions about a
repository directory from those same files. ``promote`` lists a package the repository
already holds in one more channel; the next publisher run publishes it.
"""

from __future__ import annotations

import os

from shipyard.coords import PackageCoord
from shipyard.errors import ShipyardError
from shipyard.formats.index import RELEASE_NAME, ChannelIndex, Release
from shipyard.repo.layout import Repository, open_repository
from shipyard.repo.store import RepoStore


def read_published(repo: Repository, channel: str | None = None
                   ) -> tuple[Release | None, dict[str, ChannelIndex]]:
    """The current release and the indexes it names, checked against its hashes."""
    serial = repo.current_serial()
    if serial is None:
        return None, {}
    return read_generation(repo, serial, channel)


def read_generation(repo: Repository, serial: int, channel: str | None = None
                    ) -> tuple[Release, dict[str, ChannelIndex]]:
    """Generation ``serial``'s release and the indexes it names (only ``channel``'s, if
    given), checked against its hashes."""
    base = repo.generations / str(serial)
    release = Release.from_bytes((base / RELEASE_NAME).read_bytes(), str(base / RELEASE_NAME))
    names = [channel] if channel else sorted(release.channels)
    indexes: dict[str, ChannelIndex] = {}
    for name in names:
        ref = release.channels.get(name)
        if ref is None:
            known = ", ".join(sorted(release.channels))
            raise ShipyardError(f"channel {name!r} is not published (channels: {known})")
        indexes[name] = release.check_index(name, (base / ref.path).read_bytes(),
                                            str(base / ref.path))
    return release, indexes


def published_in(repo_dir: str | os.PathLike[str], channel: str) -> list[str]:
    """The coordinates the current publication lists in ``channel``, sorted."""
    _release, indexes = read_published(open_repository(repo_dir, migrate=False), channel)
    index = indexes.get(channel)
    return sorted(str(entry.coord) for entry in index.packages) if index else []


def first_listed(repo_dir: str | os.PathLike[str], channel: str, name: str) -> int | None:
    """The first generation still on disk whose ``channel`` index lists ``name``
    (``group:id``): when that package was published, read from the published files.
    Generations without that channel, or that cannot be read, are passed over."""
    repo = open_repository(repo_dir, migrate=False)
    serials = sorted(int(p.name) for p in repo.generations.iterdir() if p.name.isdigit())
    for serial in serials:
        try:
            _release, indexes = read_generation(repo, serial, channel)
        except (ShipyardError, OSError):
            continue
        if any(f"{entry.group}:{entry.id}" == name for entry in indexes[channel].packages):
            return serial
    return None


def promote(repo: Repository, coord_text: str, channel: str) -> tuple[PackageCoord, bool]:
    """List a known package in ``channel`` too (published by the next run). ``group:id``
    means its newest version. Returns the coordinate and whether anything changed."""
    coord = PackageCoord.parse(coord_text)
    repo.channel_or_default(channel)
    store = RepoStore(repo.db_url)
    store.ensure_channels(repo.config.channels)
    if coord.version is None:
        version = store.newest_version(coord.group, coord.id)
        if version is None:
            raise ShipyardError(f"{coord} is not in the repository {repo.root}")
        coord = coord.with_version(version)
    stored = store.find(coord)
    if stored is None:
        raise ShipyardError(f"{coord} is not in the repository {repo.root} (upload and "
                            "publish it first)")
    changed = store.accept([], [((coord.group, coord.id, coord.version or ""), channel)])
    return coord, bool(changed)
