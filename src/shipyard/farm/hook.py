"""The push hook: a ``post-receive`` that asks the farm to build what a push changed.

For every branch update (``old new ref`` on stdin) it finds the package directories (those
holding ``shipyard.toml``) with changes between ``old`` and ``new`` (the whole tree for a
new branch), reads each manifest *at* ``new`` and requests a build of (package, version,
commit). The coordinator decides idempotently whether that version is already built or
queued, so pushing twice, or two hooks, never build twice.

Every request is first written to a spool inside the bare repository and removed once the
coordinator has answered, so a coordinator that is down (or a hook killed halfway) loses
nothing: the next push or ``shipyard farm hook flush`` sends what is left, in order. The
push itself never fails because of the farm: the hook always exits 0 and says what it did
on stderr (git shows it to the pusher as ``remote:`` lines).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from shipyard.errors import ManifestError, ShipyardError
from shipyard.farm.client import ApiError, FarmClient
from shipyard.farm.errors import CoordinatorUnreachable
from shipyard.fsutil import atomic_write, file_lock
from shipyard.manifest import MANIFEST_NAME, parse_manifest

ZERO = "0" * 40
CONFIG_NAME = "shipyard-hook.json"
SPOOL_NAME = "shipyard-spool"
HOOK_MARK = "# installed by: shipyard farm hook install"


@dataclass
class HookConfig:
    coordinator: str
    token: str
    repo_url: str


@dataclass
class FlushReport:
    sent: list[str] = field(default_factory=list)
    kept: int = 0
    rejected: list[str] = field(default_factory=list)
    problem: str | None = None


def _git(bare: Path, *args: str, input: bytes | None = None) -> bytes:
    result = subprocess.run(["git", "--git-dir", str(bare), *args], input=input,
                            capture_output=True, env=dict(os.environ, LC_ALL="C"))
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ShipyardError(f"git {' '.join(args[:2])} in {bare} failed: "
                            f"{message[-1] if message else result.returncode}")
    return result.stdout


def check_bare(path: str | os.PathLike[str]) -> Path:
    bare = Path(path).expanduser().absolute()
    if not (bare / "HEAD").is_file() or not (bare / "objects").is_dir():
        raise ShipyardError(f"{bare} is not a bare git repository (no HEAD and objects/)")
    return bare


@dataclass(frozen=True)
class Owner:
    """Who pushes to the repository (its owner), and whether a group shares it."""

    uid: int
    gid: int
    shared: bool


def repository_owner(bare: Path) -> Owner:
    info = (bare / "objects").stat()
    return Owner(info.st_uid, info.st_gid, bool(info.st_mode & 0o020))


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def install(path: str | os.PathLike[str], coordinator: str, token: str,
            repo_url: str | None = None, *, force: bool = False) -> Path:
    """Write ``hooks/post-receive`` and the hook's config (0600: it holds the token), owned
    like the repository: the hook runs as whoever pushes, and a config or spool that user
    cannot read or write would lose every build request. A repository a group shares
    (group-writable ``objects/``) gets a group-readable config and a group spool."""
    bare = check_bare(path)
    owner = repository_owner(bare)
    me = os.geteuid()
    if owner.uid != me and me != 0:
        who = _user_name(owner.uid) + (" or as root" if owner.uid != 0 else "")
        raise ShipyardError(
            f"{bare} belongs to {_user_name(owner.uid)}: run 'shipyard farm hook install' as "
            f"{who}, so the hook (which runs as the pushing user) can read its config and "
            "keep requests in its spool")
    hook = bare / "hooks" / "post-receive"
    if hook.exists() and HOOK_MARK not in hook.read_text(errors="replace") and not force:
        raise ShipyardError(f"{hook} exists and was not installed by shipyard "
                            "(pass --force to replace it)")
    config = {"coordinator": coordinator.rstrip("/"), "token": token,
              "repo_url": repo_url or str(bare)}
    python = Path(sys.executable).absolute()
    script = "\n".join([
        "#!/bin/sh",
        HOOK_MARK,
        "# Requests farm builds of the packages a push changed; never fails the push.",
        f"exec '{python}' -m shipyard.cli.main farm hook run \"$GIT_DIR\"",
        "",
    ])
    spool_path = bare / SPOOL_NAME
    spool_path.mkdir(exist_ok=True)
    atomic_write(bare / CONFIG_NAME, json.dumps(config, indent=1) + "\n",
                 mode=0o640 if owner.shared else 0o600)
    atomic_write(hook, script, mode=0o755)
    if me == 0:
        # Also what an earlier install (or a flush run as root) left in the spool: the
        # pushing user must be able to take its lock and remove what it sent.
        for item in (bare / CONFIG_NAME, hook, spool_path, *spool_path.rglob("*")):
            os.lchown(item, owner.uid, owner.gid)
    os.chmod(spool_path, 0o2770 if owner.shared else 0o700)
    return hook


def load_config(bare: Path) -> HookConfig:
    path = bare / CONFIG_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return HookConfig(str(data["coordinator"]), str(data["token"]), str(data["repo_url"]))
    except FileNotFoundError:
        raise ShipyardError(f"{path}: missing; run shipyard farm hook install") from None
    except PermissionError:
        raise ShipyardError(f"{path} is not readable by {_user_name(os.geteuid())} "
                            f"({_describe_file(path)}): run 'shipyard farm hook install' "
                            "again as the repository's owner or as root") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ShipyardError(f"{path}: malformed hook config ({exc})") from None


# ---------------------------------------------------------------------------------------
# What changed


def package_dirs(bare: Path, commit: str) -> list[str]:
    names = _git(bare, "ls-tree", "-r", "-z", "--name-only", commit).split(b"\0")
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
    changed = _git(bare, "diff", "--name-only", "-z", old, new).split(b"\0")
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
    committer = _git(bare, "log", "-1", "--format=%an <%ae>", new).decode(
        "utf-8", "replace").strip()
    requests = []
    for directory in changed_packages(bare, old, new):
        path = f"{directory}/{MANIFEST_NAME}" if directory else MANIFEST_NAME
        raw = _git(bare, "show", f"{new}:{path}")
        request: dict[str, Any] = {"commit": new, "repo_url": repo_url, "subdir": directory,
                                   "ref": ref, "committer": committer}
        try:
            text = raw.decode("utf-8")
            manifest = parse_manifest(text, f"{path} at {new[:12]}")
        except (UnicodeDecodeError, ManifestError) as exc:
            message = (exc.message if isinstance(exc, ManifestError)
                       else f"{path} at {new[:12]}: not UTF-8 text")
            lenient = _lenient(raw.decode("utf-8", "replace"))
            from shipyard.coords import validate_group, validate_id, validate_version

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


# ---------------------------------------------------------------------------------------
# The spool


def _describe_file(path: Path) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        return exc.strerror or "cannot stat"
    return f"owned by {_user_name(info.st_uid)}, mode {info.st_mode & 0o7777:04o}"


def spool_dir(bare: Path) -> Path:
    return bare / SPOOL_NAME


def spool(bare: Path, requests: Iterable[dict]) -> list[Path]:
    directory = spool_dir(bare)
    directory.mkdir(exist_ok=True)
    paths = []
    for index, request in enumerate(requests):
        path = directory / f"{time.time_ns():020d}-{os.getpid()}-{index:04d}.json"
        atomic_write(path, json.dumps(request, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def pending(bare: Path) -> list[Path]:
    directory = spool_dir(bare)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".json" and p.is_file())


def _describe(request: dict) -> str:
    if request.get("group") and request.get("id"):
        name = f"{request['group']}:{request['id']} {request.get('version') or ''}".strip()
    else:
        name = request.get("subdir") or "."
    return f"{name} at {str(request.get('commit', ''))[:12]}"


def flush(bare: Path, config: HookConfig, out: TextIO | None = None) -> FlushReport:
    """Send spooled requests in order; stop at the first sign of an unreachable
    coordinator (the rest waits for the next push)."""
    report = FlushReport()
    with file_lock(spool_dir(bare) / ".lock", timeout=60, what="the farm hook spool"), \
            FarmClient(config.coordinator, config.token, timeout=10.0,
                       connect_timeout=3.0) as client:
        files = pending(bare)
        for index, path in enumerate(files):
            try:
                request = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                _reject(bare, path, "unreadable spool file")
                report.rejected.append(path.name)
                continue
            try:
                answer = client.post("/api/builds", request, retry_for=0.0)
            except CoordinatorUnreachable as exc:
                report.problem = exc.message
                report.kept = len(files) - index
                break
            except ApiError as exc:
                if exc.status in (401, 403):
                    report.problem = exc.message
                    report.kept = len(files) - index
                    break
                _reject(bare, path, exc.message)
                report.rejected.append(f"{_describe(request)}: {exc.message}")
                continue
            path.unlink()
            build = answer["build"]
            if answer.get("created"):
                line = (f"build {build['id']} {build['state']}: {_describe(request)}"
                        + (f" ({build['reason']})" if build["state"] == "failed" else "")
                        + f" {build['url']}")
            else:
                line = f"no new build: {answer.get('note', '').strip()} (build {build['id']})"
            report.sent.append(line)
    return report


def _reject(bare: Path, path: Path, reason: str) -> None:
    target = spool_dir(bare) / "rejected"
    target.mkdir(exist_ok=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {"raw": path.read_text(encoding="utf-8", errors="replace")}
    data["rejected"] = reason
    atomic_write(target / path.name, json.dumps(data, sort_keys=True) + "\n")
    path.unlink()


def print_report(report: FlushReport, bare: Path, out: TextIO) -> None:
    for line in report.sent:
        out.write(f"shipyard farm: {line}\n")
    for line in report.rejected:
        out.write(f"shipyard farm: request rejected: {line}\n")
    if report.problem:
        out.write(f"shipyard farm: {report.problem}\n"
                  f"shipyard farm: {report.kept} build request(s) kept in "
                  f"{spool_dir(bare)}; sent on the next push or by "
                  f"'shipyard farm hook flush {bare}'\n")


def _send_unspooled(bare: Path, config: HookConfig, requests: list[dict], why: OSError,
                    out: TextIO) -> None:
    spool_problem = (f"cannot keep build requests in {spool_dir(bare)} "
                     f"({why.strerror or why}; {_describe_file(spool_dir(bare))})")
    lost: list[str] = []
    problem = ""
    with FarmClient(config.coordinator, config.token, timeout=10.0,
                    connect_timeout=3.0) as client:
        for request in requests:
            if problem:
                lost.append(_describe(request))
                continue
            try:
                answer = client.post("/api/builds", request, retry_for=0.0)
            except (CoordinatorUnreachable, ApiError) as exc:
                problem = exc.message
                lost.append(_describe(request))
                continue
            build = answer["build"]
            out.write(f"shipyard farm: build {build['id']} {build['state']}: "
                      f"{_describe(request)} {build['url']}\n")
    if lost:
        out.write(f"shipyard farm: {len(lost)} build request(s) NOT sent and NOT kept "
                  f"({', '.join(lost)}): {spool_problem}, and {problem}; request them with "
                  "'shipyard farm build request'\n")
    else:
        out.write(f"shipyard farm: warning: {spool_problem}; requests were sent directly\n")


def run(path: str | os.PathLike[str], lines: Iterable[str], out: TextIO) -> int:
    """The ``post-receive`` body. Always returns 0: a push never fails because of us."""
    try:
        bare = check_bare(path)
        config = load_config(bare)
        requests: list[dict] = []
        for line in lines:
            parts = line.split()
            if len(parts) != 3:
                continue
            old, new, ref = parts
            if new == ZERO or not ref.startswith("refs/heads/"):
                continue
            requests.extend(build_requests(bare, config.repo_url, old, new, ref))
        try:
            spool(bare, requests)
        except OSError as exc:
            # Cannot keep them: send them straight away, and say so if that fails too.
            _send_unspooled(bare, config, requests, exc, out)
        else:
            report = flush(bare, config)
            print_report(report, bare, out)
    except ShipyardError as exc:
        out.write("shipyard farm: hook error, no build was requested for this push (the "
                  f"push itself succeeded): {exc.message}\n")
    except Exception as exc:  # never fail a push
        out.write("shipyard farm: hook error, no build was requested for this push (the "
                  f"push itself succeeded): {type(exc).__name__}: {exc}\n")
    out.flush()
    return 0
