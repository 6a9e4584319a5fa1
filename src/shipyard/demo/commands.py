"""The ``shipyard`` command line and ``git``, run as an operator would run them.

Every command the demo runs is appended, with its output, to ``logs/commands.log``: the
newcomer can read exactly what was typed on their behalf and type it again. With
``--verbose`` the command lines are printed as well.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError

SHIPYARD = [sys.executable, "-m", "shipyard.cli.main"]
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Dee Veloper", "GIT_AUTHOR_EMAIL": "dev@localhost",
                "GIT_COMMITTER_NAME": "Dee Veloper", "GIT_COMMITTER_EMAIL": "dev@localhost"}


class CommandFailed(ShipyardError):
    """A command the demo ran exited non-zero; the message ends with its last error line."""


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without any ``SHIPYARD_*`` or ``GIT_*`` variable (the
    demo's homes and config files decide everything), plus ``SHIPYARD_HOME``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHIPYARD_", "GIT_"))}
    env["SHIPYARD_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class Runner:
    """Runs commands for one Shipyard home (the farm host or the node)."""

    home: Path
    log: Path
    echo: Callable[[str], None] | None = None

    @property
    def env(self) -> dict[str, str]:
        return clean_env(self.home)

    def _record(self, shown: str, result: subprocess.CompletedProcess[str],
                seconds: float) -> None:
        if self.echo is not None:
            self.echo(shown)
        parts = [f"{shown}\n# took {seconds:.2f}s\n"]
        for stream in (result.stdout, result.stderr):
            if stream:
                parts.append(stream if stream.endswith("\n") else stream + "\n")
        if result.returncode:
            parts.append(f"(exit code {result.returncode})\n")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a", encoding="utf-8") as handle:  # one write: threads share it
            handle.write("".join(parts))

    def run(self, *args: str, check: bool = True, timeout: float = 120.0,
            input: str | None = None, cwd: Path | None = None,
            secret_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``secret_env``: variables (tokens) given to the command, never shown or logged."""
        shown = f"$ SHIPYARD_HOME={self.home} shipyard {shlex.join(args)}"
        if secret_env:
            shown = " ".join(f"{k}=..." for k in sorted(secret_env)) + " " + shown[2:]
            shown = "$ " + shown
        started = time.monotonic()
        try:
            result = subprocess.run([*SHIPYARD, *args], env={**self.env, **(secret_env or {})},
                                    capture_output=True,
                                    text=True, timeout=timeout, input=input, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise CommandFailed(f"shipyard {shlex.join(args)} did not finish within "
                                f"{timeout:g}s") from None
        self._record(shown, result, time.monotonic() - started)
        if check and result.returncode != 0:
            why = _last_line(result.stderr) or _last_line(result.stdout) or "no output"
            raise CommandFailed(f"shipyard {shlex.join(args)} exited with code "
                                f"{result.returncode}: {why}")
        return result

    def json(self, *args: str, timeout: float = 120.0) -> Any:
        return json.loads(self.run(*args, "--json", timeout=timeout).stdout)

    def git(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        shown = f"$ (cd {cwd} && git {shlex.join(args)})"
        env = {**self.env, **GIT_IDENTITY}
        started = time.monotonic()
        try:
            result = subprocess.run(["git", "-c", "init.defaultBranch=main",
                                     "-c", "advice.detachedHead=false", *args], cwd=cwd,
                                    env=env, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise ShipyardError("the demo needs git; install it (apt-get install git)") from None
        self._record(shown, result, time.monotonic() - started)
        if result.returncode != 0:
            raise CommandFailed(f"git {shlex.join(args)} exited with code "
                                f"{result.returncode}: {_last_line(result.stderr)}")
        return result
