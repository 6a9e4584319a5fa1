"""The archive rules as data and small checks: the caps, the member kinds that are
refused, the package archive's file name and what a member name may be.

:mod:`.archivereader` applies them while it streams an archive; ``pkg pack`` applies the
name rules to a tree before it becomes an archive. The full list of rules is in
:mod:`shipyard.formats.archive`.
"""

from __future__ import annotations

import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ArchiveError

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
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
COMPRESSIONS = ("gz", "zst")
CHUNK = 1 << 20

EXTENDED_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                   tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
REFUSED_KINDS = {
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
        return cls(settings.pkg.max_members, settings.pkg.max_bytes,
                   settings.pkg.max_ratio)


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


def check_name(raw: str, where: str) -> str:
    """The member's normalised path, or a refusal saying what is wrong with the name."""
    if raw.startswith("/"):
        raise ArchiveError(f"{where}: member {raw!r} has an absolute path")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveError(f"{where}: member {raw!r} has a name that is not UTF-8") from None
    if CONTROL_CHARS.search(raw):
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
