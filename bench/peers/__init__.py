"""Peer tools the benchmarks run next to Shipyard, each in its own venv under bench/.peers/,
and what both sides share: stopping a farm's process groups."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_groups(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """TERM every process group, KILL those still there after ``grace`` seconds."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
