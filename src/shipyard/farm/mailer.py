"""Send the outbox: failure mail, each row once, surviving restarts of the coordinator.

A row is claimed for a while (``claimed_until``) before its SMTP conversation and marked
``sent_at`` right after the server accepted it, so two coordinators never send one row and
a restart resumes where it stopped. The one window left (the server accepted, the process
died before the commit) can repeat a mail; its ``Message-ID`` is fixed per build, so a
mail system that deduplicates drops the copy.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import or_, select, update

from shipyard.config import Settings
from shipyard.db.farm_models import FarmOutbox
from shipyard.farm import events
from shipyard.farm.db import FarmDB, utcnow

CLAIM_SECONDS = 120
MAX_BACKOFF = 600


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    user: str = ""
    password: str = ""
    starttls: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(host=str(settings.get("smtp.host") or "").strip(),
                   port=int(settings.get("smtp.port")),
                   sender=str(settings.get("smtp.sender")),
                   user=str(settings.get("smtp.user") or ""),
                   password=str(settings.get("smtp.password") or ""),
                   starttls=bool(settings.get("smtp.starttls")))

    @property
    def enabled(self) -> bool:
        return bool(self.host)


def _message(smtp: SmtpConfig, row: FarmOutbox) -> EmailMessage:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = row.recipient
    message["Subject"] = row.subject
    message["Message-ID"] = row.message_id
    message["Date"] = format_datetime(utcnow())
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(row.body)
    return message


def _send(smtp: SmtpConfig, message: EmailMessage) -> None:
    with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.user:
            client.login(smtp.user, smtp.password)
        client.send_message(message)


def send_due(db: FarmDB, smtp: SmtpConfig, *, limit: int = 20) -> int:
    """Send every due outbox row this process can claim; returns how many were sent."""
    if not smtp.enabled:
        return 0
    sent = 0
    now = utcnow()
    with db.read() as session:
        due = list(session.scalars(
            select(FarmOutbox.id).where(FarmOutbox.sent_at.is_(None),
                                        FarmOutbox.next_try_at <= now,
                                        or_(FarmOutbox.claimed_until.is_(None),
                                            FarmOutbox.claimed_until < now))
            .order_by(FarmOutbox.id).limit(limit)))
    for row_id in due:
        now = utcnow()
        with db.write() as session:
            claimed = session.execute(
                update(FarmOutbox)
                .where(FarmOutbox.id == row_id, FarmOutbox.sent_at.is_(None),
                       or_(FarmOutbox.claimed_until.is_(None), FarmOutbox.claimed_until < now))
                .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
                .execution_options(synchronize_session=False)).rowcount
            row = session.get(FarmOutbox, row_id) if claimed else None
            message = _message(smtp, row) if row is not None else None
            attempts = row.attempts if row is not None else 0
            build_id, recipient = (row.build_id, row.recipient) if row is not None else (
                None, "")
        if message is None:
            continue
        try:
            _send(smtp, message)
        except (OSError, smtplib.SMTPException) as exc:
            delay = min(MAX_BACKOFF, 5 * 2 ** min(attempts, 10))
            events.mail_failed(row_id, build_id, f"{type(exc).__name__}: {exc}", delay)
            with db.write() as session:
                session.execute(
                    update(FarmOutbox).where(FarmOutbox.id == row_id)
                    .values(attempts=attempts + 1, last_error=f"{type(exc).__name__}: {exc}",
                            claimed_until=None,
                            next_try_at=utcnow() + timedelta(seconds=delay))
                    .execution_options(synchronize_session=False))
            continue
        with db.write() as session:
            session.execute(update(FarmOutbox).where(FarmOutbox.id == row_id)
                            .values(sent_at=utcnow(), attempts=attempts + 1, last_error="")
                            .execution_options(synchronize_session=False))
        events.mail_sent(row_id, build_id, recipient)
        sent += 1
    return sent
