"""The coordinator's fleet log: one line per event, on the ``shipyard.fleet.events`` logger.

The routes call these after the change is committed, so a line says what happened (a node
joined, came back, was revoked or left; an assignment changed; a node's announcements
changed; a pair was disabled or enabled). A node lost to its lease is logged by the lease
reaper (:mod:`.hub`). Each line carries its fields as ``extra`` (``event``, ``node``,
``revision``, ...) for ``--log-format json``. Nothing here is given a credential, a token
or a password, sealed or not: only names, coordinates, addresses and revisions.
"""

from __future__ import annotations

import logging

from shipyard.formats import fleet as wire

log = logging.getLogger("shipyard.fleet.events")


def joined(body: wire.JoinRequest, revision: int, peer: str) -> None:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(body.labels.items())) or "no labels"
    log.info("node %s joined from %s (address %s, %s, agent %s); revision %d", body.name,
             peer or "?", body.address, labels, body.agent_version or "?", revision,
             extra={"event": "node-joined", "node": body.name, "revision": revision})


def back(node: str, revision: int | None) -> None:
    log.info("node %s is back (its lease had run out)%s", node,
             f"; revision {revision}" if revision is not None else "",
             extra={"event": "node-back", "node": node, "revision": revision})


def revoked(node: str, revision: int, by: str) -> None:
    log.warning("node %s revoked by %s; revision %d", node, by, revision,
                extra={"event": "node-revoked", "node": node, "by": by,
                       "revision": revision})


def left(node: str, revision: int) -> None:
    log.info("node %s left the fleet (its credential is revoked); revision %d", node,
             revision, extra={"event": "node-left", "node": node, "revision": revision})


def changed(what: str, answer: wire.ChangeAnswer, by: str) -> None:
    """An operator's assign, unassign, disable or enable: one line per change it made."""
    if not answer.changed:
        log.info("%s by %s changed nothing; revision %d", what, by, answer.revision,
                 extra={"event": what, "by": by, "revision": answer.revision})
    for line in answer.changed:
        log.info("%s by %s; revision %d", line, by, answer.revision,
                 extra={"event": what, "by": by, "revision": answer.revision})


def announcements(node: str, body: wire.AnnouncementPublish, revision: int) -> None:
    shown = ", ".join(f"{a.instance} {a.interface} at {a.host}:{a.port} "
                      f"(sealed for {len(a.sealed)} node(s))"
                      for a in body.announcements) or "none"
    log.info("node %s announcements changed: %s; revision %d", node, shown, revision,
             extra={"event": "announcements", "node": node, "revision": revision,
                    "count": len(body.announcements)})
