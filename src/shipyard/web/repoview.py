"""What the pages show of the repository the coordinator publishes to (``serve --repo``):
channels, publications, published versions and the publisher's script activity.

Read-only, through the repository's own modules; published versions come from the signed
indexes ``current`` points at (checked against ``release.json``), the very files nodes
read, so the page never claims a version nodes cannot see. They are cached per serial.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.coords import version_key
from shipyard.errors import ShipyardError
from shipyard.formats.index import ChannelIndex, Release
from shipyard.repo.activity import ActivityRow, ScriptSummary
from shipyard.repo.store import Publication

_cache: dict[Path, tuple[int, Release | None, dict[str, ChannelIndex]]] = {}
_lock = threading.Lock()


def _published(root: Path) -> tuple[int | None, Release | None, dict[str, ChannelIndex]]:
    from shipyard.repo.channels import read_published
    from shipyard.repo.layout import open_repository

    repo = open_repository(root, migrate=False)
    serial = repo.current_serial()
    if serial is None:
        return None, None, {}
    with _lock:
        cached = _cache.get(root)
        if cached is not None and cached[0] == serial:
            return serial, cached[1], cached[2]
    release, indexes = read_published(repo)
    with _lock:
        _cache[root] = (serial, release, indexes)
    return serial, release, indexes


def published_versions(root: Path | None, package: str) -> dict[str, list[str]] | None:
    """``{channel: [versions, newest first]}`` of ``group:id``; None without a repository."""
    if root is None:
        return None
    group, _, ident = package.partition(":")
    try:
        _serial, _release, indexes = _published(root)
    except (ShipyardError, OSError):
        return {}
    return {channel: sorted(index.versions_of(group, ident), key=version_key, reverse=True)
            for channel, index in sorted(indexes.items())}


@dataclass(frozen=True)
class ChannelRow:
    name: str
    priority: int
    default: bool
    dirty: bool  # changes wait for the next publisher run
    packages: int | None  # as published; None before the channel's first publication


@dataclass
class Overview:
    root: Path
    channels: list[ChannelRow] = field(default_factory=list)
    serial: int | None = None
    release: Release | None = None
    publications: list[Publication] = field(default_factory=list)
    scripts: list[ScriptSummary] = field(default_factory=list)
    activity: list[ActivityRow] = field(default_factory=list)
    queued_uploads: int = 0
    error: str = ""


def overview(root: Path, *, publications: int = 15, activity: int = 25) -> Overview:
    from shipyard.repo import activity as activity_mod
    from shipyard.repo.layout import open_repository
    from shipyard.repo.store import RepoStore

    view = Overview(root)
    try:
        repo = open_repository(root, migrate=False)
        store = RepoStore(repo.db_url)
        states = store.channel_states()
        try:
            view.serial, view.release, _indexes = _published(root)
        except (ShipyardError, OSError) as exc:
            view.error = f"the published tree does not verify: {exc}"
        refs = view.release.channels if view.release else {}
        for name, priority in sorted(repo.config.channels.items(), key=lambda kv: (kv[1], kv[0])):
            state = states.get(name)
            ref = refs.get(name)
            view.channels.append(ChannelRow(
                name, priority, name == repo.config.default_channel,
                bool(state and state.dirty), ref.count if ref else None))
        view.publications = store.publications(limit=publications)
        view.activity = activity_mod.recent(repo.db_url, limit=activity)
        view.scripts = activity_mod.summaries(repo.db_url)
        from shipyard.repo.upload import queued

        view.queued_uploads = len(queued(repo))
    except (ShipyardError, OSError) as exc:
        view.error = getattr(exc, "message", None) or str(exc)
    return view
