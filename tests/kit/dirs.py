"""Directories the service user can reach."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
