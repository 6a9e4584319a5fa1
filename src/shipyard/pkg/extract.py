"""Extract a checked archive into a fresh staging dir, hashing every file as it is written.

:class:`~shipyard.pkg.archive.ArchiveReader` has already refused anything but plain files
and directories with safe names; tarfile's ``data`` filter is then applied to every member
as a second wall (its verdict and its mode are what counts), and files are created with
``O_EXCL | O_NOFOLLOW`` so nothing is ever written through a pre-existing name. The sha256
of each file is computed from the bytes written, not by reading the file back. A large
archive's files are written by a helper process (:mod:`shipyard.pkg.sink`), so that
creating inodes overlaps with inflating and checking the stream, as in ``tar -xz``.

Durability: one ``syncfs(2)`` of the staging dir's filesystem replaces an ``fsync`` per
file and per directory. Both guarantee that the data and the directory entries are on disk
before the rename; ``syncfs`` costs one journal commit instead of thousands (see
``bench/README.md``: per-file fsync made a 5,000-file install several times slower).
"""

from __future__ import annotations

import ctypes
import os
import tarfile
import tempfile
from pathlib import Path

from shipyard.errors import ArchiveError
from shipyard.fsutil import fsync_tree
from shipyard.pkg.archive import CHUNK, ArchiveReader
from shipyard.pkg.progress import ByteProgress
from shipyard.pkg.sink import ChildSink, LocalSink
from shipyard.pkg.store import FileRecord

# Files up to this size are read in one piece and written with one call each.
SMALL_MAX = 4 << 20
# Archives from this size on are written by a helper process (see shipyard.pkg.sink).
CHILD_MIN = 8 << 20


def extract(reader: ArchiveReader, staging: Path, *, progress: ByteProgress | None = None,
            empty_dir: Path | None = None) -> tuple[dict[str, FileRecord], list[str]]:
    """Write every member below ``staging`` (an empty dir); returns files and dirs.

    ``progress`` follows the compressed bytes read. ``empty_dir`` is a private directory
    that stays empty, for the data filter (see :func:`_extract_members`); without one a
    temporary directory is made and removed.
    """
    dirs: list[str] = []
    base = os.path.abspath(staging)
    old_umask = os.umask(0o022)
    made_sentinel = empty_dir is None
    try:
        sentinel = str(empty_dir) if empty_dir else tempfile.mkdtemp(prefix="shipyard-filter-")
    except OSError:  # no usable TMPDIR: judge against the staging dir itself
        sentinel, made_sentinel = base, False
    sink: LocalSink | ChildSink | None = None
    try:
        large = reader.path.stat().st_size >= CHILD_MIN
        sink = ChildSink(base, reader.name) if large else LocalSink(base, reader.name)
        _extract_members(reader, sink, sentinel, dirs, progress)
        files = sink.finish()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        os.umask(old_umask)
        if made_sentinel:
            os.rmdir(sentinel)
    return files, dirs


def _extract_members(reader: ArchiveReader, sink: LocalSink | ChildSink, sentinel: str,
                     dirs: list[str], progress: ByteProgress | None) -> None:
    """Check each member with tarfile's data filter (the second wall), then write it.

    The filter judges each member against ``sentinel``, a private empty directory, rather
    than the staging dir: for a destination without symlinks its verdict is the same (the
    staging dir is fresh, and nothing here ever creates a link), but its ``realpath`` then
    does not walk the deep software-root path (the whole ``<group>/<id>/`` chain) again for
    every one of thousands of members.
    """
    made: set[str] = {""}
    for count, (member, info, data) in enumerate(reader.members()):
        if progress is not None and count % 64 == 0:
            progress.update(reader.packed_read)
        try:
            filtered = tarfile.data_filter(info, sentinel)
        except tarfile.FilterError as exc:
            raise ArchiveError(f"{reader.name}: member {member.path!r} refused by "
                               f"tarfile's data filter ({exc})") from None
        parent = member.path.rpartition("/")[0]
        if parent not in made:
            _make_parents(sink, made, parent)
        if member.is_dir:
            if member.path not in made:
                sink.mkdir(member.path)
                made.add(member.path)
            dirs.append(member.path)
            continue
        assert data is not None
        mode = 0o755 if (filtered.mode or 0) & 0o100 else 0o644
        if member.size <= SMALL_MAX:
            body = data.read(member.size) if member.size else b""
            if len(body) != member.size:
                raise _short(reader.name, member.path)
            sink.file(member.path, body, mode)
            continue
        sink.begin(member.path, mode)
        remaining = member.size
        while remaining > 0:
            block = data.read(min(CHUNK, remaining))
            if not block:
                raise _short(reader.name, member.path)
            sink.write(block)
            remaining -= len(block)
        sink.end()


def _make_parents(sink: LocalSink | ChildSink, made: set[str], path: str) -> None:
    """Directories that only appear as parents of members, top-down."""
    missing = []
    while path and path not in made:
        missing.append(path)
        path = path.rpartition("/")[0]
    for directory in reversed(missing):
        sink.mkdir(directory)
        made.add(directory)


def _short(archive: str, name: str) -> ArchiveError:
    return ArchiveError(f"{archive}: truncated or damaged archive (short member {name!r})")


def make_durable(staging: Path) -> None:
    """Everything below ``staging`` on disk: ``syncfs`` when the C library has it."""
    if not _syncfs(staging):
        fsync_tree(staging)


def _syncfs(path: Path) -> bool:
    try:
        # The running interpreter's own symbols include the C library; find_library
        # would spawn ldconfig, which costs more than the sync itself.
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return syncfs(fd) == 0
    finally:
        os.close(fd)
