"""Pairs whose other end is on another host: the link stage's half of links across a fleet.

The node agent (``shipyard.node.agent_links``) learns remote announcements from the
coordinator; this module does the local work with the same adapters and rules as
``link reconcile``: ask a local announcer's adapter for its data, run a local acceptor's
adapter with an announcement's data (``--remove`` for what it held before), and keep what
each remote pair holds in its own state file, so a kill between the adapter and the save
is repaired the same way (intent first, see :mod:`shipyard.link.state`).

Remote pairs live in ``<state>/fleet-links.json``, apart from ``links.json``: the local
reconcile drops pairs whose announcer is not registered on this host, which is every
remote pair. Both files are written under the same link lock, so the two never run an
adapter on one acceptor at once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from shipyard.config import Settings
from shipyard.coords import ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.fsutil import atomic_write, file_lock
from shipyard.link import adapters, generate
from shipyard.link.instance_env import instance_env
from shipyard.link.inventory import Instance, instance_for
from shipyard.link.running import Running
from shipyard.link.state import LinkData, LinkState, lock_path, now
from shipyard.manifest import LinkAccept, LinkAnnounce
from shipyard.svc import registry

STATE_NAME = "fleet-links.json"


def state_path(settings: Settings) -> Path:
    return settings.state_dir / STATE_NAME


@contextlib.contextmanager
def locked(settings: Settings, timeout: float = 300.0) -> Iterator[LinkState]:
    """The remote pairs' state under the link lock (shared with ``link reconcile``)."""
    with file_lock(lock_path(settings), timeout=timeout, what="link state"):
        yield load(settings)


def load(settings: Settings) -> LinkState:
    path = state_path(settings)
    try:
        return LinkState.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return LinkState()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ShipyardError(f"{path}: not valid remote link state ({exc}); move it aside "
                            "(the agent relinks every remote pair)") from None


def save(settings: Settings, state: LinkState) -> None:
    """0600: ``--remove`` must repeat the applied password, so the file holds it."""
    state.updated = now()
    text = json.dumps(state.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
    atomic_write(state_path(settings), text, mode=0o600)


def local_instance(settings: Settings, service: str) -> Instance | None:
    """The registered instance ``service`` with its manifest, or None when not registered."""
    try:
        registration = registry.load(settings, ServiceCoord.parse(service))
    except ShipyardError:
        return None
    if registration is None:
        return None
    return instance_for(settings, registration)


def announce(settings: Settings, instance: Instance, spec: LinkAnnounce,
             running: Running | None = None) -> LinkData | str:
    """The announcer's data from its adapter (its generated config created if missing),
    or a one-line reason."""
    if instance.package_dir is None:
        return instance.problem or f"{instance.coordinate}: package not installed"
    if instance.runtime_dir is not None and any(
            v is not None for v in (spec.port, spec.hostname_prefix, spec.password)):
        try:
            generate.generate(settings, spec, instance.runtime_dir,
                              coordinate=instance.coordinate, user=instance.user,
                              only_if_missing=True)
        except (ShipyardError, OSError) as exc:
            message = exc.message if isinstance(exc, ShipyardError) else str(exc)
            return f"cannot generate link config: {message}"
    try:
        run_as = adapters.resolve_user(instance.user)
    except LookupError as exc:
        return f"announce adapter: {exc}"
    problem = generate.prepare_runtime(settings, instance)
    if problem:
        return f"announce adapter: {problem}"
    extra = {"interface": spec.interface}
    if instance.runtime_dir is not None:
        extra["config"] = str(generate.config_path(instance.runtime_dir, spec.interface))
    adapter = instance.package_dir / spec.adapter
    run = adapters.run_adapter([str(adapter), *adapters.ANNOUNCE_FLAGS],
                               env=adapters.adapter_env(instance_env(instance, **extra), run_as),
                               cwd=instance.package_dir, run_as=run_as,
                               timeout=settings.link.adapter_timeout,
                               running=running)
    if not run.ok:
        return adapters.describe_failure("announce", run)
    try:
        return adapters.parse_announce(run.stdout)
    except ValueError as exc:
        return f"announce adapter {adapter} {exc}"


class Accepted(NamedTuple):
    """One accept adapter run: why it failed (None when it succeeded), its exit code, and
    whether it changed the acceptor's configuration (succeeded without saying
    "unchanged"), which is what makes a reload or restart owed."""

    error: str | None
    code: int | None
    changed: bool = False


def accept(settings: Settings, instance: Instance, spec: LinkAccept, announcer: str,
           data: LinkData, *, remove: bool, running: Running | None = None) -> Accepted:
    """Run the acceptor's adapter once."""
    if instance.package_dir is None:
        return Accepted(instance.problem or f"{instance.coordinate}: package not installed",
                        None)
    try:
        run_as = adapters.resolve_user(instance.user)
    except LookupError as exc:
        return Accepted(f"accept adapter: {exc}", None)
    problem = generate.prepare_runtime(settings, instance)
    if problem:
        return Accepted(f"accept adapter: {problem}", None)
    # As for local pairs: the password travels in the environment, on the command line
    # only when the package asks (password_via = "argv").
    env = instance_env(instance, interface=spec.interface, announcer=announcer,
                       action="remove" if remove else "apply", host=data.host,
                       port=str(data.port), password=data.password,
                       on_change=spec.on_change)
    adapter = instance.package_dir / spec.adapter
    argv = adapters.accept_argv(adapter, data, remove=remove,
                                password_argv=spec.password_via == "argv")
    run = adapters.run_adapter(argv, env=adapters.adapter_env(env, run_as),
                               cwd=instance.package_dir, run_as=run_as,
                               timeout=settings.link.adapter_timeout,
                               running=running)
    if run.ok:
        # The reload or restart the package asks for (on_change) is owed by the caller,
        # once per acceptor after all its pairs ran (node.agent_links), when this changed.
        return Accepted(None, 0, not adapters.reports_unchanged(run.stdout))
    kind = "accept --remove" if remove else "accept"
    return Accepted(adapters.describe_failure(kind, run, [data.password]), run.returncode)


def set_acceptors(settings: Settings, instance: Instance, spec: LinkAnnounce,
                  acceptors: tuple[tuple[str, int], ...]) -> bool:
    """Write where ``instance`` connects into its generated link file; True on a change."""
    if instance.runtime_dir is None:
        return False
    return generate.set_acceptors(settings, spec, instance.runtime_dir,
                                  coordinate=instance.coordinate, user=instance.user,
                                  acceptors=acceptors)
