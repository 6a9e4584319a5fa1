"""Extract a checked archive into a fresh staging dir, hashing every file as it is written.

:class:`~shipyard.formats.archive.ArchiveReader` has already refused anything but plain files
and directories with safe names; a second wall here refuses again anything that is not a
plain file or directory with a relative, ``..``-free name, and files are created with
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
from pathlib import Path

from shipyard.errors import ArchiveError
from shipyard.formats.archive import CHUNK, ArchiveReader
from shipyard.fsutil import fsync_tree
from shipyard.pkg.progress import ByteProgress
from shipyard.pkg.sink import ChildSink, LocalSink
from shipyard.pkg.store import FileRecord

# Files up to this size are read in one piece and written with one call each.
SMALL_MAX = 4 << 20
# Archives from this size on are written by a helper process (see shipyard.pkg.sink).
CHILD_MIN = 8 << 20


def extract(reader: ArchiveReader, staging: Path, *, progress: ByteProgress | None = None
            ) -> tuple[dict[str, FileRecord], list[str]]:
    """Write every member below ``staging`` (an empty dir); returns files and dirs.

    ``progress`` follows the compressed bytes read.
    """
    dirs: list[str] = []
    base = os.path.abspath(staging)
    old_umask = os.umask(0o022)
    sink: LocalSink | ChildSink | None = None
    try:
        large = reader.path.stat().st_size >= CHILD_MIN
        sink = ChildSink(base, reader.name) if large else LocalSink(base, reader.name)
        _extract_members(reader, sink, dirs, progress)
        files = sink.finish()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        os.umask(old_umask)
    return files, dirs


def _second_wall(info: tarfile.TarInfo, archive: str) -> None:
    """Refuse again what the reader has refused already, should it ever let one through.

    This used to be tarfile's ``data`` filter, whose two ``realpath`` calls per member cost
    0.3 s of a 5,000-file install. Here they can find nothing: the staging dir is fresh and
    nothing in it is a link, so a relative name without ``..`` stays inside it; the rest of
    what that filter checks (links, devices, special mode bits, owners) the reader refuses
    or this module never applies.
    """
    name = info.name
    if not (info.isreg() or info.isdir()) or name.startswith("/") or "\0" in name or \
            ".." in name.split("/"):
        raise ArchiveError(f"{archive}: member {name!r} refused: not a plain file or "
                           "directory with a relative name inside the package")


def _extract_members(reader: ArchiveReader, sink: LocalSink | ChildSink, dirs: list[str],
                     progress: ByteProgress | None) -> None:
    """Check each member again (:func:`_second_wall`), then write it."""
    made: set[str] = {""}
    for member, info, data in reader.members():
        if progress is not None:
            progress.update(reader.packed_read)  # cheap: the bar redraws by bytes
        _second_wall(info, reader.name)
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
        mode = 0o755 if (info.mode or 0) & 0o100 else 0o644
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
            if progress is not None:
                progress.update(reader.packed_read)
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
