"""``pkg pack``: turn a package source directory into a reproducible archive.

The same input must give the same bytes, on any machine and at any time, so that the
repository's "one coordinate, one content" rule can compare uploads by digest and a
rebuild can be checked against the published archive. So: members in a fixed order
(``shipyard.toml`` first, so a reader finds the manifest without inflating the rest; then
the paths sorted), mtime ``SOURCE_DATE_EPOCH`` or 0, owner 0/0 without names, modes reduced
to 0755/0644 by the owner's exec bit, a gzip header without name or time, zstd without
threads. The tree may hold regular files and directories only (see
:mod:`shipyard.formats.archive`); symlinks are refused with the path named.

With a ``[build] command`` the command runs via ``/bin/sh`` in the source directory with
``SHIPYARD_DESTDIR`` set to a fresh directory, and that directory is packed; its output is
streamed line by line to ``log`` (the farm worker passes the build log). A caller may
pass a ``runner`` that decides how the command is started (the farm worker's runs it in a
bubblewrap sandbox, see :mod:`shipyard.farm.sandbox`); by default it runs with the caller's
environment, as ``make`` would.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from shipyard.errors import ShipyardError
from shipyard.formats.archive import COMPRESSIONS, RESERVED_DIR, check_name_size
from shipyard.fsutil import fsync_dir, walk
from shipyard.manifest import MANIFEST_NAME, Manifest, load_manifest

SKIP_DIRS = {".git", "__pycache__"}
SKIP_SUFFIXES = (".pyc",)
GZIP_LEVEL = 6
ZSTD_LEVEL = 10


@dataclass
class BuildCall:
    """How to start one ``[build] command``: ``argv`` in ``cwd`` with exactly ``env``, killed
    after ``timeout`` seconds (None: no limit; ``timeout_why`` names the limit)."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    timeout: float | None = None
    timeout_why: str = "build.timeout"


BuildVars = dict[str, str]
# (manifest, source directory, destdir, the build variables) -> the call to make
Runner = Callable[[Manifest, Path, Path, BuildVars], BuildCall]


def build_vars(manifest: Manifest, source: Path, destdir: Path,
               source_date_epoch: int | None) -> BuildVars:
    """The variables every build sees: the manifest's ``[build] env`` and ``SHIPYARD_*``."""
    assert manifest.build is not None
    env = dict(manifest.build.env)
    env["SHIPYARD_DESTDIR"] = str(destdir)
    env["SHIPYARD_SOURCE_DIR"] = str(source.absolute())
    env["SHIPYARD_PACKAGE"] = str(manifest.coord)
    if source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
    return env


def local_runner(manifest: Manifest, source: Path, destdir: Path, env: BuildVars) -> BuildCall:
    """``pkg pack`` on the developer's machine: the command runs with their environment."""
    assert manifest.build is not None
    return BuildCall(["/bin/sh", "-c", manifest.build.command], {**os.environ, **env}, source,
                     manifest.build.timeout)


def pack_directory(
    src_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    compression: str = "gz",
    log: IO[str] | None = None,
    durable: bool = True,
    manifest: Manifest | None = None,
    runner: Runner = local_runner,
    work_dir: Path | None = None,
    source_date_epoch: int | None = None,
) -> Path:
    """Build (when the manifest says how) and pack ``src_dir``; returns the archive path.

    ``durable=False`` skips the fsyncs: for an archive that is uploaded at once and then
    thrown away with its build directory (a farm worker's), a crash loses the build either
    way, and the fsyncs are milliseconds on every build's critical path. ``manifest`` is
    ``src_dir``'s manifest when the caller has loaded it already (the farm worker checks it
    against the build request first): parsing it again is a cost on every build.
    ``work_dir`` holds ``$SHIPYARD_DESTDIR`` (default: the system's temporary directory);
    ``source_date_epoch`` overrides the environment's ``SOURCE_DATE_EPOCH`` (the farm worker
    passes the commit's time, so a rebuild gives the same bytes)."""
    if compression not in COMPRESSIONS:
        raise ShipyardError(f"unknown compression {compression!r} (expected gz or zst)")
    source = Path(src_dir)
    if not source.is_dir():
        raise ShipyardError(f"{source}: not a directory")
    if manifest is None:
        manifest = load_manifest(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / manifest.coord.archive_name(compression)
    mtime = _mtime() if source_date_epoch is None else max(0, source_date_epoch)
    if manifest.build is None:
        _write_archive(source, manifest, target, compression, durable, mtime)
        return target
    with tempfile.TemporaryDirectory(prefix="shipyard-destdir-", dir=work_dir) as destdir:
        variables = build_vars(manifest, source, Path(destdir), source_date_epoch)
        _run_build(manifest, runner(manifest, source, Path(destdir), variables), log)
        built = Path(destdir)
        placed = built / MANIFEST_NAME
        if placed.is_symlink() or (placed.exists() and not placed.is_file()):
            raise ShipyardError(f"build of {manifest.coord}: $SHIPYARD_DESTDIR/{MANIFEST_NAME} "
                                "is not a regular file")
        if placed.exists():
            inner = load_manifest(placed)
            if inner.coord != manifest.coord:
                raise ShipyardError(f"build of {manifest.coord}: the built {MANIFEST_NAME} "
                                    f"names {inner.coord}")
        else:
            shutil.copyfile(source / MANIFEST_NAME, placed)
        _write_archive(built, manifest, target, compression, durable, mtime)
    return target


def _run_build(manifest: Manifest, call: BuildCall, log: IO[str] | None) -> None:
    tail: collections.deque[str] = collections.deque(maxlen=200)
    try:
        proc = subprocess.Popen(
            call.argv, cwd=call.cwd, env=call.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise ShipyardError(f"build of {manifest.coord}: cannot run {call.argv[0]}: "
                            f"{exc.strerror or exc}") from None
    assert proc.stdout is not None
    timeout = call.timeout
    timer = None
    if timeout:
        import threading

        timer = threading.Timer(timeout, _kill_group, args=(proc,))
        timer.daemon = True
        timer.start()
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            if line.strip():
                tail.append(line.strip())
            if log is not None:
                log.write(line)
                log.flush()
        code = proc.wait()
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        if timer is not None:
            timer.cancel()
        proc.stdout.close()
    if code != 0:
        cause = reason_line(tail)
        why = f"killed after {timeout:g} s ({call.timeout_why})" if code < 0 and timeout else (
            f"exited with code {code}")
        detail = f"build command {why}" + (f": {cause[:300]}" if cause else "")
        raise BuildCommandFailed(f"build of {manifest.coord} failed: {detail}", detail)


class BuildCommandFailed(ShipyardError):
    """The build command failed; ``detail`` says why without the coordinate (the farm shows
    it next to the build, where the coordinate would only push the cause out of view)."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


# A line that states a problem, and lines that only point elsewhere (pip's "hint: See above
# for details.", "note: ..."): the reason is the last of the former, else the last line.
_PROBLEM = re.compile(r"(?i)(\berror\b|\berrors\b|\bfatal\b|\bfailed\b|\bfailure\b|"
                      r"exception\b|\bcannot\b|\bcan't\b|\bno such\b|\bnot found\b|"
                      r"\bdenied\b|\bmissing\b|\bundefined\b|\bno module named\b)")
_POINTER = re.compile(r"(?i)^[\W_]*(note|hint|info|see above|traceback \(most recent)")


def reason_line(lines: Sequence[str]) -> str:
    """The output line that most likely names the cause of a failure."""
    kept = [line.strip() for line in lines if line.strip()]
    for line in reversed(kept):
        if _PROBLEM.search(line) and not _POINTER.match(line):
            return line
    return kept[-1] if kept else ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _collect(root: Path) -> list[tuple[str, Path, bool]]:
    """``(archive name, path, is_dir)`` of every entry to pack, manifest first then sorted."""
    entries: list[tuple[tuple[str, ...], str, Path, bool]] = []
    for dirpath, dirnames, filenames in walk(root):  # no recursion: any depth is fine
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        keep = []
        for name in dirnames:
            path = here / name
            if name in SKIP_DIRS:
                continue
            if path.is_symlink():
                raise ShipyardError(f"{path}: symlinks cannot be packed (a package holds "
                                    "regular files and directories only)")
            if rel_dir == Path(".") and name == RESERVED_DIR:
                raise ShipyardError(f"{path}: {RESERVED_DIR}/ is reserved for the installer")
            keep.append(name)
            rel = (rel_dir / name).as_posix()
            check_name_size(rel, str(root))
            entries.append((tuple(rel.split("/")), rel, path, True))
        dirnames[:] = keep
        for name in filenames:
            if name.endswith(SKIP_SUFFIXES):
                continue
            path = here / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                raise ShipyardError(f"{path}: symlinks cannot be packed (a package holds "
                                    "regular files and directories only)")
            if not stat.S_ISREG(info.st_mode):
                raise ShipyardError(f"{path}: not a regular file (cannot be packed)")
            rel = (rel_dir / name).as_posix()
            check_name_size(rel, str(root))
            entries.append((tuple(rel.split("/")), rel, path, False))
    entries.sort(key=lambda entry: (entry[1] != MANIFEST_NAME, entry[0]))
    return [(rel, path, is_dir) for _key, rel, path, is_dir in entries]


def _mtime() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        raise ShipyardError(f"SOURCE_DATE_EPOCH={value!r} is not an integer") from None


def _write_archive(root: Path, manifest: Manifest, target: Path, compression: str,
                   durable: bool, mtime: int) -> None:
    """Write the archive to a temporary file beside ``target`` and rename it over."""
    entries = _collect(root)
    if not entries or entries[0][0] != MANIFEST_NAME or entries[0][2]:
        raise ShipyardError(f"{root}: no {MANIFEST_NAME} to pack")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            if compression == "zst":
                import zstandard

                compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True,
                                                      threads=0)
                with compressor.stream_writer(raw, closefd=False) as stream:
                    _write_tar(stream, entries, mtime)
            else:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                   compresslevel=GZIP_LEVEL) as stream:
                    _write_tar(stream, entries, mtime)
            raw.flush()
            if durable:
                os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(target.parent)


def _write_tar(stream: IO[bytes], entries: list[tuple[str, Path, bool]], mtime: int) -> None:
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, path, is_dir in entries:
            info = tarfile.TarInfo(rel)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if is_dir:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                mode = os.fstat(handle.fileno()).st_mode
                info.size = size
                info.mode = 0o755 if mode & stat.S_IXUSR else 0o644
                tar.addfile(info, _Exact(handle, size, path))


class _Exact:
    """A file that must deliver exactly the size it had when it was opened; a file that
    grows or shrinks while being packed would otherwise corrupt the archive silently."""

    def __init__(self, handle: IO[bytes], size: int, path: Path) -> None:
        self._handle = handle
        self._left = size
        self._path = path

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._handle.read(want)
        if len(data) != want:
            raise ShipyardError(f"{self._path}: changed while it was being packed")
        self._left -= len(data)
        return data
