"""A build's output on the worker, between the build that writes it and the coordinator
that stores it: kept in memory while the coordinator is unreachable, bounded by what the
coordinator would keep anyway, and shipped in order, each character once."""

from __future__ import annotations

import collections
import threading

TAIL_CHARS = 8192  # the end of the output the finish carries (the failure mail shows it)


class LogSink:
    """File-like sink for build output (``pack_directory`` writes to it), shipped in
    order, each character once: ``pos`` counts what the coordinator has acknowledged."""

    def __init__(self, limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._pending_chars = 0
        self.limit = limit  # the coordinator keeps no more than this: hold no more either
        self.pos = 0
        self.tail: collections.deque[str] = collections.deque()
        self._tail_chars = 0
        self.dropping = False  # no more output is kept for sending (only the tail)
        self.truncated = False  # the coordinator said it truncated the log

    def write(self, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            if not self.dropping:
                if self.limit is not None and self.pos + self._pending_chars + len(text) > (
                        self.limit):
                    # The coordinator would truncate it anyway; while it is unreachable
                    # this keeps a flood from filling the worker's memory.
                    room = max(0, self.limit - self.pos - self._pending_chars)
                    text_kept = text[:room] + (
                        "\n[worker] output beyond farm.log_max_bytes dropped\n")
                    self._pending.append(text_kept)
                    self._pending_chars += len(text_kept)
                    self.dropping = True
                else:
                    self._pending.append(text)
                    self._pending_chars += len(text)
            self.tail.append(text)
            self._tail_chars += len(text)
            while self._tail_chars > TAIL_CHARS * 2 and len(self.tail) > 1:
                self._tail_chars -= len(self.tail.popleft())
        return len(text)

    def line(self, text: str) -> None:
        self.write(f"[worker] {text}\n")

    def flush(self) -> None:
        """Output is shipped by the streamer thread; nothing to do here."""

    def peek(self, limit: int) -> tuple[int, str]:
        with self._lock:
            data = "".join(self._pending)
            self._pending = [data] if data else []
            return self.pos, data[:limit]

    def acknowledge(self, count: int, truncated: bool) -> None:
        with self._lock:
            data = "".join(self._pending)[count:]
            self._pending = [data] if data else []
            self._pending_chars = len(data)
            self.pos += count
            if truncated:
                self.truncated = True
                self.dropping = True
                self._pending = []
                self._pending_chars = 0

    def tail_text(self) -> str:
        with self._lock:
            return "".join(self.tail)[-TAIL_CHARS:]
