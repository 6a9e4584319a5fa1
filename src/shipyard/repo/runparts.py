"""run-parts with debianutils semantics, in Python.

Implemented here instead of calling ``/usr/bin/run-parts`` so the behaviour does not depend
on which run-parts a host has (debianutils, busybox and Red Hat's crontabs differ on names
with dots and on error handling), and so the publisher gets the failing path and code
back as data. The rules follow debianutils 5.x with ``--exit-on-error``:

* only names matching ``^[A-Za-z0-9_-]+$`` run: ``foo.sh``, ``.hidden``, ``foo~`` and
  ``foo.dpkg-old`` are skipped silently;
* in byte order of the names (``LC_ALL=C``), not locale order;
* only executable regular files (symlinks are followed, as ``stat`` does; a dangling
  symlink is an error at its place in the order, as with ``--exit-on-error``);
* each is ``execv``-ed directly, never through a shell, with umask 022 and the given
  arguments; standard input is ``/dev/null``;
* the first failure stops the run and is reported as
  ``<path> exited with return code N`` (or ``terminated by signal N``).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from shipyard.errors import ShipyardError

NAME_RE = re.compile(rb"[A-Za-z0-9_-]+")


class RunPartsError(ShipyardError):
    """A part failed; ``path`` and ``returncode`` say which and how."""

    def __init__(self, message: str, path: Path, returncode: int) -> None:
        super().__init__(message)
        self.path = path
        self.returncode = returncode


def _walk(directory: str | os.PathLike[str]) -> list[tuple[Path, str | None]]:
    """Every valid name in byte order with ``None`` (run it), ``"skip"`` or an error."""
    base = Path(directory)
    try:
        names = os.listdir(os.fsencode(base))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise ShipyardError(f"{base} is not a directory") from None
    found: list[tuple[Path, str | None]] = []
    for raw in sorted(names):  # bytes sort = byte order
        if not NAME_RE.fullmatch(raw):
            continue
        path = base / os.fsdecode(raw)
        try:
            info = os.stat(path)
        except OSError as exc:  # a dangling symlink: debianutils fails here too
            found.append((path, f"failed to stat component {path}: {exc.strerror}"))
            continue
        runnable = stat.S_ISREG(info.st_mode) and os.access(path, os.X_OK)
        found.append((path, None if runnable else "skip"))
    return found


def select_parts(directory: str | os.PathLike[str]) -> list[Path]:
    """The files run-parts would run, in the order it would run them (``--test``)."""
    return [path for path, status in _walk(directory) if status is None]


def run_parts(directory: str | os.PathLike[str], args: Sequence[str] = (),
              env: Mapping[str, str] | None = None, *, stdout: int | None = 2) -> list[Path]:
    """Run every part of ``directory``; return the parts run, raise at the first failure.

    ``stdout`` defaults to our standard error so a hook's chatter never mixes into output a
    caller parses (``repo publish --json``); ``None`` inherits it.
    """
    ran: list[Path] = []
    for path, status in _walk(directory):
        if status == "skip":
            continue
        if status is not None:
            raise RunPartsError(status, path, 1)
        try:
            proc = subprocess.run(
                [str(path), *args], env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL, stdout=stdout, umask=0o022, check=False,
                close_fds=True,
            )
        except OSError as exc:
            raise RunPartsError(f"failed to exec {path}: {exc.strerror}", path, 1) from None
        ran.append(path)
        if proc.returncode > 0:
            raise RunPartsError(f"{path} exited with return code {proc.returncode}",
                                path, proc.returncode)
        if proc.returncode < 0:
            raise RunPartsError(f"{path} terminated by signal {-proc.returncode}",
                                path, proc.returncode)
    return ran
