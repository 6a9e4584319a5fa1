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
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
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
    for dirpath, _dirnames, filenames in walk(root):
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


def walk(root: str | os.PathLike[str]) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` (top-down, symlinks not followed) without recursion.

    Python 3.11's ``os.walk`` recurses once per level, so a tree about a thousand levels
    deep raises ``RecursionError``; an explicit stack has no such limit. Directory entries
    that are symlinks are listed with the files. The caller may prune the directory list
    in place, as with ``os.walk``. Unreadable directories are skipped.
    """
    stack = [os.fspath(root)]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as listing:
                entries = list(listing)
        except OSError:
            continue
        dirs: list[str] = []
        files: list[str] = []
        for entry in entries:
            (dirs if _is_dir(entry) else files).append(entry.name)
        yield top, dirs, files
        stack.extend(os.path.join(top, name) for name in reversed(dirs))


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str | os.PathLike[str], *, ignore_errors: bool = False) -> None:
    """Delete ``path`` and everything below it, however deep; a missing path is fine.

    ``shutil.rmtree`` recurses once per level (``RecursionError`` near a thousand levels)
    and builds full path names (``ENAMETOOLONG`` beyond ``PATH_MAX``). This walks down and
    back up with one directory descriptor at a time: names are resolved relative to the
    open directory (``unlinkat``/``openat``), the way back up is ``..``, checked against
    the device and inode recorded on the way down, so a directory moved away meanwhile
    stops the removal instead of deleting something else. Symlinks are removed, never
    followed. A tree that a killed process half-deleted is finished; a read-only
    directory inside it is made writable first (its owner may do that). With
    ``ignore_errors``, a failure leaves the rest in place silently (a best-effort cleanup).
    """
    if ignore_errors:
        with contextlib.suppress(OSError):
            remove_tree(path)
        return
    target = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(target)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        return
    parent_fd = os.open(parent, _DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        _remove_below(parent_fd, name)
        with contextlib.suppress(FileNotFoundError):
            _retry_writable(parent_fd, os.rmdir, name)
    finally:
        os.close(parent_fd)


def _retry_writable(dir_fd: int, action: Callable[..., object], name: str) -> None:
    """``action(name, dir_fd=dir_fd)`` (unlink or rmdir); once more after chmod u+rwx."""
    try:
        action(name, dir_fd=dir_fd)
    except PermissionError:
        os.fchmod(dir_fd, stat.S_IMODE(os.fstat(dir_fd).st_mode) | stat.S_IRWXU)
        action(name, dir_fd=dir_fd)


def _open_dir(dir_fd: int, name: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        os.chmod(name, 0o700, dir_fd=dir_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _remove_below(parent_fd: int, top: str) -> None:
    """Empty the directory ``top`` (in ``parent_fd``) depth-first, iteratively."""
    try:
        fd = _open_dir(parent_fd, top)
    except FileNotFoundError:
        return
    # One frame per level: (name in its parent, device, inode, subdirs still to remove).
    first = os.fstat(fd)
    frames: list[tuple[str, int, int, list[str]]] = [(top, first.st_dev, first.st_ino, [])]
    fresh = True
    try:
        while True:
            name, _dev, _ino, pending = frames[-1]
            if fresh:
                pending.extend(_clear_files(fd))
                fresh = False
            if pending:
                child = pending.pop()
                try:
                    child_fd = _open_dir(fd, child)
                except OSError as exc:
                    if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        raise
                    # Gone, or replaced by a file or symlink meanwhile: unlink that.
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                        _retry_writable(fd, os.unlink, child)
                    continue
                info = os.fstat(child_fd)
                os.close(fd)
                fd = child_fd
                frames.append((child, info.st_dev, info.st_ino, []))
                fresh = True
                continue
            if len(frames) == 1:
                return
            frames.pop()
            up = os.open("..", _DIR_FLAGS & ~os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = up
            _parent_name, dev, ino, _pending = frames[-1]
            here = os.fstat(fd)
            if (here.st_dev, here.st_ino) != (dev, ino):
                raise OSError(errno.ESTALE, "directory moved while it was being removed",
                              name)
            try:
                _retry_writable(fd, os.rmdir, name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.ENOTEMPTY:
                    raise
                frames[-1][3].append(name)  # something appeared meanwhile: go again
    finally:
        os.close(fd)


def _clear_files(fd: int) -> list[str]:
    """Unlink every non-directory in ``fd``; returns the names of its subdirectories."""
    with os.scandir(fd) as listing:
        entries = list(listing)
    subdirs: list[str] = []
    for entry in entries:
        if _is_dir(entry):
            subdirs.append(entry.name)
            continue
        with contextlib.suppress(FileNotFoundError):
            _retry_writable(fd, os.unlink, entry.name)
    return subdirs


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A real directory (not a link to one); an entry that vanished or cannot be read
    counts as a file."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False
