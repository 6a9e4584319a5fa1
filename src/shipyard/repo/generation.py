"""Generations on disk: build ``generations/<serial>``, discard one, prune old ones.

A generation is the tree readers fetch: one index per channel under ``dists/``,
``release.json`` naming each index's sha256 and size, and its detached signature.
Unchanged channel indexes are hard-linked from the current generation, dirty ones are
rendered from the database. Everything is fsynced before the publisher flips ``current``
to it, and a generation is only ever removed by renaming it away first, so a reader sees a
whole generation or a 404, never half of one.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.formats.index import (
    RELEASE_NAME,
    SIGNATURE_NAME,
    ChannelIndex,
    ChannelRef,
    Release,
    index_path,
    iso,
    sha256_bytes,
)
from shipyard.formats.signing import PrivateKey, sign_detached
from shipyard.fsutil import atomic_write, fsync_dir, remove_tree
from shipyard.repo.layout import Repository
from shipyard.repo.store import RepoStore


def build_generation(repo: Repository, store: RepoStore, key: PrivateKey | None,
                     generation: Path, serial: int, channels: list[str],
                     current: int | None) -> None:
    """Write generation ``serial``: ``channels`` rendered afresh, the others linked from
    ``current``; signed with ``key`` unless it is ``None``."""
    if generation.exists():  # a database reset can reuse a serial of an old tree
        discard(repo, generation)
    previous: Release | None = None
    previous_dir = repo.generations / str(current) if current is not None else None
    if previous_dir is not None:
        try:
            previous = Release.from_bytes((previous_dir / RELEASE_NAME).read_bytes(),
                                          str(previous_dir / RELEASE_NAME))
        except (OSError, ShipyardError):
            previous = None  # unreadable (edited by hand?): render every channel afresh
    refs: dict[str, ChannelRef] = {}
    dirs: list[Path] = []
    for name, priority in repo.config.channels.items():
        target = generation / index_path(name)
        target.parent.mkdir(parents=True)
        dirs.append(target.parent)
        old = previous.channels.get(name) if previous is not None else None
        if old is not None and name not in channels and previous_dir is not None:
            source = previous_dir / old.path
            if source.stat().st_size == old.size:
                link_or_copy(source, target)
                refs[name] = ChannelRef(priority, old.path, old.size, old.sha256, old.count)
                continue
        # A channel outside this pass keeps what it last published; with no earlier
        # publication that is nothing, so a fast-track pass never leaks its packages.
        entries = store.channel_entries(name) if name in channels or old else []
        data = ChannelIndex(name, serial, entries).to_bytes()
        atomic_write(target, data)
        refs[name] = ChannelRef(priority, index_path(name), len(data), sha256_bytes(data),
                                len(entries))
    now = datetime.now(UTC).replace(microsecond=0)
    release = Release(serial, iso(now),
                      iso(now + timedelta(days=repo.config.valid_days)), refs)
    data = release.to_bytes()
    atomic_write(generation / RELEASE_NAME, data)
    if key is not None:
        atomic_write(generation / SIGNATURE_NAME, sign_detached(data, [key]))
    for directory in [*dirs, generation / "dists", generation, repo.generations]:
        fsync_dir(directory)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target``; a durable copy where a link is not possible."""
    try:
        os.link(source, target)
    except OSError:  # another filesystem or too many links: a copy is as good
        shutil.copyfile(source, target)
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())


def discard(repo: Repository, generation: Path) -> None:
    """Remove a generation that is not current: renamed away first, so nobody ever finds a
    half-deleted tree under its serial."""
    if not generation.exists():
        return
    trash = repo.generations / f".discard-{generation.name}-{os.getpid()}"
    os.rename(generation, trash)
    fsync_dir(repo.generations)
    remove_tree(trash, ignore_errors=True)


def prune(repo: Repository, keep: int, current: int) -> list[int]:
    """Remove generations older than the ``keep`` newest before ``current``."""
    older = sorted(int(n) for n in os.listdir(repo.generations)
                   if n.isdigit() and int(n) < current)
    doomed = older[:-keep] if keep else older
    for serial in doomed:
        discard(repo, repo.generations / str(serial))
    return doomed
