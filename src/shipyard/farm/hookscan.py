"""What a push changed: the package directories a branch update touched, and one build
request per package, read from its manifest *at* the pushed commit.

A manifest that does not parse still yields a request (with ``manifest_error`` and
whatever the broken file still says about the package), so the farm records a failed build
and mails its maintainer instead of the push going unnoticed.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from shipyard.coords import validate_group, validate_id, validate_version
from shipyard.errors import ManifestError, ShipyardError
from shipyard.manifest import MANIFEST_NAME, parse_manifest

ZERO = "0" * 40


def git(bare: Path, *args: str, input: bytes | None = None) -> bytes:
    result = subprocess.run(["git", "--git-dir", str(bare), *args], input=input,
                            capture_output=True, env=dict(os.environ, LC_ALL="C"))
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ShipyardError(f"git {' '.join(args[:2])} in {bare} failed: "
                            f"{message[-1] if message else result.returncode}")
    return result.stdout


def package_dirs(bare: Path, commit: str) -> list[str]:
    names = git(bare, "ls-tree", "-r", "-z", "--name-only", commit).split(b"\0")
    dirs = []
    for raw in names:
        name = raw.decode("utf-8", "surrogateescape")
        if name == MANIFEST_NAME:
            dirs.append("")
        elif name.endswith("/" + MANIFEST_NAME):
            dirs.append(name[: -len(MANIFEST_NAME) - 1])
    return sorted(dirs)


def _owner(path: str, dirs: list[str]) -> str | None:
    """The innermost package directory holding ``path``."""
    best = None
    for directory in dirs:
        inside = directory == "" or path == directory or path.startswith(directory + "/")
        if inside and (best is None or len(directory) > len(best)):
            best = directory
    return best


def changed_packages(bare: Path, old: str, new: str) -> list[str]:
    dirs = package_dirs(bare, new)
    if old == ZERO:
        return dirs
    changed = git(bare, "diff", "--name-only", "-z", old, new).split(b"\0")
    found = set()
    for raw in changed:
        if not raw:
            continue
        owner = _owner(raw.decode("utf-8", "surrogateescape"), dirs)
        if owner is not None:
            found.add(owner)
    return sorted(found)


def _lenient(text: str) -> dict[str, Any]:
    """Whatever a broken manifest still says about its package (for naming and mail)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    package = data.get("package") if isinstance(data, dict) else None
    if not isinstance(package, dict):
        return {}
    return {key: package[key] for key in ("group", "id", "version", "maintainer")
            if isinstance(package.get(key), str)}


def build_requests(bare: Path, repo_url: str, old: str, new: str, ref: str) -> list[dict]:
    """One request per package directory changed by ``old..new``."""
    committer = git(bare, "log", "-1", "--format=%an <%ae>", new).decode(
        "utf-8", "replace").strip()
    requests = []
    for directory in changed_packages(bare, old, new):
        path = f"{directory}/{MANIFEST_NAME}" if directory else MANIFEST_NAME
        raw = git(bare, "show", f"{new}:{path}")
        request: dict[str, Any] = {"commit": new, "repo_url": repo_url, "subdir": directory,
                                   "ref": ref, "committer": committer}
        try:
            text = raw.decode("utf-8")
            manifest = parse_manifest(text, f"{path} at {new[:12]}")
        except (UnicodeDecodeError, ManifestError) as exc:
            message = (exc.message if isinstance(exc, ManifestError)
                       else f"{path} at {new[:12]}: not UTF-8 text")
            lenient = _lenient(raw.decode("utf-8", "replace"))
            for key, check in (("group", validate_group), ("id", validate_id),
                               ("version", validate_version)):
                try:
                    if key in lenient:
                        request[key] = check(lenient[key])
                except ShipyardError:
                    pass
            if "maintainer" in lenient:
                request["maintainer"] = lenient["maintainer"]
            if not (request.get("group") and request.get("id")):
                request.pop("group", None)
                request.pop("id", None)
            request["manifest_error"] = message
        else:
            request.update(group=manifest.group, id=manifest.id, version=manifest.version,
                           maintainer=manifest.maintainer)
        requests.append(request)
    return requests
