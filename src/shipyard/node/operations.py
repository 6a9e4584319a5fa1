"""One host's changes followed by their links: install, uninstall, register, unregister.

The package and service stages each make their change atomically and know nothing of
links (they sit below the link stage); this module runs the change, then lets links
follow it ("make everything good"). A link problem never undoes the change that triggered
it: it comes back as a warning line, because the change has already happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shipyard.config import Settings
from shipyard.coords import PackageCoord
from shipyard.pkg import install as pkg_install
from shipyard.pkg.install import InstallResult, UninstallResult

if TYPE_CHECKING:  # the service stage is imported by the calls that need it (start-up time)
    from shipyard.svc.register import Change
    from shipyard.svc.registry import Registration

Echo = Callable[[str], None]


def relink(settings: Settings, registration: Registration | None = None) -> list[str]:
    """Refresh a (re)registered instance's link config, then reconcile; returns problems.

    The link hooks promise not to raise; should one do so anyway, that is reported as a
    warning too.
    """
    from shipyard.link import hooks

    problems: list[str] = []
    try:
        if registration is not None:
            problems += [str(line) for line in hooks.after_register(settings, registration)]
        problems += [str(line) for line in hooks.after_change(settings)]
    except Exception as exc:  # the hooks must not raise; report if they do anyway
        problems.append(f"link reconcile failed: {type(exc).__name__}: {exc}")
    return problems


def install(settings: Settings, target: str, *, unsigned: bool = False,
            progress: bool = False, echo: Echo | None = None) -> list[InstallResult]:
    """``pkg install``, then reconcile links when something new was installed."""
    results = pkg_install.install(settings, target, unsigned=unsigned, progress=progress,
                                  echo=echo)
    if any(r.status == "installed" for r in results):
        results[-1].warnings.extend(relink(settings))
    return results


def instances_using(settings: Settings, coord: PackageCoord) -> list[str]:
    """The registered instances that run ``coord`` (what uninstall must not pull away)."""
    from shipyard.svc import registry

    return [str(c) for c in registry.instances_using(settings, coord)]


def uninstall(settings: Settings, coord: str | PackageCoord, force: bool = False
              ) -> UninstallResult:
    """``pkg uninstall`` (refused while a registered instance uses the package, unless
    forced), then reconcile links."""
    result = pkg_install.uninstall(settings, coord, force,
                                   users_of=lambda c: instances_using(settings, c))
    result.warnings.extend(relink(settings))
    return result


def register(settings: Settings, coordinate_text: str, package_text: str, *,
             boot_flag: bool = True, after: list[str] | None = None,
             user: str | None = None, params: list[str] | None = None) -> Change:
    """``svc register``, then generate the instance's link config and reconcile."""
    from shipyard.svc import register as svc_register

    change = svc_register.register(settings, coordinate_text, package_text,
                                   boot_flag=boot_flag, after=after, user=user, params=params)
    change.warnings += relink(settings, change.registration)
    return change


def unregister(settings: Settings, coordinate_text: str, *, stop: bool = False) -> Change:
    """``svc unregister``, then reconcile (its links are taken down)."""
    from shipyard.svc import register as svc_register

    change = svc_register.unregister(settings, coordinate_text, stop=stop)
    change.warnings += relink(settings)
    return change
