"""Package and service coordinates: grammar, version order, requirements, paths.

Coordinates arrive from command lines, manifests, indexes and the network, and every one of
them becomes a path sooner or later. So the grammar is strict and is checked here, before
any path is built; :func:`PackageCoord.install_path` checks once more that the result lies
inside the software root.

Version order (documented in ``docs/reference/versions.md``) is dpkg's: a version is split
into alternating runs of non-digits and digits; non-digit runs compare character by
character with ``~`` before everything (even the end of the run), then letters, then other
characters; digit runs compare as numbers. Two versions that this rule calls equal but
are spelled differently (``1.0`` and ``1.00``) are ordered by their spelling, so the order
is total and sorting is deterministic.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import CoordinateError

GROUP_RE = re.compile(r"[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)*")
ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~_-]*")
LABEL_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
MAX_PART = 128


def _check(kind: str, value: str, pattern: re.Pattern[str], where: str) -> str:
    if not value:
        raise CoordinateError(f"{where}empty {kind}")
    if len(value) > MAX_PART:
        raise CoordinateError(f"{where}{kind} {value[:40]!r}... is longer than {MAX_PART}")
    if "\x00" in value or "/" in value or ".." in value or not pattern.fullmatch(value):
        raise CoordinateError(f"{where}invalid {kind} {value!r}: {_explain(kind)}")
    return value


def _explain(kind: str) -> str:
    return {
        "group": "expected lower-case dotted labels like 'org.example'",
        "id": "expected [a-z0-9][a-z0-9._-]* without '..'",
        "version": "expected [A-Za-z0-9][A-Za-z0-9.+~_-]* without '..'",
        "label": "expected [a-z0-9][a-z0-9_-]*",
    }[kind]


def validate_group(value: str, where: str = "") -> str:
    return _check("group", value, GROUP_RE, where)


def validate_id(value: str, where: str = "") -> str:
    return _check("id", value, ID_RE, where)


def validate_version(value: str, where: str = "") -> str:
    return _check("version", value, VERSION_RE, where)


# ---------------------------------------------------------------------------------------
# Version order


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            if i < len(a) and not a[i].isdigit():
                i += 1
            if j < len(b) and not b[j].isdigit():
                j += 1
        si = i
        while i < len(a) and a[i].isdigit():
            i += 1
        sj = j
        while j < len(b) and b[j].isdigit():
            j += 1
        na = int(a[si:i] or "0")
        nb = int(b[sj:j] or "0")
        if na != nb:
            return -1 if na < nb else 1
    return 0


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 in dpkg order, ties broken by spelling so the order is total."""
    result = _compare(a, b)
    if result == 0 and a != b:
        return -1 if a < b else 1
    return result


def versions_equivalent(a: str, b: str) -> bool:
    """True when dpkg order calls the two equal (``1.0`` and ``1.00``)."""
    return _compare(a, b) == 0


version_key = functools.cmp_to_key(compare_versions)


def newest(versions: list[str]) -> str | None:
    return max(versions, key=version_key) if versions else None


# ---------------------------------------------------------------------------------------
# Package coordinates


@dataclass(frozen=True, order=False)
class PackageCoord:
    """``group:id[:version]``; ``version`` is ``None`` for "newest in the channel"."""

    group: str
    id: str
    version: str | None = None

    def __post_init__(self) -> None:
        validate_group(self.group)
        validate_id(self.id)
        if self.version is not None:
            validate_version(self.version)

    @classmethod
    def parse(cls, text: str, *, require_version: bool = False, where: str = "") -> PackageCoord:
        if not isinstance(text, str):
            raise CoordinateError(f"{where}package coordinate must be a string")
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise CoordinateError(
                f"{where}invalid package coordinate {text!r}: expected group:id[:version]"
            )
        group = _check("group", parts[0], GROUP_RE, where)
        ident = _check("id", parts[1], ID_RE, where)
        version = _check("version", parts[2], VERSION_RE, where) if len(parts) == 3 else None
        if require_version and version is None:
            raise CoordinateError(f"{where}package coordinate {text!r} needs a version")
        return cls(group, ident, version)

    @property
    def name(self) -> str:
        """``group:id`` without the version."""
        return f"{self.group}:{self.id}"

    def with_version(self, version: str) -> PackageCoord:
        return PackageCoord(self.group, self.id, version)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"

    def relpath(self) -> Path:
        """``<group dots as dirs>/<id>[/<version>]`` relative to a root."""
        path = Path(*self.group.split("."), self.id)
        return path / self.version if self.version is not None else path

    def install_path(self, software_root: str | os.PathLike[str]) -> Path:
        """Where this coordinate lives under ``software_root``; refuses anything outside."""
        if self.version is None:
            raise CoordinateError(f"package coordinate {self} needs a version")
        root = Path(os.path.abspath(software_root))
        path = Path(os.path.normpath(root / self.relpath()))
        if os.path.commonpath([root, path]) != str(root) or path == root:
            raise CoordinateError(f"package coordinate {self} resolves outside {root}")
        return path

    def archive_name(self, compression: str = "gz") -> str:
        return f"{self.id}-{self.version}.tar.{compression}"


# ---------------------------------------------------------------------------------------
# Requirements: group:id[:SPEC] with SPEC = clause[,clause...], clause = OP VERSION

_CLAUSE_RE = re.compile(r"\s*(>=|<=|==|!=|>|<)?\s*([^\s,]+)\s*")
_OPS = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
}


@dataclass(frozen=True)
class Requirement:
    """A dependency: a package name and a (possibly empty) set of version clauses."""

    group: str
    id: str
    clauses: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str, *, where: str = "") -> Requirement:
        if not isinstance(text, str):
            raise CoordinateError(f"{where}requirement must be a string")
        parts = text.split(":", 2)
        if len(parts) < 2:
            raise CoordinateError(
                f"{where}invalid requirement {text!r}: expected group:id[:>=1.0,<2]"
            )
        group = _check("group", parts[0], GROUP_RE, where)
        ident = _check("id", parts[1], ID_RE, where)
        clauses: list[tuple[str, str]] = []
        if len(parts) == 3:
            if not parts[2].strip():
                raise CoordinateError(f"{where}invalid requirement {text!r}: empty version range")
            for raw in parts[2].split(","):
                match = _CLAUSE_RE.fullmatch(raw)
                if not match:
                    raise CoordinateError(
                        f"{where}invalid version clause {raw!r} in {text!r}"
                    )
                op = match.group(1) or "=="
                clauses.append((op, _check("version", match.group(2), VERSION_RE, where)))
        return cls(group, ident, tuple(clauses))

    @property
    def name(self) -> str:
        return f"{self.group}:{self.id}"

    def matches(self, version: str) -> bool:
        return all(_OPS[op](_compare(version, bound)) for op, bound in self.clauses)

    def best(self, versions: list[str]) -> str | None:
        """The newest of ``versions`` that satisfies every clause."""
        return newest([v for v in versions if self.matches(v)])

    def __str__(self) -> str:
        if not self.clauses:
            return self.name
        return f"{self.name}:" + ",".join(f"{op}{v}" for op, v in self.clauses)


# ---------------------------------------------------------------------------------------
# Service coordinates: instance.service.user.cell


@dataclass(frozen=True)
class ServiceCoord:
    """Names one running instance, e.g. ``1.idee.prod.trd``."""

    instance: str
    service: str
    user: str
    cell: str

    @classmethod
    def parse(cls, text: str, *, where: str = "") -> ServiceCoord:
        if not isinstance(text, str):
            raise CoordinateError(f"{where}service coordinate must be a string")
        labels = text.split(".")
        if len(labels) != 4:
            raise CoordinateError(
                f"{where}invalid service coordinate {text!r}: "
                "expected instance.service.user.cell, e.g. 1.idee.prod.trd"
            )
        for label in labels:
            if len(label) > 63 or not LABEL_RE.fullmatch(label):
                raise CoordinateError(
                    f"{where}invalid service coordinate {text!r}: label {label!r} "
                    "must match [a-z0-9][a-z0-9_-]* (at most 63 characters)"
                )
        return cls(*labels)

    def __str__(self) -> str:
        return f"{self.instance}.{self.service}.{self.user}.{self.cell}"

    def runtime_path(self, runtime_root: str | os.PathLike[str]) -> Path:
        root = Path(os.path.abspath(runtime_root))
        return root / str(self)
