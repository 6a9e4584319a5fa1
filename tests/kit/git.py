"""git as a developer runs it, with a fixed identity and branch name."""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT_ID = ["-c", "user.name=Dev Eloper", "-c", "user.email=dev@example.org",
          "-c", "init.defaultBranch=master", "-c", "advice.detachedHead=false"]


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result
