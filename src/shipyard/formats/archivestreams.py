"""Stream wrappers the archive reader stacks under tarfile, each closing one hole:

- :class:`GzipMember` inflates exactly one gzip member (a second one would hide bytes
  from every check) and caps what one read inflates;
- :func:`check_zstd_frame` proves a zstd stream complete and alone from its block headers;
- :class:`HashingFile` hashes the compressed bytes in the same single read;
- :class:`TailKeeper` keeps what tarfile read ahead past the end-of-archive marker, so
  the reader can check it is only zero padding;
- :class:`GuardedTarInfo` refuses oversized pax/GNU long-name headers before tarfile
  reads them into memory.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import struct
import tarfile
import zlib
from typing import IO, Any

from shipyard.errors import ArchiveError
from shipyard.formats.archiverules import CHUNK, EXTENDED_TYPES, MAX_HEADER_BYTES


def gunzip(fileobj: IO[bytes]) -> IO[bytes]:
    """A reader of exactly one gzip member (see :class:`GzipMember`), buffered."""
    return io.BufferedReader(GzipMember(fileobj), CHUNK)


class GzipMember(io.RawIOBase):
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


class TailKeeper:
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


class GuardedTarInfo(tarfile.TarInfo):
    """Refuses oversized extended headers before tarfile reads them into memory.

    tarfile reads a pax or GNU long-name header's whole body with one ``read``; a header
    claiming gigabytes would be a memory bomb that no later check could stop.
    """

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in EXTENDED_TYPES and self.size > MAX_HEADER_BYTES:
            raise ArchiveError(f"extended tar header of {self.size} bytes "
                               f"(more than {MAX_HEADER_BYTES})")
        # _proc_member is tarfile's private per-member hook, which typeshed does not declare.
        return super()._proc_member(tarfile_)  # type: ignore[misc]


class HashingFile(io.RawIOBase):
    """A read-only view of the compressed file that hashes what passes through it, so a
    local archive's sha256 comes out of the same single read as its members."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._handle.readinto(buffer) or 0
        if n:
            self.digest.update(memoryview(buffer)[:n])
            self.count += n
        return n


def check_zstd_frame(handle: IO[bytes], where: str) -> None:
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
