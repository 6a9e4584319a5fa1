"""The mails the farm queues: one outbox row per failed (or unpublishable) build, written
in the transaction that fails it, so the mark and the mail never part. :mod:`.mailer`
sends them.
"""

from __future__ import annotations

import email.utils
import socket
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.statements import BUILD, O, insert_ignore, row_dict, set_build
from shipyard.timeutil import utcnow

MAIL_TAIL_LINES = 40


def _recipient(b: Mapping[str, Any]) -> str | None:
    for candidate in (b["maintainer"], b["committer"]):
        _name, address = email.utils.parseaddr(candidate or "")
        if address and "@" in address:
            return str(candidate)
    return None


def queue_failure_mail(conn: Connection, cfg: FarmConfig, b: Mapping[str, Any]) -> None:
    """One outbox row per failed build, in the transaction that failed it (unique key:
    a second failure report of the same build never mails twice)."""
    if not cfg.mail:
        return
    recipient = _recipient(b)
    if recipient is None:
        return
    tail_lines = (b["tail"] or b["reason"]).splitlines()[-MAIL_TAIL_LINES:]
    version = b["version"] or "(version unknown)"
    body = "\n".join([
        f"The farm could not build {b['package']} {version}.",
        "",
        f"Package:  {b['package']} {version}",
        f"Commit:   {b['commit']}" + (f" ({b['ref']})" if b["ref"] else ""),
        f"Source:   {b['repo_url']}" + (f" ({b['subdir']})" if b["subdir"] else ""),
        f"Worker:   {b['worker'] or '-'} (attempt {b['attempt']})",
        f"Reason:   {b['reason']}",
        f"Log:      {cfg.build_url(b['id'])}",
        "",
        "Last lines of the output:",
        "",
        *("    " + line for line in tail_lines),
        "",
        "The farm does not retry a failed build by itself: push a new commit of the",
        "package, or force a rebuild (shipyard farm build request "
        f"{b['package']} --force).",
        "",
    ])
    now = utcnow()
    insert_ignore(conn, O, {
        "key": f"build-failed:{b['id']}", "build_id": b["id"], "recipient": recipient,
        "subject": f"[shipyard] build {b['id']} failed: {b['package']} {version}",
        "body": body, "message_id": f"<shipyard-build-{b['id']}-failed@{socket.getfqdn()}>",
        "created_at": now, "next_try_at": now, "attempts": 0, "last_error": ""}, "key")


def fail_publication(db: FarmDB, cfg: FarmConfig, failures: Mapping[int, str]) -> None:
    """Mark builds whose package the repository refused, and mail each maintainer why (in
    the same transaction: the mark and the mail never part)."""
    if not failures:
        return
    with db.tx() as conn:
        for build_id, why in failures.items():
            set_build(conn, build_id, {"publish_state": "error", "publish_error": why})
            build = row_dict(conn.execute(BUILD, {"p_build": build_id}).first())
            if build is not None:
                _queue_publish_failure_mail(conn, cfg, build)


def _queue_publish_failure_mail(conn: Connection, cfg: FarmConfig,
                                b: Mapping[str, Any]) -> None:
    if not cfg.mail:
        return
    recipient = _recipient(b)
    if recipient is None:
        return
    body = "\n".join([
        f"The farm built {b['package']} {b['version']}, but the repository refused the "
        "package, so it is not installable.",
        "",
        f"Package:  {b['package']} {b['version']}",
        f"Commit:   {b['commit']}" + (f" ({b['ref']})" if b["ref"] else ""),
        f"Reason:   {b['publish_error']}",
        f"Build:    {cfg.build_url(b['id'])}",
        "",
        "A version, once published, never changes its content: give the package a new",
        "version and push it.",
        "",
    ])
    now = utcnow()
    insert_ignore(conn, O, {
        "key": f"publish-failed:{b['id']}", "build_id": b["id"], "recipient": recipient,
        "subject": f"[shipyard] build {b['id']} could not be published: "
                   f"{b['package']} {b['version']}",
        "body": body,
        "message_id": f"<shipyard-build-{b['id']}-unpublished@{socket.getfqdn()}>",
        "created_at": now, "next_try_at": now, "attempts": 0, "last_error": ""}, "key")
