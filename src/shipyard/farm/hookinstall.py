"""Setting the push hook up in a bare repository: ``hooks/post-receive``, its config, its
spool, owned like the repository.

The hook runs as whoever pushes, so the config (it holds the coordinator token) and the
spool must belong to the repository's owner, shared with its group where the group may
push: a config or spool the pushing user cannot read or write would lose every build
request, silently, on every push.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.fsutil import atomic_write

CONFIG_NAME = "shipyard-hook.json"
SPOOL_NAME = "shipyard-spool"
HOOK_MARK = "# installed by: shipyard farm hook install"


@dataclass
class HookConfig:
    coordinator: str
    token: str
    repo_url: str


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


def user_name(uid: int) -> str:
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
        who = user_name(owner.uid) + (" or as root" if owner.uid != 0 else "")
        raise ShipyardError(
            f"{bare} belongs to {user_name(owner.uid)}: run 'shipyard farm hook install' as "
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
        raise ShipyardError(f"{path} is not readable by {user_name(os.geteuid())} "
                            f"({describe_file(path)}): run 'shipyard farm hook install' "
                            "again as the repository's owner or as root") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ShipyardError(f"{path}: malformed hook config ({exc})") from None


def describe_file(path: Path) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        return exc.strerror or "cannot stat"
    return f"owned by {user_name(info.st_uid)}, mode {info.st_mode & 0o7777:04o}"
