"""The worker protocol: register, claim (a long poll), heartbeat, log, upload, finish;
worker tokens only, and an attempt number on every call so a stale worker is refused."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from shipyard.farm import artifacts, events, leases, workers
from shipyard.farm.errors import FarmError, TooLarge
from shipyard.farm.routes.auth import BuildId, coordinator_of, require, route
from shipyard.farm.tokens import TokenInfo
from shipyard.formats.farm import (
    AttemptIn,
    ClaimIn,
    Finished,
    FinishIn,
    HeartbeatOut,
    Job,
    LogIn,
    LogOut,
    Registered,
    RegisterIn,
    StoredArtifact,
)


def worker_routes() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["worker"])
    worker_only = ("worker",)
    auth = require(*worker_only)

    @route(router, "POST", "/workers/register", worker_only, response_model=Registered)
    def register(request: Request, body: RegisterIn,
                 token: TokenInfo = Depends(auth)) -> Registered:
        c = coordinator_of(request)
        result = workers.register_worker(c.db, c.cfg, token.id, body.name, body.platforms,
                                         body.capacity, body.http_url)
        c.forget_worker(body.name)
        events.worker_registered(body.name, result.requeued)
        if result.requeued:
            c.wake_claims_threadsafe()
        return result

    @route(router, "POST", "/workers/{name}/claim", worker_only, response_model=Job,
            responses={204: {"description": "nothing to build within the wait"}})
    async def claim(request: Request, name: str, body: ClaimIn,
                    token: TokenInfo = Depends(auth)) -> Any:
        """Long poll: answers as soon as a build is queued (in this process: at once; via
        another coordinator: within ``farm.poll_seconds``, at once on PostgreSQL), or 204
        after ``wait`` seconds."""
        c = coordinator_of(request)
        if not c.worker_checked(name, token):
            await run_in_threadpool(c.check_worker, name, token)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + body.wait
        while True:
            event = c.queue_event()
            if await request.is_disconnected():
                return Response(status_code=204)
            got = await run_in_threadpool(leases.claim, c.db, c.cfg, name, token.id,
                                          body.platforms)
            if got is not None:
                events.claimed(got, name)
                return got
            remaining = deadline - loop.time()
            if remaining <= 0 or c.stopping:
                return Response(status_code=204)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(remaining, c.poll_seconds))

    @route(router, "POST", "/builds/{build_id}/heartbeat", worker_only,
            response_model=HeartbeatOut)
    def heartbeat(request: Request, build_id: BuildId, body: AttemptIn,
                  token: TokenInfo = Depends(auth)) -> HeartbeatOut:
        c = coordinator_of(request)
        c.check_worker(body.worker, token)
        return leases.heartbeat(c.db, c.cfg, build_id, body.worker, body.attempt)

    @route(router, "POST", "/builds/{build_id}/log", worker_only, response_model=LogOut)
    def append_log(request: Request, build_id: BuildId, body: LogIn,
                   token: TokenInfo = Depends(auth)) -> LogOut:
        c = coordinator_of(request)
        c.check_worker(body.worker, token)
        return leases.report_log(c.db, c.cfg, build_id, body.worker, body.attempt, body.pos,
                                  body.data)

    @route(router, "PUT", "/builds/{build_id}/artifact", worker_only,
            response_model=StoredArtifact)
    async def upload(request: Request, build_id: BuildId, worker: str = Query(..., max_length=100),
                     attempt: int = Query(..., ge=1), filename: str = Query(..., max_length=300),
                     token: TokenInfo = Depends(auth)) -> StoredArtifact:
        """The package archive as the raw request body (at most farm.max_upload_bytes)."""
        c = coordinator_of(request)
        cap = c.cfg.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise TooLarge(f"upload of {declared} bytes is over farm.max_upload_bytes ({cap})")
        if not c.worker_checked(worker, token):
            await run_in_threadpool(c.check_worker, worker, token)
        await run_in_threadpool(artifacts.check_upload, c.db, build_id, worker, attempt, filename)
        staging = c.cfg.artifacts / ".incoming"
        staging.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{build_id}-", suffix=".part", dir=staging)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > cap:
                        raise TooLarge(f"upload is over farm.max_upload_bytes ({cap} bytes)")
                    digest.update(chunk)
                    handle.write(chunk)
                handle.flush()
                await run_in_threadpool(os.fsync, handle.fileno())
            if size == 0:
                raise FarmError("empty upload")
            return await run_in_threadpool(artifacts.store_artifact, c.db, c.cfg, build_id,
                                           worker, attempt, filename, Path(tmp), size,
                                           digest.hexdigest())
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # exclude_unset: "next" is in the answer only when the finish asked for a claim.
    @route(router, "POST", "/builds/{build_id}/finish", worker_only, response_model=Finished,
            response_model_exclude_unset=True)
    def finish(request: Request, build_id: BuildId, body: FinishIn,
               token: TokenInfo = Depends(auth)) -> Finished:
        c = coordinator_of(request)
        c.check_worker(body.worker, token)
        result = leases.finish(c.db, c.cfg, build_id, body.worker, body.attempt, body.result,
                                body.reason, body.tail, body.log_pos, body.log)
        state = result.build.state
        events.finished(result.build, body.worker, body.attempt, body.result)
        request.app.state.metrics.build_finished(result.build)
        if state == "failed":
            c.loop.call_soon_threadsafe(c.wake_mailer)  # type: ignore[union-attr]
        elif state == "succeeded":
            c.loop.call_soon_threadsafe(c.wake_publisher)  # type: ignore[union-attr]
        elif state == "queued":
            c.wake_claims_threadsafe()
        if body.claim and body.result != "released" and not c.stopping:
            # The result is committed: a claim that cannot be made (the worker was
            # forgotten meanwhile) must not turn its answer into an error; the worker's
            # own claim then says what is wrong.
            try:
                result.next = leases.claim(c.db, c.cfg, body.worker, token.id)
                events.claimed(result.next, body.worker)
            except FarmError:
                result.next = None
        return result

    return router
