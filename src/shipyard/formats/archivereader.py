"""The archive reader: one streaming pass that checks every member before anyone sees it.

Upload, publish, ``pkg info`` and install all read archives through
:class:`ArchiveReader`, so the rules of :mod:`shipyard.formats.archive` hold in one place;
the installer extracts from the same pass.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from shipyard.errors import ArchiveError, ManifestError
from shipyard.formats.archiverules import (
    CHUNK,
    MAX_MANIFEST_BYTES,
    MAX_TRAILER_BYTES,
    RATIO_FLOOR,
    REFUSED_KINDS,
    Limits,
    Member,
    check_name,
    compression_of,
)
from shipyard.formats.archivestreams import (
    GuardedTarInfo,
    HashingFile,
    TailKeeper,
    check_zstd_frame,
    gunzip,
)
from shipyard.manifest import MANIFEST_NAME, Manifest, parse_manifest


class ArchiveReader:
    """One streaming pass over an archive that checks every member before yielding it.

    Use as a context manager; iterate :meth:`members`, then call :meth:`finish` to check
    the end of the stream and get the manifest. Data of a yielded file must be read (or
    skipped) before the next member, as with any tar stream.
    """

    def __init__(self, path: str | os.PathLike[str], limits: Limits | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.limits = limits or Limits()
        self.compression = compression_of(self.path)
        self.manifest_bytes: bytes | None = None
        self.total_bytes = 0
        self.member_count = 0
        self.longest_path = 0  # bytes of the longest member path, for the installer
        self._files: set[str] = set()
        self._dirs: set[str] = set()
        self._implicit: set[str] = set()
        self._handle: io.BufferedReader | None = None
        self._stream: IO[bytes] | None = None
        self._tar: tarfile.TarFile | None = None
        self._tail: TailKeeper | None = None
        self._packed_size = 0
        self._raw: HashingFile | None = None
        self.archive_sha256 = ""

    # -- opening and closing -----------------------------------------------------------

    def __enter__(self) -> ArchiveReader:
        try:
            self._handle = open(self.path, "rb")  # closed in close()
        except OSError as exc:
            raise ArchiveError(f"{self.path}: cannot open: {exc.strerror}") from None
        self._packed_size = os.fstat(self._handle.fileno()).st_size
        counting = self._raw = HashingFile(self._handle)
        try:
            if self.compression == "zst":
                import zstandard

                check_zstd_frame(self._handle, self.name)
                self._stream = zstandard.ZstdDecompressor().stream_reader(
                    io.BufferedReader(counting, CHUNK), read_across_frames=False)
            else:
                self._stream = gunzip(io.BufferedReader(counting, CHUNK))
            # tarfile's stream buffer copies what is left of it on every read, so a large
            # buffer makes thousands of small members quadratic; keep tar's record size.
            self._tail = TailKeeper(self._stream)
            # TailKeeper has only read(): enough for a stream ("r|"), less than typeshed's
            # file protocol asks for.
            self._tar = tarfile.open(fileobj=self._tail, mode="r|",  # type: ignore[call-overload]
                                     tarinfo=GuardedTarInfo, bufsize=tarfile.RECORDSIZE)
        except BaseException as exc:
            self.close()
            raise self._translate(exc) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for thing in (self._tar, self._stream, self._handle):
            if thing is not None:
                # Closing after a refusal must never mask the refusal.
                with contextlib.suppress(Exception):
                    thing.close()
        self._tar = self._stream = self._handle = None

    def _translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, ArchiveError):
            if exc.message.startswith(self.name):
                return exc
            return ArchiveError(f"{self.name}: {exc.message}")
        if isinstance(exc, EOFError | tarfile.ReadError | tarfile.StreamError):
            detail = str(exc) or "unexpected end of data"
            if isinstance(exc, EOFError) or "unexpected end" in detail or "empty" in detail:
                return ArchiveError(f"{self.name}: truncated or damaged archive ({detail})")
            return ArchiveError(f"{self.name}: not a valid tar archive ({detail})")
        if isinstance(exc, gzip.BadGzipFile | zlib.error | OSError):
            return ArchiveError(f"{self.name}: damaged {self.compression} stream ({exc})")
        if type(exc).__module__ == "zstandard" or "Zstd" in type(exc).__name__:
            return ArchiveError(f"{self.name}: damaged zstd stream ({exc})")
        if type(exc).__name__ == "IsalError":
            return ArchiveError(f"{self.name}: damaged gz stream ({exc})")
        if isinstance(exc, UnicodeError | ValueError):
            return ArchiveError(f"{self.name}: malformed tar header ({exc})")
        return exc

    @property
    def packed_read(self) -> int:
        """Compressed bytes read so far (for progress bars)."""
        return self._raw.count if self._raw is not None else 0

    # -- the walk ----------------------------------------------------------------------

    def members(self) -> Iterator[tuple[Member, tarfile.TarInfo, IO[bytes] | None]]:
        """Checked members with a readable data stream for files (``None`` for dirs)."""
        assert self._tar is not None, "use ArchiveReader as a context manager"
        tar = self._tar
        while True:
            try:
                info = tar.next()
            except BaseException as exc:
                raise self._translate(exc) from None
            if info is None:
                return
            member = self._check(info)
            if member.path == "":
                continue
            if member.is_dir:
                yield member, info, None
                continue
            try:
                data = tar.extractfile(info)
            except BaseException as exc:
                raise self._translate(exc) from None
            assert data is not None
            if member.path == MANIFEST_NAME:
                body = self._read_all(data, info.size)
                self.manifest_bytes = body
                yield member, info, io.BytesIO(body)
            else:
                # A RawIOBase reads like a binary file; typeshed's IO is a nominal class.
                yield member, info, cast(IO[bytes], _TranslatingReader(data, self))

    def _read_all(self, data: IO[bytes], size: int) -> bytes:
        if size > MAX_MANIFEST_BYTES:
            raise ArchiveError(f"{self.name}: {MANIFEST_NAME} is larger than "
                               f"{MAX_MANIFEST_BYTES} bytes")
        try:
            body = data.read()
        except BaseException as exc:
            raise self._translate(exc) from None
        if len(body) != size:
            raise ArchiveError(f"{self.name}: truncated or damaged archive (short member "
                               f"{MANIFEST_NAME})")
        return body

    def _check(self, info: tarfile.TarInfo) -> Member:
        where = self.name
        self.member_count += 1
        limits = self.limits
        if self.member_count > limits.max_members:
            raise ArchiveError(f"{where}: more than {limits.max_members} members "
                               "(pkg.max_members)")
        name = check_name(info.name, where)
        shown = name or "."
        if info.type in REFUSED_KINDS or info.sparse is not None:
            kind = REFUSED_KINDS.get(info.type, "a sparse file")
            raise ArchiveError(f"{where}: member {shown!r} is {kind} (only regular files and "
                               "directories are allowed)")
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
            raise ArchiveError(f"{where}: member {shown!r} has unsupported type "
                               f"{info.type!r} (only regular files and directories)")
        if info.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
            raise ArchiveError(f"{where}: member {shown!r} has mode {info.mode:04o} "
                               "(setuid, setgid and sticky bits are refused)")
        is_dir = info.type == tarfile.DIRTYPE
        if is_dir and info.size:
            raise ArchiveError(f"{where}: directory {shown!r} has a size")
        if info.size < 0:
            raise ArchiveError(f"{where}: member {shown!r} has a negative size")
        self.total_bytes += info.size
        if self.total_bytes > limits.max_bytes:
            raise ArchiveError(f"{where}: unpacks to more than {limits.max_bytes} bytes "
                               "(pkg.max_bytes)")
        if (self.total_bytes > RATIO_FLOOR
                and self.total_bytes > limits.max_ratio * max(self._packed_size, 1)):
            raise ArchiveError(f"{where}: unpacks to more than {limits.max_ratio} times its "
                               "packed size (decompression bomb? see pkg.max_ratio)")
        if name == "":
            if not is_dir:
                raise ArchiveError(f"{where}: the archive root is not a directory")
            return Member("", True, 0, 0o755)
        if name in self._files or name in self._dirs:
            raise ArchiveError(f"{where}: member {name!r} appears twice")
        self.longest_path = max(self.longest_path, len(name.encode("utf-8")))
        parent = name.rpartition("/")[0]
        while parent:
            if parent in self._files:
                raise ArchiveError(f"{where}: member {name!r} is below the regular file "
                                   f"{parent!r}")
            if parent in self._implicit:
                break
            self._implicit.add(parent)
            parent = parent.rpartition("/")[0]
        if is_dir:
            self._dirs.add(name)
            return Member(name, True, 0, 0o755)
        if name in self._implicit:
            raise ArchiveError(f"{where}: member {name!r} is a file but other members are "
                               "below it")
        self._files.add(name)
        mode = 0o755 if info.mode & 0o100 else 0o644
        return Member(name, False, info.size, mode)

    def finish(self) -> Manifest:
        """Check the stream's end and the manifest; the archive is fully vetted after this."""
        assert self._stream is not None and self._tar is not None and self._tail is not None
        try:
            # After the end-of-archive marker only zero padding may follow: anything else
            # is data that no check above has seen.
            block = self._tail.unread_after(self._tar.offset)
            if block is None:
                raise ArchiveError(f"{self.name}: cannot check the end of the tar archive")
            trailer = 0
            while block:
                trailer += len(block)
                if block.count(0) != len(block):
                    raise ArchiveError(f"{self.name}: data after the end of the tar archive "
                                       "(only zero padding may follow it)")
                if trailer > MAX_TRAILER_BYTES:
                    raise ArchiveError(f"{self.name}: more than {MAX_TRAILER_BYTES} bytes "
                                       "after the end of the tar archive")
                block = self._stream.read(CHUNK)
            assert self._raw is not None
            while self._raw.read(CHUNK):
                pass
        except BaseException as exc:
            raise self._translate(exc) from None
        if self._raw.count != self._packed_size:
            raise ArchiveError(f"{self.name}: changed while it was read")
        self.archive_sha256 = self._raw.digest.hexdigest()
        if self.member_count == 0:
            raise ArchiveError(f"{self.name}: empty archive")
        if self.manifest_bytes is None:
            raise ArchiveError(f"{self.name}: no {MANIFEST_NAME} at the root of the archive")
        try:
            text = self.manifest_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise ArchiveError(f"{self.name}: {MANIFEST_NAME} is not UTF-8 text") from None
        try:
            manifest = parse_manifest(text, f"{self.name}:{MANIFEST_NAME}")
        except ManifestError as exc:
            raise ArchiveError(exc.message) from None
        expected = manifest.coord.archive_name(self.compression)
        if self.name != expected:
            raise ArchiveError(f"{self.name}: file name does not match its manifest "
                               f"({manifest.coord} must be named {expected})")
        return manifest


class _TranslatingReader(io.RawIOBase):
    """A member's data stream whose low-level errors become one-line ArchiveErrors."""

    def __init__(self, inner: IO[bytes], owner: ArchiveReader) -> None:
        self._inner = inner
        self._owner = owner

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except BaseException as exc:
            raise self._owner._translate(exc) from None

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
