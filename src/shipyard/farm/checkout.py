"""Put the source of one commit into a clean directory, quickly.

The worker keeps one mirror clone per repository URL and fetches into it only when a
requested commit is missing; each build then gets a fresh directory holding exactly the
commit's tree (``git archive``), never a reused work tree with leftovers of another build.
That costs one git process per build instead of a full clone, which matters for a farm of
small packages.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import subprocess
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.fsutil import file_lock

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class CheckoutError(ShipyardError):
    """The commit could not be fetched or unpacked (the message says which and why)."""


def _thread_lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


Track = Callable[[subprocess.Popen[bytes] | None], None]


# Transports a build request may name. Not ``ext::`` (runs a command) nor anything else
# git might grow: the URL comes over the network from a hook token.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C",
           "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh"}


def _git(args: list[str], *, track: Track, cwd: Path | None = None,
         stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, **GIT_ENV)
    proc = subprocess.Popen(["git", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.PIPE, start_new_session=True)
    track(proc)
    try:
        out, err = proc.communicate()
    finally:
        track(None)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@functools.lru_cache(maxsize=256)
def mirror_path(cache: Path, url: str) -> Path:
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]
    return cache / f"{digest}.git"


def _has_commit(mirror: Path, commit: str, track: Track) -> bool:
    result = _git(["--git-dir", str(mirror), "cat-file", "-e", f"{commit}^{{commit}}"],
                  track=track)
    return result.returncode == 0


def ensure_commit(cache: Path, url: str, commit: str, track: Track) -> Path:
    """A mirror of ``url`` that holds ``commit`` (cloned or fetched as needed)."""
    mirror = mirror_path(cache, url)
    cache.mkdir(parents=True, exist_ok=True)
    with _thread_lock(str(mirror)), file_lock(str(mirror) + ".lock", timeout=600,
                                               what=f"the mirror of {url}"):
        if not (mirror / "HEAD").exists():
            tmp = mirror.with_name(mirror.name + f".tmp{os.getpid()}")
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp)
            result = _git(["clone", "--mirror", "--quiet", url, str(tmp)], track=track)
            if result.returncode != 0:
                raise CheckoutError(f"git clone {url} failed: {_first_line(result.stderr)}")
            os.replace(tmp, mirror)
        elif not _has_commit(mirror, commit, track):
            result = _git(["--git-dir", str(mirror), "fetch", "--quiet", "--prune", "origin",
                           "+refs/*:refs/*"], track=track)
            if result.returncode != 0:
                raise CheckoutError(f"git fetch {url} failed: {_first_line(result.stderr)}")
        if not _has_commit(mirror, commit, track):
            raise CheckoutError(f"commit {commit} is not in {url}")
    return mirror


def export_tree(cache: Path, url: str, commit: str, dest: Path, track: Track) -> None:
    """Write the tree of ``commit`` into the empty directory ``dest``."""
    mirror = mirror_path(cache, url)
    if not (mirror / "HEAD").exists():
        mirror = ensure_commit(cache, url, commit, track)
    dest.mkdir(parents=True, exist_ok=True)
    for round_ in range(2):
        env = dict(os.environ, **GIT_ENV)
        proc = subprocess.Popen(
            ["git", "--git-dir", str(mirror), "archive", "--format=tar", commit],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        track(proc)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            problem = None
            try:
                with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                    tar.extractall(dest, filter="data")
            except tarfile.ReadError:
                problem = "no archive"  # git printed nothing: unknown commit
            except (tarfile.TarError, OSError) as exc:
                problem = f"cannot unpack: {exc}"
            err = proc.stderr.read()
            code = proc.wait()
        finally:
            with contextlib.suppress(Exception):
                proc.stdout.close()  # type: ignore[union-attr]
                proc.stderr.close()  # type: ignore[union-attr]
            track(None)
        if code == 0 and problem is None:
            return
        if round_ == 0 and code != 0:
            ensure_commit(cache, url, commit, track)  # fetch the missing commit, try again
            continue
        raise CheckoutError(f"cannot check out {commit} of {url}: "
                            f"{problem or _first_line(err)}")


def commit_time(cache: Path, url: str, commit: str, track: Track) -> int:
    """The committer time of ``commit`` (UNIX seconds): the build's ``SOURCE_DATE_EPOCH``, so
    building the same commit again gives the same bytes (the commit is in the mirror once
    :func:`export_tree` has run)."""
    result = _git(["--git-dir", str(mirror_path(cache, url)), "log", "-1", "--format=%ct",
                   commit], track=track)
    text = result.stdout.decode("ascii", "replace").strip()
    if result.returncode != 0 or not text.isdigit():
        raise CheckoutError(f"cannot read the time of commit {commit}: "
                            f"{_first_line(result.stderr)}")
    return int(text)
