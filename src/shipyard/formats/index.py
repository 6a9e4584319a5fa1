"""The repository's wire format: ``release.json`` and per-channel ``index.json``.

This module is the contract between the publisher (``shipyard.repo``) and every reader
(``shipyard.pkg`` on the nodes, the farm, the web UI). Layout as served::

    <url>/current/release.json          signed by release.json.sig
    <url>/generations/<serial>/release.json, .sig
    <url>/generations/<serial>/dists/<channel>/index.json
    <url>/pool/<group path>/<id>/<version>/<id>-<version>.tar.gz

A reader fetches ``current/release.json`` and its signature, checks the signature and
``valid_until``, and then fetches the indexes **by serial** from ``generations/<serial>/``
(like apt's Acquire-By-Hash): a publication that flips ``current`` in between cannot make
the reader combine a release with another generation's index. The release names every
index's size and sha256; every index entry names its archive's size and sha256.

All JSON is written with sorted keys and a trailing newline, so the same content gives the
same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from shipyard.coords import PackageCoord, Requirement, version_key
from shipyard.errors import CoordinateError, VerificationError
from shipyard.timeutil import utcnow

FORMAT = 1
RELEASE_NAME = "release.json"
SIGNATURE_NAME = "release.json.sig"


def dump_json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class PackageEntry:
    """One package as a channel index lists it."""

    group: str
    id: str
    version: str
    filename: str  # relative to the repository URL: pool/...
    size: int
    sha256: str
    summary: str = ""
    maintainer: str = ""
    requires: tuple[str, ...] = ()
    service: bool = False

    @property
    def coord(self) -> PackageCoord:
        return PackageCoord(self.group, self.id, self.version)

    def requirements(self) -> list[Requirement]:
        return [Requirement.parse(r) for r in self.requires]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["requires"] = list(self.requires)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> PackageEntry:
        try:
            entry = cls(
                group=str(data["group"]), id=str(data["id"]), version=str(data["version"]),
                filename=str(data["filename"]), size=int(data["size"]),
                sha256=str(data["sha256"]), summary=str(data.get("summary", "")),
                maintainer=str(data.get("maintainer", "")),
                requires=tuple(str(r) for r in data.get("requires", [])),
                service=bool(data.get("service", False)),
            )
            coord = entry.coord  # validates the coordinate grammar
        except (KeyError, TypeError, ValueError, CoordinateError) as exc:
            raise VerificationError(f"{where}: malformed package entry ({exc})") from None
        expected = pool_path(coord)
        if entry.filename != expected and entry.filename != pool_path(coord, "zst"):
            raise VerificationError(
                f"{where}: entry {coord} points at {entry.filename!r}, expected {expected!r}"
            )
        if len(entry.sha256) != 64 or entry.size < 0:
            raise VerificationError(f"{where}: entry {coord} has a malformed size or sha256")
        return entry


def pool_path(coord: PackageCoord, compression: str = "gz") -> str:
    """Where an archive lives in the repository, relative to its root."""
    return f"pool/{coord.relpath().as_posix()}/{coord.archive_name(compression)}"


@dataclass
class ChannelIndex:
    channel: str
    serial: int
    packages: list[PackageEntry] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        if _FAST_RENDER:
            return _render_index(self.channel, self.serial, _ordered(self.packages))
        ordered = sorted(self.packages, key=lambda p: (p.group, p.id, version_key(p.version)))
        return dump_json({
            "format": FORMAT,
            "channel": self.channel,
            "serial": self.serial,
            "packages": [p.to_dict() for p in ordered],
        })

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> ChannelIndex:
        try:
            parsed = _document(data)
            packages = [PackageEntry.from_dict(p, where) for p in parsed["packages"]]
            return cls(str(parsed["channel"]), int(parsed["serial"]), packages)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VerificationError(f"{where}: malformed index ({exc})") from None

    def versions_of(self, group: str, ident: str) -> dict[str, PackageEntry]:
        return {p.version: p for p in self.packages if p.group == group and p.id == ident}


# The publisher renders indexes of 10,000 packages on every run; json.dumps with ``indent``
# falls back to the pure-Python encoder (and ``asdict`` deep-copies), ~0.4 s for 10,000
# entries. This renderer writes the very same bytes as ``dump_json`` of ``to_dict()`` (a test
# compares them) ten times faster; it is used only while PackageEntry has exactly these
# fields, so adding a field can never silently drop it from the index.
_RENDER_FIELDS = ("group", "id", "version", "filename", "size", "sha256", "summary",
                  "maintainer", "requires", "service")
_FAST_RENDER = tuple(f.name for f in fields(PackageEntry)) == _RENDER_FIELDS
_enc = json.encoder.encode_basestring  # what dumps(ensure_ascii=False) uses for a str


def _render_package(p: PackageEntry) -> str:
    if p.requires:
        requires = "[\n" + ",\n".join("    " + _enc(r) for r in p.requires) + "\n   ]"
    else:
        requires = "[]"
    return (f'  {{\n   "filename": {_enc(p.filename)},\n   "group": {_enc(p.group)},\n'
            f'   "id": {_enc(p.id)},\n   "maintainer": {_enc(p.maintainer)},\n'
            f'   "requires": {requires},\n   "service": {"true" if p.service else "false"},\n'
            f'   "sha256": {_enc(p.sha256)},\n   "size": {int(p.size)},\n'
            f'   "summary": {_enc(p.summary)},\n   "version": {_enc(p.version)}\n  }}')


def _version_key(version: str) -> tuple[tuple[object, ...], str] | None:
    """A plain sort key giving exactly :func:`shipyard.coords.compare_versions` order.

    Alternating (non-digit run, number) parts; a non-digit run is its characters' dpkg
    weights closed by 0 (so ``~`` = -1 sorts before the end of the run), and the key ends
    with ``(0,)``, which is how an exhausted version compares with the next run of a
    longer one. The spelling breaks ties, as in ``compare_versions``. ``None`` for
    non-ASCII input, whose digits ``int`` may not read: callers fall back to comparisons.
    """
    if not version.isascii():
        return None
    parts: list[object] = []
    i, n = 0, len(version)
    while i < n:
        j = i
        while j < n and not version[j].isdigit():
            j += 1
        parts.append((*(-1 if c == "~" else ord(c) if c.isalpha() else ord(c) + 256
                        for c in version[i:j]), 0))
        k = j
        while k < n and version[k].isdigit():
            k += 1
        parts.append(int(version[j:k] or "0"))
        i = k
    parts.append((0,))
    return tuple(parts), version


def _ordered(packages: list[PackageEntry]) -> list[PackageEntry]:
    """Sorted by (group, id, version order) like ``to_bytes`` always did, with one plain
    key per distinct version instead of pure-Python pairwise comparisons."""
    keys: dict[str, object] = {}
    for p in packages:
        if p.version not in keys:
            key = _version_key(p.version)
            if key is None:
                return sorted(packages, key=lambda e: (e.group, e.id, version_key(e.version)))
            keys[p.version] = key
    return sorted(packages, key=lambda p: (p.group, p.id, keys[p.version]))


def _render_index(channel: str, serial: int, ordered: list[PackageEntry]) -> bytes:
    body = "[\n" + ",\n".join(map(_render_package, ordered)) + "\n ]" if ordered else "[]"
    return (f'{{\n "channel": {_enc(channel)},\n "format": {FORMAT},\n "packages": {body},\n'
            f' "serial": {int(serial)}\n}}\n').encode()


@dataclass(frozen=True)
class ChannelRef:
    """What ``release.json`` says of one channel's index."""

    priority: int
    path: str  # relative to the generation: dists/<channel>/index.json
    size: int
    sha256: str
    count: int


@dataclass
class Release:
    serial: int
    created: str
    valid_until: str
    channels: dict[str, ChannelRef]

    def to_bytes(self) -> bytes:
        return dump_json({
            "format": FORMAT,
            "serial": self.serial,
            "created": self.created,
            "valid_until": self.valid_until,
            "channels": {name: asdict(ref) for name, ref in sorted(self.channels.items())},
        })

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Release:
        try:
            parsed = _document(data)
            channels = {
                str(name): ChannelRef(int(ref["priority"]), str(ref["path"]), int(ref["size"]),
                                      str(ref["sha256"]), int(ref["count"]))
                for name, ref in parsed["channels"].items()
            }
            release = cls(int(parsed["serial"]), str(parsed["created"]),
                          str(parsed["valid_until"]), channels)
            parse_iso(release.valid_until)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VerificationError(f"{where}: malformed release ({exc})") from None
        for name, ref in channels.items():
            if ref.path != index_path(name):
                raise VerificationError(f"{where}: channel {name} index path {ref.path!r}")
        return release

    def check_fresh(self, where: str, now: datetime | None = None) -> None:
        moment = now or utcnow()
        if parse_iso(self.valid_until) < moment:
            raise VerificationError(
                f"{where}: release {self.serial} expired at {self.valid_until} "
                "(the publisher has not run; refusing possibly replayed metadata)"
            )

    def check_index(self, channel: str, data: bytes, where: str) -> ChannelIndex:
        """Verify an index's bytes against this release, then parse it."""
        ref = self.channels.get(channel)
        if ref is None:
            known = ", ".join(sorted(self.channels)) or "none"
            raise VerificationError(f"{where}: no channel {channel!r} (channels: {known})")
        if len(data) != ref.size or sha256_bytes(data) != ref.sha256:
            raise VerificationError(
                f"{where}: index of channel {channel} does not match release {self.serial}"
            )
        index = ChannelIndex.from_bytes(data, where)
        if index.channel != channel or index.serial > self.serial:
            raise VerificationError(f"{where}: index names channel {index.channel!r}")
        return index


def index_path(channel: str) -> str:
    return f"dists/{channel}/index.json"


def generation_path(serial: int) -> str:
    return f"generations/{serial}"


def _document(data: bytes) -> Any:
    """The JSON of an index or a release, refused (ValueError) unless in our format."""
    parsed = json.loads(data)
    if parsed.get("format") != FORMAT:
        raise ValueError(f"unsupported format {parsed.get('format')!r}")
    return parsed
