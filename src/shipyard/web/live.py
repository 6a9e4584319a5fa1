"""The live build log: Server-Sent Events from ``/builds/<id>/events``.

The stream polls the log in the database (every coordinator on a shared database serves
the same log, whichever one the worker reports to) and sends ``log`` events carrying the
text and, as event id, the offset after it: a browser that reconnects sends
``Last-Event-ID`` and resumes exactly there. ``state`` events say when the build moves on,
``end`` closes the stream once the build is final and its whole log was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from shipyard.farm import buildlog
from shipyard.farm.errors import FarmError
from shipyard.web.handlers import Web

STREAM_CHUNK = 256 << 10
STREAM_POLL = 0.3
KEEPALIVE_SECONDS = 15.0


def event(kind: str, data: dict[str, Any], ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n"


async def log_events(web: Web, request: Request, build_id: int,
                     offset: int) -> AsyncIterator[str]:
    coordinator = web.coordinator
    state: str | None = None
    idle = 0.0
    yield "retry: 2000\n\n"
    while not coordinator.stopping:
        try:
            chunk = await run_in_threadpool(buildlog.read_log, web.db, web.cfg, build_id,
                                            offset, STREAM_CHUNK)
        except FarmError:
            return
        if chunk.text:
            yield event("log", {"text": chunk.text, "offset": offset,
                                "next": chunk.next_offset}, chunk.next_offset)
            offset = chunk.next_offset
            idle = 0.0
        if chunk.state != state:
            state = chunk.state
            yield event("state", {"state": state})
        if chunk.complete:
            yield event("end", {"state": state, "offset": offset}, offset)
            return
        if chunk.text:
            continue
        if await request.is_disconnected():
            return
        await asyncio.sleep(STREAM_POLL)
        idle += STREAM_POLL
        if idle >= KEEPALIVE_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"
