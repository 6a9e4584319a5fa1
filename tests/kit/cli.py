"""The real ``shipyard`` command in a subprocess, and what a test checks of its failures."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHIPYARD = [sys.executable, "-m", "shipyard.cli.main"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120,
        input: str | None = None, cwd: Path | None = None) -> Result:
    """``shipyard *args`` with ``env``; with ``check``, a non-zero exit fails the test
    with both outputs."""
    proc = subprocess.run([*SHIPYARD, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, input=input, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"shipyard {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return Result(proc.returncode, proc.stdout, proc.stderr)


def one_line_error(result: Any, code: int = 1) -> str:
    """The command failed with ``code`` and printed exactly one error line."""
    assert result.returncode == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shipyard: error: "), result.stderr
    return lines[0]
