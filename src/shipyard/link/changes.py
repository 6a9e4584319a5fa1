"""After the adapters: reload or restart each acceptor whose config they changed, once.

The adapter cannot do it (it runs as the service user with a clean environment);
Shipyard can, through svc. A failed reload stays owed in the pair's state
(``pending_change``) and is tried again by the next reconcile.
"""

from __future__ import annotations

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.link.inventory import Instance, Inventory
from shipyard.link.session import Session
from shipyard.link.state import FAILED


def apply_changes(session: Session, inventory: Inventory) -> None:
    """Reload or restart each acceptor owed a change (restart wins over reload)."""
    owed = session.owed
    for pair in session.state.pairs.values():
        if pair.pending_change and pair.acceptor:
            owed.setdefault(pair.acceptor, []).append((pair, pair.pending_change))
    for acceptor in sorted(owed):
        entries = owed[acceptor]
        action = "restart" if any(a == "restart" for _p, a in entries) else "reload"
        pairs = [p for p, _a in entries if p is not None]
        instance = inventory.instances.get(acceptor)
        if instance is None or instance.registration is None:
            for pair in pairs:
                pair.pending_change = None
            continue
        message, error = change_acceptor(session.settings, instance, action)
        for pair in pairs:
            pair.change = message if error is None else f"{action} failed: {error}"
            pair.pending_change = None if error is None else action
            if error is not None:
                pair.set_state(FAILED, f"applied, but the {action} failed: {error}")
        if error is not None:
            session.report.problems.append(f"{acceptor}: {action} after a link change "
                                           f"failed: {error}")
        else:
            session.progress(message)


def change_acceptor(settings: Settings, instance: Instance,
            action: str) -> tuple[str, str | None]:
    """Reload or restart a running acceptor: (what happened, error or None)."""
    from shipyard.svc import control
    from shipyard.svc import reload as svc_reload

    assert instance.registration is not None
    coordinate = instance.registration.coordinate
    ctx = control.Context(settings)
    try:
        if action == "reload":
            return svc_reload.reload(ctx, coordinate).message, None
        if not control.is_active(ctx, instance.registration):
            return f"{coordinate} is not running; it reads its config when it starts", None
        control.stop(ctx, coordinate)
        started = control.start(ctx, coordinate)
        return f"restarted {coordinate} (pid {started.pid})", None
    except ShipyardError as exc:
        return "", exc.message
