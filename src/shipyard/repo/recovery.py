"""Repair what a publisher run that died left behind (the first step of every run).

A run can die anywhere: between writing a generation and flipping ``current``, in the
middle of the flip, after the flip but before the database heard of it. Recovery runs
under the publish lock, so whatever it finds belongs to a dead process: a temporary
``current`` link, generations newer than ``current`` (never published), publications
still called ``building``. One that *did* become current is recorded as published, which
also marks its channels clean: the half-done flip repaired.
"""

from __future__ import annotations

import os

from shipyard.formats.index import RELEASE_NAME
from shipyard.fsutil import atomic_symlink, remove_tree
from shipyard.repo.generation import discard
from shipyard.repo.layout import Repository
from shipyard.repo.store import RepoStore


def recover(repo: Repository, store: RepoStore) -> list[str]:
    """Repair what a publisher run that died left behind (call under the publish lock);
    returns one note per repair."""
    notes: list[str] = []
    for temp in repo.root.glob(".current.*.tmp"):
        temp.unlink(missing_ok=True)
        notes.append(f"removed the temporary link {temp.name} of an unfinished flip")
    current = repo.current_serial()
    if current is not None and not (repo.generations / str(current) / RELEASE_NAME).is_file():
        current = _repoint(repo, store, current, notes)
    repo.generations.mkdir(parents=True, exist_ok=True)
    for name in sorted(os.listdir(repo.generations)):
        path = repo.generations / name
        if name.startswith("."):
            remove_tree(path, ignore_errors=True)
            notes.append(f"removed leftover {name}")
        elif name.isdigit() and (current is None or int(name) > current):
            discard(repo, path)
            notes.append(f"removed unfinished generation {name}")
    for publication in store.publications(status="building"):
        if publication.serial == current:
            store.finish_publication(publication.serial, "published",
                                     "recovered: the run died after the flip")
            notes.append(f"generation {current} was published by a run that died; "
                         "recorded it")
        else:
            store.finish_publication(publication.serial, "abandoned",
                                     "the run died before the flip")
    return notes


def _repoint(repo: Repository, store: RepoStore, missing: int, notes: list[str]) -> int | None:
    """``current`` names a generation that is gone (removed by hand): point it at the newest
    published one still on disk, or remove it when there is none."""
    for publication in store.publications(status="published"):
        path = repo.generations / str(publication.serial)
        if publication.serial != missing and (path / RELEASE_NAME).is_file():
            atomic_symlink(f"generations/{publication.serial}", repo.current)
            notes.append(f"current pointed at missing generation {missing}; now "
                         f"{publication.serial}")
            return publication.serial
    repo.current.unlink()
    notes.append(f"current pointed at missing generation {missing}; removed it")
    return None
