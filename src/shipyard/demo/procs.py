"""The demo's background processes: started in sessions of their own, logged to files,
stopped cleanly (TERM to the group, a deadline, then KILL).

Each process is also written to ``processes.json`` with its start time, so a demo that was
itself killed (``kill -9``, a closed terminal) leaves a list the next run uses to stop the
survivors, and only them: a pid whose start time differs belongs to somebody else now.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from shipyard import procs
from shipyard.fsutil import atomic_write


@dataclass
class Background:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def last_lines(self, count: int = 3) -> str:
        lines = [line for line in self.output().splitlines() if line.strip()]
        return " | ".join(lines[-count:]) or "no output"


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _stop_group(pid: int, created: float | None, timeout: float) -> None:
    """TERM the process group led by ``pid`` (if it is still the same process), wait, KILL."""
    if created is not None and _create_time(pid) != created:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.group_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class Processes:
    book: Path
    running: list[Background] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path,
              cwd: Path | None = None, pass_fds: Sequence[int] = ()) -> Background:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as handle:
            popen = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=handle, stderr=subprocess.STDOUT,
                                     start_new_session=True, pass_fds=tuple(pass_fds))
        proc = Background(name, popen, log)
        with self._lock:  # steps start processes from several threads at once
            self.running.append(proc)
            self._write_book()
        return proc

    def _write_book(self) -> None:
        entries = [{"name": p.name, "pid": p.popen.pid,
                    "create_time": _create_time(p.popen.pid)} for p in self.running]
        atomic_write(self.book, json.dumps(entries, indent=1) + "\n")

    def stop_named(self, which: Callable[[str], bool], timeout: float = 10.0) -> None:
        """Stop the processes whose name ``which`` accepts (before the others)."""
        for proc in [p for p in self.running if which(p.name)]:
            if proc.alive():
                _stop_group(proc.popen.pid, None, timeout)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=5)

    def stop_all(self, timeout: float = 10.0) -> list[str]:
        """Stop everything, newest first; returns the names of what had to be killed."""
        killed = []
        for proc in reversed(self.running):
            if proc.alive():
                _stop_group(proc.popen.pid, None, timeout)
                try:
                    proc.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    killed.append(proc.name)
        self.running.clear()
        with contextlib.suppress(FileNotFoundError):
            self.book.unlink()
        return killed


def reap_leftovers(book: Path, timeout: float = 10.0) -> list[str]:
    """Stop what an earlier demo that never cleaned up left running; their names."""
    try:
        entries = json.loads(book.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    stopped = []
    for entry in reversed(entries if isinstance(entries, list) else []):
        try:
            pid, created, name = int(entry["pid"]), entry.get("create_time"), str(entry["name"])
        except (KeyError, TypeError, ValueError):
            continue
        if created is None or _create_time(pid) != created:
            continue
        _stop_group(pid, created, timeout)
        stopped.append(name)
    with contextlib.suppress(FileNotFoundError):
        book.unlink()
    return stopped
