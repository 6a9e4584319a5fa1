"""Crash-safe file primitives shared by every stage.

The rule everywhere: write to a temporary file in the same directory, fsync it, rename it
over the target, fsync the directory. A reader then sees the old content or the new, never
a mix, also after ``kill -9`` or a power cut. Locks are ``flock`` on a file that is never
deleted, so a crashed holder never leaves a stale lock behind (reprepro #18).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from shipyard.errors import LockTimeout


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    *,
    mode: int = 0o644,
    fsync: bool = True,
) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block ends, or not at all.

    What the rule above says, for writers that stream (archives): the temporary file is
    created with ``mode`` from the start (a secret is never readable by others, not even for
    a moment), flushed and fsynced, renamed over ``path``, and the directory fsynced. An
    exception inside the block removes the temporary file and leaves ``path`` as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(target.parent)


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    mode: int = 0o644,
    fsync: bool = True,
) -> None:
    """Replace ``path`` with ``data`` so that readers never see a partial file."""
    with atomic_writer(path, mode=mode, fsync=fsync) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def atomic_symlink(target: str, link: str | os.PathLike[str]) -> None:
    """Point ``link`` at ``target`` in one step (create a new link, rename it over)."""
    link_path = Path(link)
    tmp = link_path.with_name(f".{link_path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link_path)
    fsync_dir(link_path.parent)


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """fsync every file and directory below ``root`` (before renaming it into place)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                continue
            fd = os.open(full, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike[str],
    *,
    timeout: float | None = 60.0,
    shared: bool = False,
    what: str | None = None,
) -> Iterator[None]:
    """Hold an ``flock`` on ``path`` (created if missing) for the duration of the block.

    ``timeout=None`` waits forever, ``0`` fails at once if the lock is taken. The message of
    :class:`LockTimeout` says what is locked so an operator knows which process to look for.
    """
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    try:
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    label = what or str(lock_path)
                    raise LockTimeout(
                        f"{label} is locked by another process ({lock_path})"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        yield
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
