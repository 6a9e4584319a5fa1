"""Logging for Shipyard's long-running processes (coordinator, worker, node agent).

One line per event on stderr, where a service manager collects it: ``text`` for people
(``LEVEL logger: message``) or ``json`` for log shippers (one object per line: ``level``,
``logger``, ``message``, and the event's fields given as ``extra={"event": ..., ...}``).
Under systemd (``JOURNAL_STREAM`` set) no timestamp is written: journald stamps every
line itself, and a second clock in the text only confuses. Secrets are never passed to a
logger in the first place; as a last guard, a line that contains a registered secret has
it replaced by ``[redacted]`` (:func:`register_secret`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
ROOT = "shipyard"
# LogRecord attributes that are not an event's own fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message",
                                                                          "asctime"}
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Never let ``secret`` reach a log line (a token the process was given, a password)."""
    if secret and len(secret) >= 8:
        with _secrets_lock:
            _secrets.add(secret)


def _redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")}


class TextFormatter(logging.Formatter):
    def __init__(self, timestamps: bool) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if self.timestamps:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            line = f"{stamp}.{int(record.msecs):03d}Z {line}"
        return _redact(line)


class JsonFormatter(logging.Formatter):
    def __init__(self, timestamps: bool) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {}
        if self.timestamps:
            entry["ts"] = round(record.created, 3)
        entry.update(level=record.levelname.lower(), logger=record.name,
                     message=record.getMessage(), **_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(level: str = "info", fmt: str = "text", *,
                      stream: Any = None) -> None:
    """Send the ``shipyard`` loggers (and Uvicorn's errors) to stderr, one line per event.
    Raises ValueError naming a bad level or format (the CLI validates both first)."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    timestamps = not os.environ.get("JOURNAL_STREAM")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(timestamps) if fmt == "json"
                         else TextFormatter(timestamps))
    numeric = getattr(logging, level.upper())
    for name in (ROOT, "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(numeric)
        logger.propagate = False
