"""The writing half of an extraction, run as its own process: ``python -I -S <this> BASE PPID``.

Why a process: creating thousands of files is mostly kernel time, inflating and checking
the archive is mostly Python time, and a thread cannot overlap the two because of the GIL
(a thread that returns from a syscall waits for the interpreter lock). ``tar -xz`` runs its
gzip as a separate process for the same reason. This file imports the standard library only,
so the interpreter starts in milliseconds without ``site``.

Input on stdin, frames of ``<kind:1s><mode:u32><path length:u32><data length:u64>`` then the
path (UTF-8, relative to BASE) and the data. Kinds: ``D`` make a directory, ``F`` a whole
file, ``S``/``W``/``C`` start, write to and close a large file, ``E`` end. Output on stdout
at the end, one line per file: ``path<TAB>sha256<TAB>size``; on an error a single line
``!<TAB>path<TAB>message`` and exit status 3. The parent has checked every path; this side
checks again that each one is relative and free of ``..`` (defence in depth), and creates
files with ``O_EXCL | O_NOFOLLOW`` so nothing is written through an existing name.
"""

import hashlib
import os
import struct
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import BinaryIO

HEADER = struct.Struct("<cIIQ")
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _Large:
    """A large file being written in ``W`` frames between its ``S`` and ``C``."""

    __slots__ = ("digest", "fd", "rel", "size")

    def __init__(self, rel: str, fd: int) -> None:
        self.rel, self.fd, self.digest, self.size = rel, fd, hashlib.sha256(), 0


def _read(stream: "BinaryIO", size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("input ended early")
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _target(base: str, raw: bytes) -> tuple[str, str]:
    rel = raw.decode("utf-8")
    parts = rel.split("/")
    if not rel or rel.startswith("/") or ".." in parts or "" in parts:
        raise ValueError(f"refusing path {rel!r}")
    return rel, os.path.join(base, rel)


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the parent dies (Linux), so a killed install never leaves
    a writer behind that races the next command's sweep of the staging dir."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        sys.exit(3)


def main() -> None:
    base, parent = sys.argv[1], int(sys.argv[2])
    _die_with_parent(parent)
    stream = sys.stdin.buffer
    out = []
    current: _Large | None = None  # the large file being written
    rel = ""
    try:
        while True:
            kind, mode, path_len, data_len = HEADER.unpack(_read(stream, HEADER.size))
            raw_path = _read(stream, path_len)
            if kind == b"E":
                break
            if kind in (b"W", b"C"):
                if current is None:
                    raise ValueError(f"frame {kind!r} without a large file started")
                if kind == b"W":
                    data = _read(stream, data_len)
                    current.digest.update(data)
                    _write_all(current.fd, data)
                    current.size += len(data)
                else:
                    os.close(current.fd)
                    out.append(f"{current.rel}\t{current.digest.hexdigest()}\t{current.size}\n")
                    current = None
                continue
            rel, target = _target(base, raw_path)
            if kind == b"D":
                os.mkdir(target, 0o755)
            elif kind == b"F":
                data = _read(stream, data_len)
                fd = os.open(target, FLAGS, mode)
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
                out.append(f"{rel}\t{hashlib.sha256(data).hexdigest()}\t{len(data)}\n")
            elif kind == b"S":
                current = _Large(rel, os.open(target, FLAGS, mode))
            else:
                raise ValueError(f"unknown frame {kind!r}")
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
        message = getattr(exc, "strerror", None) or str(exc)
        sys.stdout.write(f"!\t{rel}\t{message}\n")
        sys.stdout.flush()
        sys.exit(3)
    sys.stdout.write("".join(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
