"""The node agent (``shipyard node agent``): long-polls this node's desired document,
keeps it on disk as last known good, converges, reports and heartbeats.

Coordinator away: the agent changes nothing (no document, no converge: every service keeps
running as it is), retries with a capped, jittered backoff, and once the coordinator
answers again resumes from its index, so whatever changed meanwhile arrives at once.
The first poll of a process asks with index 0, so a restarted agent converges at once.

One log line per event on stderr (:mod:`shipyard.logsetup`, configured by the command:
``--log-level``, ``--log-format text|json``), each with its ``event`` field for JSON:
``start``, ``desired``, ``converge``, ``action``, ``action-failed``, ``unreachable``,
``back``, ``report-failed``, ``refused``, ``stop``; the links step adds ``link``,
``link-failed``, ``unlink``. The node's credential is registered with logsetup as a
secret, so even a line that quoted it would show ``[redacted]``. A credential the
coordinator refuses (revoked, or this node left) ends the agent with exit code 3, which the
systemd unit does not restart.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from collections.abc import Callable
from typing import Any

from shipyard import __version__, logsetup
from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.formats import fleet as wire
from shipyard.node import execute
from shipyard.node import identity as ident
from shipyard.node.client import ApiError, FleetClient, Unreachable
from shipyard.node.plan import Action, for_node, plan

log = logging.getLogger("shipyard.node")
EXIT_REFUSED = 3


class Refused(ShipyardError):
    exit_code = EXIT_REFUSED


class Backoff:
    """Capped exponential backoff with jitter (each pause in [d/2, d])."""

    def __init__(self, cap: float, first: float = 0.2) -> None:
        self.cap = max(first, cap)
        self.first = first
        self.current = first

    def next(self) -> float:
        delay = self.current * random.uniform(0.5, 1.0)
        self.current = min(self.cap, self.current * 2)
        return delay

    def reset(self) -> None:
        self.current = self.first


class Agent:
    def __init__(self, settings: Settings, *, wait: float = 60.0,
                 heartbeat: float | None = None) -> None:
        self.settings = settings
        self.identity = ident.load_identity(settings)
        logsetup.register_secret(self.identity.credential)
        self.wait = wait
        self.heartbeat_seconds = heartbeat or float(
            self._stored("heartbeat_seconds") or 10.0)
        source = settings.node.source_address.strip() or None
        self.client = FleetClient(self.identity.coordinator, self.identity.credential,
                                  local_address=source)
        self.tracker = execute.Tracker()
        self.managed = ident.load_managed(self.identity)
        self.doc = ident.load_desired(self.identity)
        self.applied = 0
        self.stop = threading.Event()
        self.busy = threading.Lock()
        self.backoff = Backoff(settings.node.backoff_max)
        self._away = False
        self._converging: dict[str, wire.DesiredInstance] = {}

    def _stored(self, key: str) -> Any:
        import json

        try:
            return json.loads((self.identity.dir / "node.json").read_text()).get(key)
        except (OSError, ValueError):
            return None

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        name = self.identity.name
        log.info("agent %s starting: node %s, coordinator %s, last known revision %s",
                 __version__, name, self.identity.coordinator,
                 self.doc.revision if self.doc else "none",
                 extra={"event": "start", "node": name})
        beat = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        beat.start()
        index = 0
        try:
            while not self.stop.is_set():
                try:
                    doc = self.client.desired(name, index, self.wait)
                except Unreachable as exc:
                    self._unreachable(exc)
                    continue
                except ApiError as exc:
                    if exc.status in (401, 403):
                        log.error("the coordinator refused this node: %s", exc.message,
                                  extra={"event": "refused", "node": name})
                        raise Refused(f"the coordinator refused this node: {exc.message}") \
                            from None
                    self._unreachable(exc)
                    continue
                self._back()
                if self.doc is None or doc.revision != self.doc.revision:
                    ident.save_desired(self.identity, doc)
                    log.info("desired revision %d: %d instance(s)", doc.revision,
                             len(doc.instances),
                             extra={"event": "desired", "revision": doc.revision})
                self.doc = doc
                index = doc.revision
                with self.busy:
                    if self.stop.is_set():
                        break
                    self.converge(doc)
        finally:
            self.stop.set()
            self.client.close()
        log.info("agent stopped (services left as they are)", extra={"event": "stop"})
        return 0

    def _unreachable(self, exc: ShipyardError) -> None:
        delay = self.backoff.next()
        self._lost_contact(exc)
        self.stop.wait(delay)

    def _lost_contact(self, exc: ShipyardError) -> None:
        """One line per outage, whichever call (poll, links, report) notices it first; the
        poll loop's next answer logs that the coordinator answers again."""
        if not self._away:
            log.warning("%s; changing nothing, retrying with backoff (at most %.0f s)",
                        exc.message, self.backoff.cap,
                        extra={"event": "unreachable",
                               "coordinator": self.identity.coordinator})
            self._away = True

    def _back(self) -> None:
        if self._away:
            log.info("coordinator %s answers again", self.identity.coordinator,
                     extra={"event": "back", "coordinator": self.identity.coordinator})
            self._away = False
        self.backoff.reset()

    def converge(self, doc: wire.DesiredDocument) -> None:
        actions = self.plan(doc)
        if actions:
            log.info("converging to revision %d: %s", doc.revision,
                     "; ".join(a.describe() for a in actions),
                     extra={"event": "converge", "revision": doc.revision,
                            "actions": len(actions)})
        self._converging = {inst.service: inst for inst in doc.instances}
        failed = self.tracker.execute(self.settings, actions, _say, self._before)
        for action in actions:
            if action.kind == "unregister" and action.service not in self.tracker.errors:
                self.managed.discard(action.service)
                ident.save_managed(self.identity, self.managed)
        if failed:
            log.warning("revision %d: %d instance(s) failed to converge", doc.revision, failed,
                        extra={"event": "converge-failed", "revision": doc.revision})
        self.applied = doc.revision
        self._report(doc)

    def plan(self, doc: wire.DesiredDocument) -> list[Action]:
        found, _states = execute.actual(self.settings)
        desired = for_node(doc.instances, self.identity.name, self.identity.address)
        return plan(desired, found, execute.installed(self.settings), self.managed)

    def _before(self, action: Action) -> None:
        # The intent is on disk before the instance exists: a crash right after register
        # leaves an instance the agent knows it owns.
        if action.kind == "register" and action.service not in self.managed:
            self.managed.add(action.service)
            ident.save_managed(self.identity, self.managed)
        # Where an announcer connects is in its link file before it starts, not after:
        # the links step would otherwise restart every new transport at once.
        inst = self._converging.get(action.service)
        if action.kind == "start" and inst is not None and inst.acceptors:
            from shipyard.node.agent_links import before_start

            before_start(self.settings, inst)

    def _report(self, doc: wire.DesiredDocument) -> None:
        links: list[wire.PairReport] = []
        error = ""
        hook = _links_hook()
        if hook is not None:
            try:
                links = list(hook(self.settings, self.client, self.identity, doc,
                                  on_unreachable=self._lost_contact))
            except ShipyardError as exc:
                error = f"links: {exc.message}"
                log.warning("%s", error, extra={"event": "link-failed"})
        body = wire.NodeReport(
            revision_applied=self.applied, agent_version=__version__,
            packages=execute.installed(self.settings),
            instances=self.tracker.report(self.settings, doc, self.managed),
            links=links, last_error=error)
        try:
            self.client.report(self.identity.name, body)
        except Unreachable as exc:
            self._lost_contact(exc)
        except ApiError as exc:
            log.warning("report not delivered: %s", exc.message,
                        extra={"event": "report-failed"})

    def _heartbeats(self) -> None:
        while not self.stop.wait(self.heartbeat_seconds * random.uniform(0.8, 1.0)):
            try:
                self.client.heartbeat(self.identity.name,
                                      wire.Heartbeat(revision_applied=self.applied))
            except (Unreachable, ApiError):
                continue  # the poll loop says so, once


def _say(action: Action, message: str, failed: bool) -> None:
    """One line per converge action: what it did, or why it failed (a warning)."""
    fields = {"event": "action-failed" if failed else "action", "action": action.kind,
              "service": action.service}
    if failed:
        log.warning("%s failed: %s", action.describe(), message, extra=fields)
    else:
        log.info("%s: %s", action.describe(), message, extra=fields)


def _links_hook() -> Callable[..., Any] | None:
    """The links work's per-document step (``shipyard.node.agent_links.converge``), once
    it exists."""
    try:
        from shipyard.node import agent_links
    except ImportError:
        return None
    return getattr(agent_links, "converge", None)


def run_agent(settings: Settings, *, wait: float = 60.0, heartbeat: float | None = None) -> int:
    """Run until a signal (0) or until the coordinator refuses this node (3). The caller
    configured logging (``shipyard node agent`` does, with its ``--log-*`` options)."""
    agent = Agent(settings, wait=wait, heartbeat=heartbeat)

    def _terminate(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum, extra={"event": "signal"})
        agent.stop.set()
        if agent.busy.acquire(blocking=False):  # not converging: leave the poll at once
            agent.busy.release()
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        return agent.run()
    except SystemExit:
        log.info("agent stopped (services left as they are)", extra={"event": "stop"})
        return 0
