"""Package archives: open a ``.tar.gz``/``.tar.zst`` and check every member.

An archive comes from a network, an upload form or a build worker, so every byte of it is
hostile until checked. :class:`ArchiveReader` streams the archive once and checks each
member *before* anyone sees it; :func:`inspect_archive` runs it to the end and returns the
manifest, and the installer runs the same reader while extracting (with tarfile's ``data``
filter as a second wall), so the rules live in one place.

The rules (each refusal is one :class:`ArchiveError` line naming the archive and member):

- only regular files and directories. **No links at all**, not even links that stay
  inside the tree: a package is a plain tree, ``pkg pack`` refuses symlinks too, and a
  link that is harmless in one place becomes an escape after the next ``..`` bug. No
  devices, fifos, sparse or contiguous files;
- member names are relative, UTF-8, free of control characters, with no empty, ``.`` or
  ``..`` components (a leading ``./`` is accepted and dropped, as GNU tar writes it);
  ``.shipyard/`` is reserved for the installer's own record;
- no setuid, setgid or sticky bits; no member twice; no member below a regular file;
- caps: member count, total unpacked size, and the ratio of unpacked to packed size once
  the archive unpacks to more than :data:`RATIO_FLOOR` bytes (a decompression bomb is
  refused from its headers, before its data is inflated). Extended header records (pax,
  GNU long names) are capped at :data:`MAX_HEADER_BYTES` before tarfile reads them;
- the compressed stream must be complete and alone: a truncated gzip fails its length/CRC
  trailer, a truncated zstd frame fails the block walk of :func:`_check_zstd_frame`; a
  second gzip member or zstd frame, or anything after the first, is refused, and after
  the tar end-of-archive marker only zero padding may follow;
- names at most :data:`MAX_DEPTH` components deep, each component at most
  :data:`MAX_NAME_BYTES` bytes, the whole path at most :data:`MAX_PATH_BYTES` bytes (UTF-8);
- ``shipyard.toml`` at the root, valid per :func:`shipyard.manifest.parse_manifest`, and
  the file name must be exactly ``<id>-<version>.tar.<gz|zst>`` of that manifest.

Longer than this project's usual 400 lines on purpose: the rules, the reader that applies
them and the stream wrappers it needs (one gzip member, the bytes behind the tar end
marker) are one wall, and a reviewer should see all of it in one file.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import stat
import struct
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from shipyard.errors import ArchiveError, ManifestError
from shipyard.manifest import MANIFEST_NAME, Manifest, parse_manifest

DEFAULT_MAX_MEMBERS = 100_000
DEFAULT_MAX_BYTES = 8 << 30
DEFAULT_MAX_RATIO = 200
RATIO_FLOOR = 32 << 20
MAX_HEADER_BYTES = 1 << 20
MAX_MANIFEST_BYTES = 1 << 20
MAX_TRAILER_BYTES = 1 << 20
# Member names: deep or long enough to break a node after install (a tree ~1,000 levels
# deep defeated every recursive tree walk; a name over NAME_MAX or a path near PATH_MAX
# fails with ENAMETOOLONG once it is joined to the software root), so they are refused
# where the archive is first checked: at upload, publish and install alike. The path cap
# leaves 1,023 of Linux's 4,095 path bytes for the software root and the coordinate.
MAX_DEPTH = 128
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 3072
RESERVED_DIR = ".shipyard"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
COMPRESSIONS = ("gz", "zst")
CHUNK = 1 << 20

_EXTENDED_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                   tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_KINDS = {
    tarfile.SYMTYPE: "a symlink",
    tarfile.LNKTYPE: "a hardlink",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a fifo",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


@dataclass(frozen=True)
class Limits:
    """Caps against archives that would exhaust disk, memory or inodes."""

    max_members: int = DEFAULT_MAX_MEMBERS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_ratio: int = DEFAULT_MAX_RATIO

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(int(settings.get("pkg.max_members")), int(settings.get("pkg.max_bytes")),
                   int(settings.get("pkg.max_ratio")))


@dataclass(frozen=True)
class Member:
    """A checked member: its normalised relative path, kind, size and file mode."""

    path: str
    is_dir: bool
    size: int
    mode: int


def compression_of(path: str | os.PathLike[str]) -> str:
    """``gz`` or ``zst`` from the file name; anything else is refused."""
    name = Path(path).name
    for compression in COMPRESSIONS:
        if name.endswith(f".tar.{compression}"):
            return compression
    raise ArchiveError(f"{name}: not a package archive name (expected <id>-<version>.tar.gz "
                       "or .tar.zst)")


def _gunzip(fileobj: IO[bytes]) -> IO[bytes]:
    """A reader of exactly one gzip member (see :class:`_GzipMember`), buffered."""
    return io.BufferedReader(_GzipMember(fileobj), CHUNK)


class _GzipMember(io.RawIOBase):
    """Inflates one gzip member and refuses anything after it.

    ``gzip.GzipFile`` reads concatenated members as one stream, so a second member
    appended to a package (or anything that looks like one) would be inflated and then
    ignored after the tar end marker. A package is one member: after its CRC and length
    trailer the file must end. Inflating uses ISA-L's zlib-compatible decompressor when
    installed (about 3 times faster than zlib, a tenth of a large install), else zlib's;
    both check the trailer. Output per call is capped, so a bomb never inflates into
    memory at once.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        inflater: Any = zlib
        with contextlib.suppress(ImportError):
            from isal import isal_zlib

            inflater = isal_zlib
        self._inflate = inflater.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _read(self, size: int) -> bytes:
        inflate = self._inflate
        while not self._done:
            if inflate.eof:
                if inflate.unused_data or self._raw.read(1):
                    raise gzip.BadGzipFile("data after the end of the gzip member")
                self._done = True
                break
            data = inflate.unconsumed_tail or self._raw.read(CHUNK)
            if not data:
                raise EOFError("compressed file ended before the end-of-stream marker")
            out = inflate.decompress(data, size)
            if out:
                return out
        return b""


class _TailKeeper:
    """What tarfile reads from: remembers the last two blocks it handed out.

    tarfile stops at the end-of-archive marker with up to a record of read-ahead in its
    own buffer; those bytes are checked from here (they must be zero padding, like
    everything after the marker), so nothing can hide behind the marker.
    """

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.delivered = 0
        self._previous = b""
        self._last = b""

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.delivered += len(data)
        self._previous, self._last = self._last, data
        return data

    def unread_after(self, offset: int) -> bytes | None:
        """The bytes handed out after ``offset``, ``None`` if no longer remembered."""
        count = self.delivered - offset
        tail = self._previous + self._last
        if count < 0 or count > len(tail):
            return None
        return tail[len(tail) - count:] if count else b""


class _GuardedTarInfo(tarfile.TarInfo):
    """Refuses oversized extended headers before tarfile reads them into memory.

    tarfile reads a pax or GNU long-name header's whole body with one ``read``; a header
    claiming gigabytes would be a memory bomb that no later check could stop.
    """

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_TYPES and self.size > MAX_HEADER_BYTES:
            raise ArchiveError(f"extended tar header of {self.size} bytes "
                               f"(more than {MAX_HEADER_BYTES})")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


class _HashingFile(io.RawIOBase):
    """A read-only view of the compressed file that hashes what passes through it, so a
    local archive's sha256 comes out of the same single read as its members."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._handle.readinto(buffer) or 0  # type: ignore[attr-defined]
        if n:
            self.digest.update(memoryview(buffer)[:n])
            self.count += n
        return n


def _check_zstd_frame(handle: IO[bytes], where: str) -> None:
    """Walk the zstd frame's block headers: refuses a truncated or trailing stream.

    The zstandard streaming readers return a short stream without an error when the input
    ends early, so completeness is checked from the frame structure (RFC 8878 §3.1.1),
    which needs no decompression: block headers carry their sizes and a last-block flag.
    """
    size = os.fstat(handle.fileno()).st_size
    handle.seek(0)
    header = handle.read(18)
    truncated = ArchiveError(f"{where}: truncated or damaged zstd stream")
    if len(header) < 6 or header[:4] != b"\x28\xb5\x2f\xfd":
        raise ArchiveError(f"{where}: not a zstd stream")
    descriptor = header[4]
    fcs_flag = descriptor >> 6
    single_segment = (descriptor >> 5) & 1
    checksum = (descriptor >> 2) & 1
    dict_id_size = (0, 1, 2, 4)[descriptor & 3]
    fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    offset = 5 + (0 if single_segment else 1) + dict_id_size + fcs_size
    while True:
        handle.seek(offset)
        raw = handle.read(3)
        if len(raw) < 3:
            raise truncated
        (value,) = struct.unpack("<I", raw + b"\x00")
        last, kind, block_size = value & 1, (value >> 1) & 3, value >> 3
        if kind == 3:
            raise truncated
        offset += 3 + (1 if kind == 1 else block_size)
        if offset > size:
            raise truncated
        if last:
            break
    offset += 4 if checksum else 0
    if offset > size:
        raise truncated
    if offset < size:
        raise ArchiveError(f"{where}: data after the end of the zstd frame")
    handle.seek(0)


def _check_name(raw: str, where: str) -> str:
    """The member's normalised path, or a refusal saying what is wrong with the name."""
    if raw.startswith("/"):
        raise ArchiveError(f"{where}: member {raw!r} has an absolute path")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveError(f"{where}: member {raw!r} has a name that is not UTF-8") from None
    if _CONTROL.search(raw):
        raise ArchiveError(f"{where}: member {raw!r} has a control character in its name")
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/") if name not in ("", ".") else name
    if name in ("", "."):
        return ""
    parts = name.split("/")
    if ".." in parts:
        raise ArchiveError(f"{where}: member {raw!r} has a '..' path component")
    if any(part in ("", ".") for part in parts) or "\\" in name:
        raise ArchiveError(f"{where}: member {raw!r} has a non-canonical path")
    if parts[0] == RESERVED_DIR:
        raise ArchiveError(f"{where}: member {raw!r} is inside {RESERVED_DIR}/, which is "
                           "reserved for the installer")
    check_name_size(name, where)
    return name


def _shorten(name: str, keep: int = 60) -> str:
    """A long member name cut for an error line (the line must stay one readable line)."""
    return name if len(name) <= keep else f"{name[:keep]}...({len(name)} characters)"


def check_name_size(name: str, where: str) -> None:
    """Refuse names too deep or too long to be installed below any software root (also
    used by ``pkg pack``, so that such a tree is refused before it is an archive)."""
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        raise ArchiveError(f"{where}: member {_shorten(name)!r} is {len(parts)} levels deep "
                           f"(at most {MAX_DEPTH} allowed)")
    for part in parts:
        size = len(part.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            raise ArchiveError(f"{where}: member {_shorten(name)!r} has a name component of "
                               f"{size} bytes (at most {MAX_NAME_BYTES} allowed)")
    size = len(name.encode("utf-8"))
    if size > MAX_PATH_BYTES:
        raise ArchiveError(f"{where}: member {_shorten(name)!r} has a path of {size} bytes "
                           f"(at most {MAX_PATH_BYTES} allowed)")


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
        self._handle: IO[bytes] | None = None
        self._stream: IO[bytes] | None = None
        self._tar: tarfile.TarFile | None = None
        self._tail: _TailKeeper | None = None
        self._packed_size = 0
        self._raw: _HashingFile | None = None
        self.archive_sha256 = ""

    # -- opening and closing -----------------------------------------------------------

    def __enter__(self) -> ArchiveReader:
        try:
            self._handle = open(self.path, "rb")  # closed in close()
        except OSError as exc:
            raise ArchiveError(f"{self.path}: cannot open: {exc.strerror}") from None
        self._packed_size = os.fstat(self._handle.fileno()).st_size
        counting = self._raw = _HashingFile(self._handle)
        try:
            if self.compression == "zst":
                import zstandard

                _check_zstd_frame(self._handle, self.name)
                self._stream = zstandard.ZstdDecompressor().stream_reader(  # type: ignore
                    io.BufferedReader(counting, CHUNK), read_across_frames=False)
            else:
                self._stream = _gunzip(io.BufferedReader(counting, CHUNK))
            # tarfile's stream buffer copies what is left of it on every read, so a large
            # buffer makes thousands of small members quadratic; keep tar's record size.
            self._tail = _TailKeeper(self._stream)
            self._tar = tarfile.open(fileobj=self._tail, mode="r|",  # type: ignore[call-overload]
                                     tarinfo=_GuardedTarInfo, bufsize=tarfile.RECORDSIZE)
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
                yield member, info, _TranslatingReader(data, self)

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
        name = _check_name(info.name, where)
        shown = name or "."
        if info.type in _KINDS or info.sparse is not None:
            kind = _KINDS.get(info.type, "a sparse file")
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


@dataclass(frozen=True)
class Scan:
    """What a full check of an archive found: its manifest and longest member path."""

    manifest: Manifest
    longest_path: int
    sha256: str


def scan_archive(path: str | os.PathLike[str], limits: Limits | None = None) -> Scan:
    """Check every member of the archive at ``path``; nothing is written anywhere.

    Raises :class:`ArchiveError` with one line naming the archive and what is wrong.
    """
    with ArchiveReader(path, limits) as reader:
        for member, _info, data in reader.members():
            if data is not None and member.path != MANIFEST_NAME:
                _skip(data, member, reader)
        manifest = reader.finish()
        return Scan(manifest, reader.longest_path, reader.archive_sha256)


def inspect_archive(
    path: str | os.PathLike[str],
    *,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_ratio: int = DEFAULT_MAX_RATIO,
) -> Manifest:
    """Check every member of the archive at ``path`` and return its manifest.

    Raises :class:`ArchiveError` with one line naming the archive and what is wrong.
    Nothing is written anywhere; the whole archive is read once.
    """
    return scan_archive(path, Limits(max_members, max_bytes, max_ratio)).manifest


def _skip(data: IO[bytes], member: Member, reader: ArchiveReader) -> None:
    """Read a member's data to the end so a short (truncated) member is noticed."""
    remaining = member.size
    while remaining > 0:
        block = data.read(min(CHUNK, remaining))
        if not block:
            raise ArchiveError(f"{reader.name}: truncated or damaged archive (short member "
                               f"{member.path!r})")
        remaining -= len(block)
