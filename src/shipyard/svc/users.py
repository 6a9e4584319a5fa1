"""The user a service instance runs as: choosing it, creating it, dropping to it.

As root, an instance runs as its service user (default ``svc.user``, ``shipyard``), which is
created as a system user when missing, like skytools' Debian package creates ``skytools``.
Running a package as root needs an explicit ``--user root`` at registration, so a manifest
or a config default can never silently hand root to a service. As an ordinary user,
everything runs as that user and asking for another one is an error.

Privileges are dropped by :class:`subprocess.Popen` itself (``user``/``group``/
``extra_groups``), not by a ``preexec_fn``, so starting hundreds of instances stays cheap
and safe in a threaded boot.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import re
import shutil
import stat
import threading
from dataclasses import dataclass
from typing import TypedDict

from shipyard.config import Settings
from shipyard.errors import ShipyardError, UsageError
from shipyard.fsutil import file_lock

USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,30}\$?")
_create_lock = threading.Lock()


class Switch(TypedDict, total=False):
    """Popen's arguments that drop to the user in the child (empty: nothing to drop)."""

    user: int
    group: int
    extra_groups: list[int]


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    @property
    def needs_switch(self) -> bool:
        return os.geteuid() == 0 and self.uid != 0

    def spawn(self, argv: list[str]) -> tuple[list[str], Switch]:
        """The command line and Popen arguments that run ``argv`` as this user.

        With util-linux' ``setpriv`` the switch happens after the exec, so Popen can use
        vfork: a large parent (a boot of hundreds of instances) then does not pay for
        copying its page tables at every start. Without it, Popen switches in the child.
        """
        if not self.needs_switch:
            return argv, {}
        setpriv = _setpriv()
        if setpriv is not None:
            return [setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                    "--", *argv], {}
        return argv, {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def env(self) -> dict[str, str]:
        return {"USER": self.name, "LOGNAME": self.name, "HOME": self.home or "/"}

    def can_traverse(self, st: os.stat_result) -> bool:
        """Whether this user may pass through a directory with this ``stat``."""
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid == self.gid or st.st_gid in self.groups:
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)

    def can_write(self, st: os.stat_result) -> bool:
        """Whether this user may create files in a directory with this ``stat``.

        ``os.access`` answers for the calling user only; a root boot needs the answer for
        the service user, so the classic owner/group/other rule is applied here (ACLs are
        not consulted).
        """
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IWUSR and st.st_mode & stat.S_IXUSR)
        if st.st_gid == self.gid or st.st_gid in self.groups:
            return bool(st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_IXOTH)


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")


def current_user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def lookup(name: str) -> ServiceUser | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    try:
        groups = tuple(g for g in os.getgrouplist(name, entry.pw_gid) if g != entry.pw_gid)
    except OSError:
        groups = ()
    return ServiceUser(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def validate_name(name: str, where: str = "") -> str:
    if not USER_RE.fullmatch(name):
        raise UsageError(f"{where}invalid user name {name!r}: expected [a-z_][a-z0-9_-]*")
    return name


def choose(settings: Settings, requested: str | None, manifest_user: str | None,
           package: str) -> str:
    """The user a new registration records; refuses root unless asked for explicitly."""
    if os.geteuid() != 0:
        me = current_user_name()
        if requested not in (None, me):
            raise ShipyardError(
                f"cannot run {package} as {requested}: only root can run instances as "
                f"another user (you are {me})"
            )
        return me
    if requested is not None:
        return validate_name(requested, "--user: ")
    name = manifest_user or settings.svc.user or "shipyard"
    validate_name(name, "service user: ")
    existing = lookup(name)
    if name == "root" or (existing is not None and existing.uid == 0):
        source = "its manifest" if manifest_user else "svc.user"
        raise ShipyardError(
            f"package {package} would run as root ({source} says {name!r}); "
            "pass --user root to allow that explicitly"
        )
    return name


def _nologin() -> str:
    for candidate in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false"):
        if os.path.exists(candidate):
            return candidate
    return "/bin/false"


def ensure(settings: Settings, name: str) -> ServiceUser:
    """Look ``name`` up; as root, create it as a system user when missing."""
    found = lookup(name)
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise ShipyardError(f"service user {name!r} does not exist")
    validate_name(name, "service user: ")
    with _create_lock, file_lock(settings.run_dir / "svc" / "useradd.lock", timeout=60,
                                 what="user creation"):
        found = lookup(name)
        if found is not None:
            return found
        import subprocess  # only when a user is created: not on every stop

        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        command = [useradd, "--system", "--user-group", "--no-create-home",
                   "--home-dir", "/nonexistent", "--shell", _nologin(),
                   "--comment", "Shipyard service user", name]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ShipyardError(f"cannot create service user {name!r}: {exc}") from None
        found = lookup(name)
        if found is None:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise ShipyardError(
                f"cannot create service user {name!r}: useradd exited with code "
                f"{proc.returncode}" + (f": {detail[-1]}" if detail else "")
            )
        return found


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
