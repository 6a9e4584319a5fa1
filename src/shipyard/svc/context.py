"""The context of one command over many instances: settings, paths and caches.

A boot or a shutdown handles hundreds of instances; the context reads each package's
manifest and looks each service user up once for all of them, and knows where each
instance's runtime dir, state record, lock and start intent live without asking the
settings again.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.config import Settings
from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.fsutil import file_lock
from shipyard.svc import registry, state
from shipyard.svc import users as users_mod
from shipyard.svc.registry import Registration
from shipyard.svc.runtime import Runtime, runtime_for, state_dir
from shipyard.svc.steps import KILL_WAIT
from shipyard.svc.users import ServiceUser

# A shutdown signals hundreds of instances without reading a manifest or spawning a
# script, so what only starts and stop scripts need is imported where they use it.
if TYPE_CHECKING:
    from shipyard.svc.package import ServicePackage


class Context:
    """Settings plus caches, so a boot of hundreds of instances reads each package once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.start_timeout = settings.svc.start_timeout
        self.stop_timeout = settings.svc.stop_timeout
        self.grace = max(0.0, settings.svc.start_grace)
        self.log_max = settings.svc.log_max_bytes
        self.log_keep = max(0, settings.svc.log_keep)
        self._packages: dict[PackageCoord, ServicePackage] = {}
        self._stops: dict[str, str] = {}
        self._users: dict[str, ServiceUser] = {}
        self._known_users: dict[str, ServiceUser | None] = {}
        probe = runtime_for(settings, ServiceCoord("x", "x", "x", "x"))
        self._runtime_root = probe.root.parent
        self._layout = probe.layout
        self._fhs_root = probe.fhs_root
        self._state_dir = state_dir(settings)

    @functools.cached_property
    def platform(self) -> str:
        from shipyard.svc.platform import platform_tag

        return platform_tag()

    @property
    def lock_timeout(self) -> float:
        return self.start_timeout + self.stop_timeout + self.grace + KILL_WAIT + 10

    def runtime(self, coordinate: ServiceCoord) -> Runtime:
        return Runtime(coordinate, self._runtime_root / str(coordinate), self._layout,
                       self._fhs_root)

    def state_path(self, coordinate: ServiceCoord) -> Path:
        return self._state_dir / f"{coordinate}.state"

    def lock_path(self, coordinate: ServiceCoord) -> Path:
        return self._state_dir / f"{coordinate}.lock"

    def intent_path(self, coordinate: ServiceCoord) -> Path:
        """Names a start script while it runs (see :func:`.live.settle_orphan_start`)."""
        return self._state_dir / f"{coordinate}.starting"

    def known_user(self, name: str) -> ServiceUser | None:
        """Look a user up (no creation), once per command."""
        if not name:
            return None
        if name not in self._known_users:
            self._known_users[name] = users_mod.lookup(name)
        return self._known_users[name]

    def package(self, coord: PackageCoord) -> ServicePackage:
        pkg = self._packages.get(coord)
        if pkg is None:
            from shipyard.svc.package import load_service_package

            pkg = self._packages[coord] = load_service_package(self.settings, coord)
        return pkg

    def learn_stop(self, record: state.Record | None) -> None:
        """Take the package's stop script from a record: installed packages never change,
        and a shutdown of hundreds of instances then reads no manifest."""
        if record is not None and record.stop is not None and record.package:
            self._stops.setdefault(record.package, record.stop)

    def knows_stop(self, package: PackageCoord) -> bool:
        return str(package) in self._stops

    def has_stop_script(self, registration: Registration) -> bool:
        """Whether the registered package names a stop script (False when unreadable)."""
        known = self._stops.get(str(registration.package))
        if known is not None:
            return bool(known)
        try:
            return bool(self.package(registration.package).service.stop)
        except ShipyardError:
            return False

    def user(self, registration: Registration) -> ServiceUser:
        name = registration.user
        if not name:
            pkg = self.package(registration.package)
            name = users_mod.choose(self.settings, None, pkg.service.user,
                                    str(registration.package))
        if os.geteuid() != 0 and name != users_mod.current_user_name():
            raise ShipyardError(
                f"{registration.coordinate} is registered to run as {name}; only root "
                f"can start it (you are {users_mod.current_user_name()})"
            )
        user = self._users.get(name)
        if user is None:
            user = self._users[name] = users_mod.ensure(self.settings, name)
        return user

    def lock(self, coordinate: ServiceCoord) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.lock_path(coordinate), timeout=self.lock_timeout,
                         what=f"instance {coordinate}")


def require_registration(settings: Settings, coordinate: ServiceCoord) -> Registration:
    reg = registry.load(settings, coordinate)
    if reg is None:
        raise ShipyardError(
            f"unknown service {coordinate}: not registered "
            f"(no {registry.registration_path(settings, coordinate)})"
        )
    return reg
