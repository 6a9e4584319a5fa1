"""Small test utilities: waiting on conditions with a deadline, free ports, directories
service users can reach."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition",
               *, interval: float = 0.01, message: str | None = None) -> T:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` runs out.

    The poll interval starts at ``interval`` and backs off to 0.2 s, so a quick condition is
    seen at once and a slow one does not burn the CPU the thing we wait for needs.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_under(root: Path) -> list[psutil.Process]:
    """Live (not zombie) processes started for instances below ``root``, found by the
    ``SHIPYARD_RUNTIME_DIR`` in their environment, so a test can prove nothing leaked."""
    needle = f"SHIPYARD_RUNTIME_DIR={root}".encode()
    found = []
    for pid in psutil.pids():
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read()
            proc = psutil.Process(pid)
            if needle in environ and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def kill_all(procs: Iterable[psutil.Process]) -> None:
    """SIGKILL every process that is still there."""
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            continue


@contextlib.contextmanager
def public_tmpdir(prefix: str) -> Iterator[Path]:
    """A 0755 directory under /tmp, removed afterwards: pytest's tmp_path is 0700, so a
    service user (instances run as one when the tests run as root) could not reach it."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
