"""The processes a test starts: each with its log in a file, waited on with a deadline
(failing with the log if it died meanwhile), stopped at the end (terminate, then kill),
and the instance processes a test must prove gone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from kit.wait import wait_until

T = TypeVar("T")


@dataclass
class Proc:
    """A started process (the leader of its own session) and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30.0,
                 what: str = "condition") -> T:
        """:func:`wait_until`, failing at once with this process's log if it exits first."""
        def check() -> T:
            if not self.alive():
                raise AssertionError(f"{self.name} exited: {self.output()}")
            return predicate()

        return wait_until(check, timeout, what)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        """Send ``sig`` to the process alone and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, sig)
        self.popen.wait(timeout=timeout)

    def stop(self, grace: float = 0.0) -> None:
        """Stop the process's whole group: SIGTERM and ``grace`` seconds to go, then
        SIGKILL (at once when ``grace`` is 0)."""
        if not self.alive():
            return
        if grace > 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
                return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)


Popen = Callable[..., "subprocess.Popen[bytes]"]


@dataclass
class Procs:
    """The processes of one test fixture, logging under ``base``, stopped by :meth:`close`."""

    base: Path
    grace: float = 0.0
    started: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str],
              popen: Popen = subprocess.Popen, **kwargs: Any) -> Proc:
        """Start ``argv`` in a session of its own, its stdout and stderr to
        ``base/<name>.<n>.log``; ``popen`` starts it elsewhere (a network namespace)."""
        log = self.base / f"{name}.{len(self.started)}.log"
        with open(log, "wb") as handle:
            process = popen(list(argv), env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True, **kwargs)
        proc = Proc(name, process, log)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        """Stop every process, the last started first."""
        for proc in reversed(self.started):
            proc.stop(self.grace)


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
