"""Instance logs: ``console/`` (stdout and stderr Shipyard captured) and ``log/``.

Rotation is by size with ``svc.log_keep`` numbered copies (``stdout.log.1`` newest). A
running service keeps its files open, so rotation is *copy then truncate* (logrotate's
``copytruncate``): the copy goes to ``.1`` and the file is truncated in place; a writer
that opened it with ``O_APPEND`` (Shipyard opens the console files that way, and so do
most loggers) simply continues at the new end. A few bytes written between the copy and the
truncation can be lost; that is the price of not restarting the service.

Rotation runs at every start of an instance (so a boot loop cannot grow a file without
bound), on every ``svc logs``, and on ``svc rotate``, which the units written by
``svc init-system`` run from a timer every few minutes (``rotate`` in cron for SysV). Growth
between two passes is bounded by what a service writes in that interval.

Root rotates files inside directories the service user can write, so it never follows a
link (``O_NOFOLLOW``, ``lstat``) and leaves alone files with more than one hard link.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.svc.runtime import Runtime

ROTATED_RE = re.compile(r".*\.\d+$")


def log_dirs(runtime: Runtime) -> list[Path]:
    return [runtime.console, runtime.real_dir("log")]


def current_files(runtime: Runtime) -> list[Path]:
    """Regular, not-yet-rotated files of ``console/`` and ``log/``, in a stable order."""
    found: list[Path] = []
    for directory in log_dirs(runtime):
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if ROTATED_RE.fullmatch(entry.name) or entry.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    found.append(Path(entry.path))
    return found


def _copy(src_fd: int, dst_fd: int, size: int) -> None:
    remaining = size
    while remaining > 0:
        try:
            sent = os.copy_file_range(src_fd, dst_fd, remaining)
        except OSError:
            sent = 0
        if sent <= 0:
            break
        remaining -= sent
    while remaining > 0:  # fallback when copy_file_range is not supported
        chunk = os.read(src_fd, min(remaining, 1 << 20))
        if not chunk:
            break
        os.write(dst_fd, chunk)
        remaining -= len(chunk)


def rotate_file(path: Path, max_bytes: int, keep: int) -> bool:
    """Rotate ``path`` if it is larger than ``max_bytes``; True when it did."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size <= max_bytes or st.st_nlink != 1:
        return False
    src = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if keep > 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}.{keep}")
            for index in range(keep - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f"{path}.{index}", f"{path}.{index + 1}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}.1")
            dst = os.open(f"{path}.1", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, stat.S_IMODE(st.st_mode) or 0o640)
            try:
                if os.geteuid() == 0:
                    os.fchown(dst, st.st_uid, st.st_gid)
                _copy(src, dst, os.fstat(src).st_size)
            finally:
                os.close(dst)
        os.ftruncate(src, 0)
    finally:
        os.close(src)
    return True


def rotate(runtime: Runtime, max_bytes: int, keep: int) -> list[Path]:
    """Rotate every current file of the instance that outgrew ``max_bytes``."""
    rotated = []
    for path in current_files(runtime):
        with contextlib.suppress(OSError):
            if rotate_file(path, max_bytes, keep):
                rotated.append(path)
    return rotated


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of ``path`` (all of it when ``lines`` < 0)."""
    try:
        with open(path, "rb") as handle:
            if lines < 0:
                return handle.read().decode("utf-8", "replace")
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            block = 8192
            data = b""
            position = end
            while position > 0 and data.count(b"\n") <= lines:
                step = min(block, position)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    parts = text.splitlines(keepends=True)
    return "".join(parts[-lines:]) if lines else ""


def offset(path: Path) -> int:
    """Where what is written to ``path`` from now on starts (for :func:`last_line`)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def last_line(path: Path, offset: int = 0) -> str:
    """The last non-empty line written to ``path`` after ``offset`` (for error messages)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(offset, size - 4096)
            if start > size:
                start = 0
            handle.seek(start)
            data = handle.read()
    except OSError:
        return ""
    for line in reversed(data.decode("utf-8", "replace").splitlines()):
        if line.strip():
            return line.strip()[:300]
    return ""


@dataclass
class Follower:
    """``tail -F`` over the instance's log directories: new files, truncation, rotation."""

    runtime: Runtime
    interval: float = 0.2
    offsets: dict[Path, int] = field(default_factory=dict)
    last: Path | None = None

    def start_at_end(self) -> None:
        for path in current_files(self.runtime):
            with contextlib.suppress(OSError):
                self.offsets[path] = os.stat(path).st_size

    def poll(self) -> Iterator[str]:
        for path in current_files(self.runtime):
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            offset = self.offsets.get(path, 0)
            if size < offset:  # truncated (rotated): start over
                offset = 0
            if size == offset:
                self.offsets[path] = offset
                continue
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read(size - offset)
            except OSError:
                continue
            self.offsets[path] = offset + len(data)
            if path != self.last:
                yield f"\n==> {path} <==\n"
                self.last = path
            yield data.decode("utf-8", "replace")

    def run(self) -> Iterator[str]:
        while True:
            yield from self.poll()
            time.sleep(self.interval)
