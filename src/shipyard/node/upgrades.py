"""``svc upgrade``: move a registered instance to another version of its package.

The order is chosen so that every moment a ``kill -9`` can hit leaves a node that
``svc boot`` (or the next ``svc upgrade``) puts right:

1. install the new version (atomic, see :mod:`shipyard.pkg.install`) and check it can run
   this instance (a ``[service]`` table; its ``exec`` placeholders match the registered
   parameters) *before* anything is stopped;
2. write a small journal ``<state>/svc-upgrades/<svc>.json`` (old, new, whether it was running), so
   an interrupted upgrade remembers to start the instance again;
3. stop the instance;
4. switch the registration: **one** atomic write of the registry file, so it names the old
   version or the new one, never a mix;
5. start it (only if it was running) and wait the start grace period
   (``svc.start_grace``, ``--grace``): a start script that fails, a pid file that never
   appears or a service that dies within the grace period means "did not come up";
6. relink (refresh the announcer's link config, reconcile);
7. uninstall the old version, unless ``--keep-old`` or another instance uses it.

When the new version does not come up, the upgrade rolls back by itself: stop whatever the
new version left, write the old registration back, start the old version, relink, remove
the new package if this upgrade installed it, and fail with a message that says so. The
old package is never removed before the new one runs, which is what makes the rollback
possible at all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

from shipyard.config import Settings
from shipyard.coords import PackageCoord, ServiceCoord, compare_versions
from shipyard.errors import ShipyardError, UsageError
from shipyard.fsutil import atomic_write, file_lock, fsync_dir
from shipyard.svc import control, registry
from shipyard.svc.registry import Registration

Say = Callable[[str], None]


class UpgradeFailed(ShipyardError):
    """The new version did not come up; the instance was rolled back (or could not be)."""


@dataclass
class UpgradeResult:
    coordinate: str
    old: str
    new: str
    result: str  # upgraded | switched | unchanged
    pid: int | None = None
    installed: list[str] = field(default_factory=list)
    uninstalled: str | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"service": self.coordinate, "from": self.old, "to": self.new,
                "result": self.result, "pid": self.pid, "installed": self.installed,
                "uninstalled": self.uninstalled, "message": self.message,
                "warnings": self.warnings}


# ---------------------------------------------------------------------------------------
# The journal: what an interrupted upgrade must not forget


def journal_path(settings: Settings, coordinate: ServiceCoord) -> Path:
    """Persistent state (not the volatile run dir): it must outlive a reboot."""
    return settings.state_dir / "svc-upgrades" / f"{coordinate}.json"


def read_journal(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"was_running": True}  # unreadable: assume the safer answer
    return data if isinstance(data, dict) else {"was_running": True}


def _clear_journal(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------
# Choosing the target


def resolve_target(settings: Settings, current: PackageCoord, to: str | None,
                   latest: bool) -> PackageCoord:
    """The coordinate to move to: ``--to group:id:version`` or the channel's newest."""
    if (to is None) == (not latest):
        raise UsageError("give exactly one of --to group:id:version or --latest")
    if to is not None:
        target = PackageCoord.parse(to, require_version=True, where="--to: ")
        if target.name != current.name:
            raise UsageError(f"--to {target}: the instance runs {current.name}; an upgrade "
                             "changes the version only (register the other package instead)")
        return target
    from shipyard.pkg.client import RepositoryClient
    from shipyard.pkg.install import repository_client
    from shipyard.pkg.resolve import pick

    if not settings.get("repo.url"):
        raise ShipyardError("--latest needs a repository: set repo.url (or give --to)")
    client = repository_client(settings)
    assert isinstance(client, RepositoryClient)
    with client:
        entry = pick(client.index(), PackageCoord(current.group, current.id, None))
    return entry.coord


# ---------------------------------------------------------------------------------------
# The upgrade


def _link_warnings(settings: Settings, registration: Registration) -> list[str]:
    from shipyard.link import hooks

    return [*hooks.after_register(settings, registration), *hooks.after_change(settings)]


def _check_runnable(settings: Settings, registration: Registration) -> None:
    from shipyard.svc.package import load_service_package
    from shipyard.svc.params import check_declared, check_exec, parse_params, with_defaults

    pkg = load_service_package(settings, registration.package)
    where = f"{registration.coordinate} ({registration.package})"
    check_declared(pkg.service.params, parse_params(registration.params), where)
    if pkg.service.exec is not None:
        check_exec(pkg.service.exec,
                   parse_params(with_defaults(pkg.service.params, registration.params)), where)


def _save(settings: Settings, registration: Registration) -> None:
    """The switch itself: one atomic write of the registry file, under the registry lock."""
    from shipyard.svc.register import registry_lock

    with registry_lock(settings):
        registry.save(settings, registration)


def upgrade(settings: Settings, coordinate_text: str, *, to: str | None = None,
            latest: bool = False, keep_old: bool = False, say: Say | None = None
            ) -> UpgradeResult:
    """Upgrade (or downgrade) one instance; raises :class:`UpgradeFailed` after a
    rollback when the new version does not come up."""
    echo = say or (lambda _line: None)
    coordinate = ServiceCoord.parse(coordinate_text)
    control.require_registration(settings, coordinate)  # a clear error before any lock
    journal = journal_path(settings, coordinate)
    journal.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(journal.with_name(f"{coordinate}.lock"), timeout=5,
                   what=f"an upgrade of {coordinate}"):
        # Read under the lock: a concurrent upgrade may just have switched it.
        registration = control.require_registration(settings, coordinate)
        return _upgrade(settings, registration, journal, to=to, latest=latest,
                        keep_old=keep_old, echo=echo)


def _upgrade(settings: Settings, old_reg: Registration, journal: Path, *, to: str | None,
             latest: bool, keep_old: bool, echo: Say) -> UpgradeResult:
    coordinate = old_reg.coordinate
    name = str(coordinate)
    pending = read_journal(journal)
    old = old_reg.package
    if pending is not None and isinstance(pending.get("old"), str):
        # An earlier upgrade was interrupted after it wrote its journal: its "old" is the
        # version to keep until this one succeeds, even if the registry already moved on.
        with contextlib.suppress(ShipyardError):
            old = PackageCoord.parse(str(pending["old"]), require_version=True)
    target = resolve_target(settings, old_reg.package, to, latest)
    ctx = control.Context(settings)
    running = control.is_active(ctx, old_reg)
    was_running = running or bool(pending and pending.get("was_running"))
    if target == old_reg.package and pending is None:
        return UpgradeResult(name, str(old), str(target), "unchanged",
                             message=f"{name} already uses {target}; nothing to do")
    if latest and pending is None and compare_versions(
            str(target.version), str(old_reg.package.version)) < 0:
        # --latest never downgrades: an instance may run a version newer than its channel
        # (installed with --to from another channel, or the channel was rolled back).
        return UpgradeResult(name, str(old), str(old), "unchanged",
                             message=f"{name} uses {old_reg.package}, newer than the "
                                     f"channel's newest {target}; nothing to do")

    from shipyard.node.operations import install

    installed = install(settings, str(target), echo=echo)
    fresh = [str(r.coord) for r in installed if r.status == "installed"]
    warnings = [w for r in installed for w in r.warnings]
    new_reg = replace(old_reg, package=target)
    _check_runnable(settings, new_reg)

    atomic_write(journal, json.dumps({"old": str(old), "new": str(target),
                                      "was_running": was_running}) + "\n", mode=0o600)
    if running:
        echo(control.stop(ctx, coordinate).message)
    _save(settings, new_reg)
    echo(f"switched {name} from {old} to {target}")
    previous = [old, old_reg.package]  # differ only after an interrupted upgrade
    if not was_running:
        warnings += _link_warnings(settings, new_reg)
        _clear_journal(journal)
        removed = _remove_old(settings, previous, target, keep_old, echo, warnings)
        return UpgradeResult(name, str(old), str(target), "switched", None, fresh, removed,
                             f"{name} was not running: switched it from {old} to {target} "
                             "without starting it", warnings)

    try:
        outcome = control.start(control.Context(settings), coordinate)
    except ShipyardError as exc:
        _rollback(settings, replace(old_reg, package=old), target, fresh, exc.message, echo)
    echo(outcome.message)
    warnings += outcome.warnings
    warnings += _link_warnings(settings, new_reg)
    _clear_journal(journal)
    removed = _remove_old(settings, previous, target, keep_old, echo, warnings)
    message = f"upgraded {name} from {old} to {target} (pid {outcome.pid})"
    return UpgradeResult(name, str(old), str(target), "upgraded", outcome.pid, fresh, removed,
                         message, warnings)


def _remove_old(settings: Settings, previous: list[PackageCoord], target: PackageCoord,
                keep_old: bool, echo: Say, warnings: list[str]) -> str | None:
    """Uninstall the previous version(s) once nothing needs them any more; the first one
    removed is reported."""
    from shipyard.node.operations import uninstall
    from shipyard.pkg import store

    removed: list[str] = []
    for old in dict.fromkeys(previous):
        if old == target or keep_old or store.installed_record(settings, old) is None:
            continue
        users = registry.instances_using(settings, old)
        if users:
            warnings.append(f"kept {old}: instance(s) {', '.join(map(str, users))} still "
                            "use it")
            continue
        try:
            result = uninstall(settings, old)
        except ShipyardError as exc:
            warnings.append(f"could not uninstall {old}: {exc.message}")
            continue
        warnings.extend(result.warnings)
        echo(f"uninstalled {old}")
        removed.append(str(old))
    return removed[0] if removed else None


def _rollback(settings: Settings, old_reg: Registration, target: PackageCoord,
              fresh: list[str], reason: str, echo: Say) -> NoReturn:
    """Put the old version back and raise :class:`UpgradeFailed` saying what happened."""
    coordinate = old_reg.coordinate
    name = str(coordinate)
    echo(f"{name} did not come up on {target}: {reason}")
    echo(f"rolling back {name} to {old_reg.package}")
    problems = []
    with contextlib.suppress(ShipyardError):
        # Whatever the new version's start left behind (a half-started service).
        control.stop(control.Context(settings), coordinate)
    _save(settings, old_reg)
    try:
        outcome = control.start(control.Context(settings), coordinate)
        state = f"running again, pid {outcome.pid}"
    except ShipyardError as exc:
        problems.append(f"the old version did not start either: {exc.message}")
        state = "NOT running"
    problems += [w for w in _link_warnings(settings, old_reg) if w]
    if str(target) in fresh and not registry.instances_using(settings, target):
        from shipyard.node.operations import uninstall

        with contextlib.suppress(ShipyardError):
            uninstall(settings, target)
            echo(f"uninstalled {target} again")
    _clear_journal(journal_path(settings, coordinate))
    tail = f"; {'; '.join(problems)}" if problems else ""
    raise UpgradeFailed(f"upgrade of {name} to {target} failed ({reason}); rolled back to "
                        f"{old_reg.package} ({state}){tail}")

