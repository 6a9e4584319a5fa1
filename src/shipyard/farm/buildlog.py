"""A build's log: chunk rows appended within ``farm.log_max_bytes``, and read back by
byte offset (the API's ``/log``, the pages' live stream).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from shipyard.db.farm_models import FINAL_STATES
from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.errors import NotFound
from shipyard.farm.statements import INSERT_LOG, B, L
from shipyard.formats.farm import LogText


def _cut_utf8(data: str, limit: int) -> str:
    """The longest prefix of ``data`` that is at most ``limit`` UTF-8 bytes."""
    return data.encode("utf-8")[:max(0, limit)].decode("utf-8", errors="ignore")


class LogWriter:
    """Appends to one build's log within ``farm.log_max_bytes``; collects the chunk rows so
    one INSERT writes them, and tracks the build's new ``log_bytes``/``log_truncated`` for
    the caller's UPDATE of the build row."""

    def __init__(self, b: Mapping[str, Any], cfg: FarmConfig) -> None:
        self.build_id = b["id"]
        self.attempt = b["attempt"]
        self.size = b["log_bytes"]
        self.truncated = bool(b["log_truncated"])
        self.cap = cfg.log_max_bytes
        self.rows: list[dict[str, Any]] = []

    def _chunk(self, data: str) -> None:
        size = len(data.encode("utf-8"))
        self.rows.append({"build_id": self.build_id, "attempt": self.attempt,
                          "offset": self.size, "size": size, "data": data})
        self.size += size

    def _note_truncation(self) -> None:
        self.truncated = True
        self._chunk(f"\n[shipyard] log truncated at {self.size} bytes "
                    "(farm.log_max_bytes); further output dropped\n")

    def output(self, data: str) -> None:
        """Build output: kept up to the cap, then one truncation note, then dropped."""
        if not data or self.truncated:
            return
        room = self.cap - self.size
        if room <= 0:
            self._note_truncation()
            return
        if len(data) * 4 > room and len(data.encode("utf-8")) > room:
            self._chunk(_cut_utf8(data, room))
            self._note_truncation()
            return
        self._chunk(data)

    def note(self, data: str) -> None:
        """A line of the farm's own (attempts, results): always kept, it is short and a
        reader must learn what happened even after a build flooded its log."""
        if data:
            self._chunk(data)

    def flush(self, conn: Connection) -> dict[str, Any]:
        """Insert the chunks, as one row (they are contiguous: a statement fewer for a
        finish that carries output and a note); returns the build columns to update."""
        if self.rows:
            first = self.rows[0]
            row = {**first, "size": sum(r["size"] for r in self.rows),
                   "data": "".join(r["data"] for r in self.rows)}
            conn.execute(INSERT_LOG, row)
            self.rows = []
        return {"log_bytes": self.size, "log_truncated": self.truncated}


def read_log(db: FarmDB, cfg: FarmConfig, build_id: int, offset: int = 0,
             limit: int = 1 << 20) -> LogText:
    """Log text from byte ``offset``: whole chunks, so ``next_offset`` is always a chunk end."""
    with db.rtx() as conn:
        b = conn.execute(select(B.c.state, B.c.log_truncated, B.c.log_bytes)
                         .where(B.c.id == build_id)).first()
        if b is None:
            raise NotFound(f"no build {build_id}")
        rows = conn.execute(
            select(L.c.offset, L.c.size, L.c.data)
            .where(L.c.build_id == build_id, L.c.offset + L.c.size > offset)
            .order_by(L.c.offset)).all()
    parts: list[bytes] = []
    total = 0
    next_offset = offset
    for chunk_offset, size, data in rows:
        raw = data.encode("utf-8")
        if chunk_offset < offset:
            raw = raw[offset - chunk_offset:]
        parts.append(raw)
        total += len(raw)
        next_offset = chunk_offset + size
        if total >= limit:
            break
    return LogText(
        build=build_id, state=b.state, offset=offset, next_offset=next_offset,
        text=b"".join(parts).decode("utf-8", errors="replace"),
        truncated=bool(b.log_truncated), size=b.log_bytes,
        complete=b.state in FINAL_STATES and next_offset >= b.log_bytes,
    )


