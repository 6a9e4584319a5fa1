"""Where extracted members are written: in this process, or by a helper process.

Both sinks take checked relative paths and create directories and files below a base dir
with ``O_EXCL | O_NOFOLLOW``, hashing each file's bytes as they are written. A small
archive is written in-process; a large one by :class:`ChildSink`, whose helper
(:mod:`shipyard.pkg._writer_child`) creates files on the second core while this process
inflates and checks the stream (see that module for why not a thread).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.pkg.store import FileRecord

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_HEADER = struct.Struct("<cIIQ")
_CHILD = Path(__file__).with_name("_writer_child.py")
PIPE_BUFFER = 1 << 20


def _write_all(fd: int, block: bytes) -> None:
    view = memoryview(block)
    while view:
        view = view[os.write(fd, view):]


class LocalSink:
    """Writes in this process."""

    def __init__(self, base: str, archive: str) -> None:
        self.base = base
        self.archive = archive
        self.files: dict[str, FileRecord] = {}
        self._current: tuple[str, int, hashlib._Hash, int, bool] | None = None

    def mkdir(self, rel: str) -> None:
        os.mkdir(os.path.join(self.base, rel), 0o755)

    def file(self, rel: str, body: bytes, mode: int) -> None:
        fd = os.open(os.path.join(self.base, rel), _OPEN_FLAGS, mode)
        try:
            _write_all(fd, body)
        finally:
            os.close(fd)
        self.files[rel] = FileRecord(hashlib.sha256(body).hexdigest(), len(body),
                                     bool(mode & 0o100))

    def begin(self, rel: str, mode: int) -> None:
        fd = os.open(os.path.join(self.base, rel), _OPEN_FLAGS, mode)
        self._current = (rel, fd, hashlib.sha256(), 0, bool(mode & 0o100))

    def write(self, block: bytes) -> None:
        assert self._current is not None
        rel, fd, digest, size, executable = self._current
        digest.update(block)
        _write_all(fd, block)
        self._current = (rel, fd, digest, size + len(block), executable)

    def end(self) -> None:
        assert self._current is not None
        rel, fd, digest, size, executable = self._current
        os.close(fd)
        self.files[rel] = FileRecord(digest.hexdigest(), size, executable)
        self._current = None

    def finish(self) -> dict[str, FileRecord]:
        return self.files

    def abort(self) -> None:
        if self._current is not None:
            with contextlib.suppress(OSError):
                os.close(self._current[1])
            self._current = None


class ChildSink:
    """Streams members to a helper process that writes them (see module docstring)."""

    def __init__(self, base: str, archive: str) -> None:
        self.base = base
        self.archive = archive
        self._modes: dict[str, bool] = {}
        self._current = ""
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_CHILD), base, str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            bufsize=PIPE_BUFFER, close_fds=True,
        )
        assert self._proc.stdin is not None
        self._pipe = self._proc.stdin

    def _send(self, kind: bytes, rel: str, mode: int = 0, data: bytes = b"") -> None:
        path = rel.encode("utf-8")
        try:
            self._pipe.write(_HEADER.pack(kind, mode, len(path), len(data)))
            self._pipe.write(path)
            if data:
                self._pipe.write(data)
        except (BrokenPipeError, OSError):
            self._failed()

    def mkdir(self, rel: str) -> None:
        self._send(b"D", rel)

    def file(self, rel: str, body: bytes, mode: int) -> None:
        self._modes[rel] = bool(mode & 0o100)
        self._send(b"F", rel, mode, body)

    def begin(self, rel: str, mode: int) -> None:
        self._modes[rel] = bool(mode & 0o100)
        self._current = rel
        self._send(b"S", rel, mode)

    def write(self, block: bytes) -> None:
        self._send(b"W", self._current, 0, block)

    def end(self) -> None:
        self._send(b"C", self._current)

    def finish(self) -> dict[str, FileRecord]:
        self._send(b"E", "")
        try:
            self._pipe.close()
        except (BrokenPipeError, OSError):
            self._failed()
        assert self._proc.stdout is not None and self._proc.stderr is not None
        output = self._proc.stdout.read().decode("utf-8", "replace")
        errors = self._proc.stderr.read().decode("utf-8", "replace")
        code = self._proc.wait()
        if code != 0 or output.startswith("!"):
            self._raise(output, errors, code)
        files: dict[str, FileRecord] = {}
        for line in output.splitlines():
            rel, digest, size = line.split("\t")
            files[rel] = FileRecord(digest, int(size), self._modes[rel])
        if set(files) != set(self._modes):
            raise ShipyardError(f"{self.archive}: the writer process lost files")
        return files

    def _failed(self) -> None:
        """The helper stopped reading: collect its reason and raise it."""
        assert self._proc.stdout is not None and self._proc.stderr is not None
        with contextlib.suppress(OSError):
            self._pipe.close()
        output = self._proc.stdout.read().decode("utf-8", "replace")
        errors = self._proc.stderr.read().decode("utf-8", "replace")
        self._raise(output, errors, self._proc.wait())

    def _raise(self, output: str, errors: str, code: int) -> None:
        for line in output.splitlines():
            if line.startswith("!\t"):
                _mark, rel, message = [*line.split("\t", 2), "", ""][:3]
                raise ShipyardError(f"{self.archive}: cannot write {rel!r}: {message}")
        last = (errors.strip().splitlines() or [f"exit status {code}"])[-1]
        raise ShipyardError(f"{self.archive}: the writer process failed: {last[:200]}")

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._proc.kill()
        with contextlib.suppress(OSError, ValueError):
            self._pipe.close()
        self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
