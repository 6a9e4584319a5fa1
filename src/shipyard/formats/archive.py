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
  trailer, a truncated zstd frame fails the block walk of
  :func:`~.archivestreams.check_zstd_frame`; a second gzip member or zstd frame, or
  anything after the first, is refused, and after the tar end-of-archive marker only zero
  padding may follow;
- names at most :data:`MAX_DEPTH` components deep, each component at most
  :data:`MAX_NAME_BYTES` bytes, the whole path at most :data:`MAX_PATH_BYTES` bytes (UTF-8);
- ``shipyard.toml`` at the root, valid per :func:`shipyard.manifest.parse_manifest`, and
  the file name must be exactly ``<id>-<version>.tar.<gz|zst>`` of that manifest.

This module is the face: the rules above, a full check (:func:`scan_archive`,
:func:`inspect_archive`) and the names other stages use. The wall itself is in three parts:
:mod:`.archiverules` (caps, kinds, names), :mod:`.archivestreams` (the stream wrappers:
one gzip member, a whole zstd frame, the bytes behind the tar end marker, capped extended
headers) and :mod:`.archivereader` (the streaming pass that applies the rules).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

from shipyard.errors import ArchiveError
from shipyard.formats.archivereader import ArchiveReader
from shipyard.formats.archiverules import (
    CHUNK,
    COMPRESSIONS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_MEMBERS,
    DEFAULT_MAX_RATIO,
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    MAX_TRAILER_BYTES,
    RATIO_FLOOR,
    RESERVED_DIR,
    Limits,
    Member,
    check_name_size,
    compression_of,
)
from shipyard.manifest import MANIFEST_NAME, Manifest

__all__ = [
    "CHUNK", "COMPRESSIONS", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_MEMBERS", "DEFAULT_MAX_RATIO",
    "MAX_DEPTH", "MAX_HEADER_BYTES", "MAX_MANIFEST_BYTES", "MAX_NAME_BYTES",
    "MAX_PATH_BYTES", "MAX_TRAILER_BYTES", "RATIO_FLOOR", "RESERVED_DIR", "ArchiveReader",
    "Limits", "Member", "Scan", "check_name_size", "compression_of", "inspect_archive",
    "scan_archive",
]


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
