"""Entry points other stages call so links follow every change ("make everything good").

:mod:`shipyard.node` calls :func:`after_register` after ``svc register`` and ``svc upgrade``
(generate the announcer's link config), and :func:`after_change` (reconcile) after every
register, unregister, upgrade, ``pkg install`` and ``pkg uninstall``. Both must never
raise for a link problem: they report it and return, because the change that triggered
them has already happened and succeeded. Their problems are one-line strings the caller
prints as warnings; nothing here prints a password.
"""

from __future__ import annotations

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.svc.registry import Registration

# A reconcile triggered by another command waits this long for one already running.
LOCK_WAIT = 120.0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ShipyardError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return f"internal error: {type(exc).__name__}: {exc}"


def after_register(settings: Settings, registration: Registration) -> list[str]:
    """Generate (or refresh, keeping the password) the link config of a registered instance.

    Returns one-line problems (empty when fine, or when the package announces nothing or is
    not installed yet: the next reconcile generates what is missing).
    """
    from shipyard.link import generate
    from shipyard.link.inventory import instance_for

    try:
        instance = instance_for(settings, registration)
        if instance.problem or instance.runtime_dir is None:
            return []
        problems = []
        for announce in instance.announces():
            if not any(v is not None for v in (announce.port, announce.hostname_prefix,
                                               announce.password, announce.port_param)):
                continue
            try:
                warnings: list[str] = []
                generate.generate(settings, announce, instance.runtime_dir,
                                  coordinate=instance.coordinate, user=instance.user,
                                  only_if_missing=False, params=instance.params(),
                                  warnings=warnings)
                problems += [f"link: {w}" for w in warnings if f"link: {w}" not in problems]
            except (ShipyardError, OSError) as exc:
                problems.append(f"link: {instance.coordinate}: cannot generate the "
                                f"{announce.interface} link config: {_describe(exc)}")
        return problems
    except Exception as exc:  # the promise: never raise into the caller
        return [f"link: {registration.coordinate}: {_describe(exc)}"]


def after_change(settings: Settings) -> list[str]:
    """Reconcile links after a change; returns one-line problems to show (may be empty)."""
    from shipyard.link.reconcile import reconcile

    try:
        report = reconcile(settings, lock_timeout=LOCK_WAIT)
    except Exception as exc:  # the promise: never raise into the caller
        return [f"link reconcile: {_describe(exc)} (run 'shipyard link reconcile')"]
    return [f"link: {line}" for line in [*report.warnings, *report.problem_lines()]]
