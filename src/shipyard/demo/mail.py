"""The mail the SMTP sink caught: a Maildir written by aiosmtpd's Mailbox handler."""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from email.message import Message
from pathlib import Path


@dataclass(frozen=True)
class Mail:
    sender: str
    to: str
    subject: str
    body: str

    def lines(self, body_lines: int = 12) -> list[str]:
        body = self.body.strip().splitlines()
        shown = body[:body_lines] + (["..."] if len(body) > body_lines else [])
        return [f"From: {self.sender}", f"To: {self.to}", f"Subject: {self.subject}", "",
                *shown]


def _text(message: Message) -> str:
    if message.is_multipart():
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    return payload.decode(part.get_content_charset() or "utf-8", "replace")
        return ""
    payload = message.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(message.get_content_charset() or "utf-8", "replace")
    return str(message.get_payload())


def caught(maildir: Path) -> list[Mail]:
    """Every message in the sink, oldest first."""
    if not (maildir / "new").is_dir():
        return []
    box = mailbox.Maildir(maildir, create=False)
    keyed = []
    for key in box.iterkeys():
        message = box.get_message(key)
        keyed.append((message.get_date(), key, message))
    return [Mail(str(m.get("From", "")), str(m.get("To", "")), str(m.get("Subject", "")),
                 _text(m)) for _date, _key, m in sorted(keyed, key=lambda item: item[0])]
