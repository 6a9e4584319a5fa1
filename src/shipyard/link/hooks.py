"""Entry points other stages call so links follow every change ("make everything good").

``svc register`` calls :func:`after_register` (generate the announcer's link config), and
``svc register``/``unregister`` and ``pkg install``/``uninstall`` call :func:`after_change`
(reconcile). Both must never raise for a link problem: they report it and return, because
the change that triggered them has already happened and succeeded.
"""

from __future__ import annotations

from shipyard.config import Settings
from shipyard.svc.registry import Registration


def after_register(settings: Settings, registration: Registration) -> None:
    """Generate the link config of a newly registered announcing instance."""
    return None


def after_change(settings: Settings) -> list[str]:
    """Reconcile links after a change; returns one-line problems to show (may be empty)."""
    return []
