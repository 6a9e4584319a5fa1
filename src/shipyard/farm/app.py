"""The coordinator's HTTP API (FastAPI; OpenAPI at ``/docs``).

Reads are anonymous (the seed: anyone may watch the farm). Every route that changes state
names the token roles it accepts in :data:`ROUTE_ROLES`; the dependency :func:`require`
answers 401 without a valid token and 403 with a token of another role, before the body is
even looked at. JSON lives under ``/api/``; the web pages (next stage) build on these.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from shipyard import __version__
from shipyard.config import Settings
from shipyard.coords import validate_group, validate_id, validate_version
from shipyard.errors import CoordinateError, ShipyardError
from shipyard.farm import (
    actions,
    artifacts,
    buildlog,
    buildrequests,
    events,
    leases,
    queries,
    workers,
)
from shipyard.farm.apidocs import install as install_api_docs
from shipyard.farm.buildrequests import BuildRequest
from shipyard.farm.config import FarmConfig
from shipyard.farm.coordinator import Coordinator
from shipyard.farm.db import FarmDB
from shipyard.farm.errors import FarmError, Forbidden, TooLarge, Unauthorized
from shipyard.farm.tokens import TokenInfo
from shipyard.formats.farm import (
    AttemptIn,
    BuildDetail,
    BuildRequestIn,
    BuildView,
    ClaimIn,
    Finished,
    FinishIn,
    HeartbeatOut,
    Job,
    LogIn,
    LogOut,
    LogText,
    PackageBuildIn,
    PackageView,
    Registered,
    RegisterIn,
    Requested,
    StalePackage,
    Stats,
    StoredArtifact,
    WorkerView,
)

# Ids are INTEGER columns: bound every id the API accepts so a huge number is a 422, not an
# overflow inside the database driver.
MAX_ID = 2**31 - 1
BuildId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


# ---------------------------------------------------------------------------------------
# Auth

ROUTE_ROLES: dict[tuple[str, str], tuple[str, ...]] = {}


def require(*roles: str) -> Callable[..., Any]:
    """A dependency that admits a live token of one of ``roles``."""

    async def dependency(request: Request,
                         authorization: str | None = Header(default=None)) -> TokenInfo:
        coordinator: Coordinator = request.app.state.coordinator
        scheme, _, secret = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("a token is required (Authorization: Bearer <token>)")
        info = coordinator.cached_token(secret.strip())
        if info is None:
            info = await run_in_threadpool(coordinator.verify_token, secret.strip())
        if info is None:
            raise Unauthorized("invalid or revoked token")
        if info.role not in roles:
            raise Forbidden(f"a {info.role} token may not do this "
                            f"(needs: {' or '.join(roles)})")
        return info

    dependency.roles = roles  # type: ignore[attr-defined]
    return dependency


def _coordinator(request: Request) -> Coordinator:
    return request.app.state.coordinator


# ---------------------------------------------------------------------------------------


def create_app(settings: Settings, db_url: str, repo_dir: str | os.PathLike[str] | None = None,
               *, bind: str | None = None, publish: bool = True) -> FastAPI:
    """The coordinator application over the database at ``db_url``; with ``repo_dir``,
    successful builds are uploaded to that repository and published (unless ``publish``
    is off: then the repository is only shown). The web pages are added by
    :func:`shipyard.server.create_app`."""
    repo = Path(repo_dir).absolute() if repo_dir else None
    if repo is not None and not (repo / "repo.ini").is_file():
        raise ShipyardError(f"{repo} is not a repository (no repo.ini; run shipyard repo init)")
    publish = publish and repo is not None
    if publish:
        assert repo is not None
        check_signing_key(repo)
    db = FarmDB(db_url, pool_size=10)
    cfg = FarmConfig.from_settings(settings, publish=publish, bind=bind)
    cfg.artifacts.mkdir(parents=True, exist_ok=True)
    _sweep_partial_uploads(cfg.artifacts / ".incoming")
    coordinator = Coordinator(settings, db, cfg, repo, publish=publish)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await coordinator.start()
        try:
            yield
        finally:
            await coordinator.stop()
            db.dispose()

    # /docs is served from the coordinator itself (farm.apidocs), never from a CDN.
    app = FastAPI(title="Shipyard farm coordinator", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Build requests, workers, logs and packages of the farm. "
                              "Reads are anonymous; changes need a bearer token.")
    app.state.coordinator = coordinator
    from shipyard.farm.metrics import install as install_metrics

    install_metrics(app, db, repo)

    @app.exception_handler(ShipyardError)
    async def _farm_error(_request: Request, exc: ShipyardError) -> JSONResponse:
        status = exc.status if isinstance(exc, FarmError) else 400
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)

    app.include_router(_public_routes())
    app.include_router(_worker_routes())
    app.include_router(_control_routes())
    install_api_docs(app)
    return app


def check_signing_key(repo: Path) -> None:
    """Refuse to start publishing without a usable signing key: every publisher run would
    fail on it, forever, one log line each, while builds pile up unpublished."""
    from shipyard.repo.keys import load_signing_key
    from shipyard.repo.layout import CONFIG_NAME, RepoConfig

    key = RepoConfig.load(repo / CONFIG_NAME).signing_key
    command = (f"shipyard repo keygen --repo {repo}" if key is None
               else f"shipyard repo keygen --out {key}")
    if key is None:
        raise ShipyardError(f"cannot publish to {repo}: its repo.ini names no signing key "
                            f"(set signing_key there, then run '{command}'), or start "
                            "with --no-publish")
    if not key.is_file():
        raise ShipyardError(f"cannot publish to {repo}: no signing key at {key}: run "
                            f"'{command}', or start with --no-publish")
    try:
        load_signing_key(key)
    except (ShipyardError, ValueError, OSError) as exc:
        detail = exc.message if isinstance(exc, ShipyardError) else str(exc)
        raise ShipyardError(f"cannot publish to {repo}: the signing key {key} is unusable: "
                            f"{detail}") from None


def _sweep_partial_uploads(staging: Path, older_than: float = 3600.0) -> None:
    """Remove uploads a killed coordinator left half-received (old ones only: another
    coordinator sharing the directory may be receiving one right now)."""
    import time

    if not staging.is_dir():
        return
    cutoff = time.time() - older_than
    for path in staging.glob("*.part"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _route(router: APIRouter, method: str, path: str, roles: tuple[str, ...],
           **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    ROUTE_ROLES[(method, path)] = roles
    return router.api_route(path, methods=[method], **kwargs)


# ---------------------------------------------------------------------------------------
# Anonymous reads


def _public_routes() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["read"])

    @router.get("/health")
    def health(request: Request) -> dict[str, Any]:
        coordinator = _coordinator(request)
        return {"ok": True, "version": __version__, "instance": coordinator.instance,
                "database": coordinator.db.dialect,
                "repository": str(coordinator.repo_dir) if coordinator.repo_dir else None,
                "last_publish": coordinator.last_publish}

    @router.get("/builds", response_model=list[BuildView])
    def builds(request: Request, state: str | None = None, package: str | None = None,
               worker: str | None = None, limit: int = Query(50, ge=1, le=1000),
               before: int | None = Query(None, ge=1, le=MAX_ID)) -> list[BuildView]:
        c = _coordinator(request)
        return queries.list_builds(c.db, c.cfg, state=state, package=package, worker=worker,
                                   limit=limit, before=before)

    @router.get("/builds/{build_id}", response_model=BuildDetail)
    def build(request: Request, build_id: BuildId) -> BuildDetail:
        c = _coordinator(request)
        return queries.get_build(c.db, c.cfg, build_id)

    @router.get("/builds/{build_id}/log", response_model=LogText)
    def build_log(request: Request, build_id: BuildId, offset: int = Query(0, ge=0, le=MAX_ID),
                  limit: int = Query(1 << 20, ge=1, le=16 << 20)) -> LogText:
        c = _coordinator(request)
        return buildlog.read_log(c.db, c.cfg, build_id, offset, limit)

    @router.get("/builds/{build_id}/artifact")
    def build_artifact(request: Request, build_id: BuildId) -> FileResponse:
        c = _coordinator(request)
        path = artifacts.artifact_path(c.db, c.cfg, build_id)
        return FileResponse(path, filename=path.name, media_type="application/octet-stream")

    @router.get("/workers", response_model=list[WorkerView])
    def workers(request: Request) -> list[WorkerView]:
        c = _coordinator(request)
        return queries.list_workers(c.db, c.cfg)

    @router.get("/workers/{name}", response_model=WorkerView)
    def worker(request: Request, name: str) -> WorkerView:
        c = _coordinator(request)
        return queries.get_worker(c.db, c.cfg, name)

    @router.get("/packages", response_model=list[PackageView])
    def packages(request: Request) -> list[PackageView]:
        return queries.list_packages(_coordinator(request).db)

    @router.get("/packages/{name}", response_model=PackageView)
    def package(request: Request, name: str) -> PackageView:
        return queries.get_package(_coordinator(request).db, name)

    @router.get("/stale", response_model=list[StalePackage])
    def stale(request: Request, days: float = Query(2.0, ge=0, le=36500)) -> list[StalePackage]:
        return queries.stale_packages(_coordinator(request).db, days)

    @router.get("/stats", response_model=Stats)
    def stats(request: Request) -> Stats:
        return queries.stats(_coordinator(request).db)

    return router


# ---------------------------------------------------------------------------------------
# The worker protocol


def _worker_routes() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["worker"])
    worker_only = ("worker",)
    auth = require(*worker_only)

    @_route(router, "POST", "/workers/register", worker_only, response_model=Registered)
    def register(request: Request, body: RegisterIn,
                 token: TokenInfo = Depends(auth)) -> Registered:
        c = _coordinator(request)
        result = workers.register_worker(c.db, c.cfg, token.id, body.name, body.platforms,
                                         body.capacity, body.http_url)
        c.forget_worker(body.name)
        events.worker_registered(body.name, result.requeued)
        if result.requeued:
            c.wake_claims_threadsafe()
        return result

    @_route(router, "POST", "/workers/{name}/claim", worker_only, response_model=Job,
            responses={204: {"description": "nothing to build within the wait"}})
    async def claim(request: Request, name: str, body: ClaimIn,
                    token: TokenInfo = Depends(auth)) -> Any:
        """Long poll: answers as soon as a build is queued (in this process: at once; via
        another coordinator: within ``farm.poll_seconds``, at once on PostgreSQL), or 204
        after ``wait`` seconds."""
        c = _coordinator(request)
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

    @_route(router, "POST", "/builds/{build_id}/heartbeat", worker_only,
            response_model=HeartbeatOut)
    def heartbeat(request: Request, build_id: BuildId, body: AttemptIn,
                  token: TokenInfo = Depends(auth)) -> HeartbeatOut:
        c = _coordinator(request)
        c.check_worker(body.worker, token)
        return leases.heartbeat(c.db, c.cfg, build_id, body.worker, body.attempt)

    @_route(router, "POST", "/builds/{build_id}/log", worker_only, response_model=LogOut)
    def append_log(request: Request, build_id: BuildId, body: LogIn,
                   token: TokenInfo = Depends(auth)) -> LogOut:
        c = _coordinator(request)
        c.check_worker(body.worker, token)
        return leases.report_log(c.db, c.cfg, build_id, body.worker, body.attempt, body.pos,
                                  body.data)

    @_route(router, "PUT", "/builds/{build_id}/artifact", worker_only,
            response_model=StoredArtifact)
    async def upload(request: Request, build_id: BuildId, worker: str = Query(..., max_length=100),
                     attempt: int = Query(..., ge=1), filename: str = Query(..., max_length=300),
                     token: TokenInfo = Depends(auth)) -> StoredArtifact:
        """The package archive as the raw request body (at most farm.max_upload_bytes)."""
        c = _coordinator(request)
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
    @_route(router, "POST", "/builds/{build_id}/finish", worker_only, response_model=Finished,
            response_model_exclude_unset=True)
    def finish(request: Request, build_id: BuildId, body: FinishIn,
               token: TokenInfo = Depends(auth)) -> Finished:
        c = _coordinator(request)
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


# ---------------------------------------------------------------------------------------
# Requests and operator actions


def _validated_request(body: BuildRequestIn) -> BuildRequest:
    try:
        if body.manifest_error is None and not (body.group and body.id and body.version):
            raise FarmError("a build request names the package: group, id and version "
                            "(or carries manifest_error)")
        if body.group:
            validate_group(body.group, "group: ")
        if body.id:
            validate_id(body.id, "id: ")
        if body.version:
            validate_version(body.version, "version: ")
    except CoordinateError as exc:
        raise FarmError(exc.message) from None
    if body.subdir.startswith("/") or ".." in body.subdir.split("/"):
        raise FarmError(f"subdir {body.subdir!r} must be a relative path inside the repository")
    return BuildRequest(commit=body.commit, repo_url=body.repo_url, subdir=body.subdir,
                        group=body.group, id=body.id, version=body.version, ref=body.ref,
                        maintainer=body.maintainer, committer=body.committer,
                        platform=body.platform, force=body.force,
                        manifest_error=body.manifest_error)


def _control_routes() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["control"])
    requesters = ("hook", "admin")
    admins = ("admin",)

    def _after_request(c: Coordinator, build: BuildView, created: bool, by: str) -> None:
        events.requested(build, created, by)
        if not created:
            return
        if build.state == "queued":
            c.wake_claims_threadsafe()
        elif build.state == "failed":
            c.loop.call_soon_threadsafe(c.wake_mailer)  # type: ignore[union-attr]

    @_route(router, "POST", "/builds", requesters, status_code=200, response_model=Requested)
    def request_build(request: Request, body: BuildRequestIn, response: Response,
                      token: TokenInfo = Depends(require(*requesters))) -> Requested:
        """Queue a build of (package, version, commit) unless that version is queued,
        running or built already; answers 201 when a build was created."""
        c = _coordinator(request)
        build, created, note = buildrequests.request_build(c.db, c.cfg, _validated_request(body),
                                                     token.name)
        _after_request(c, build, created, token.name)
        response.status_code = 201 if created else 200
        return Requested(build=build, created=created, note=note)

    @_route(router, "POST", "/packages/{name}/builds", requesters, status_code=200,
            response_model=Requested)
    def request_package_build(request: Request, name: str, body: PackageBuildIn,
                              response: Response,
                              token: TokenInfo = Depends(require(*requesters))
                              ) -> Requested:
        c = _coordinator(request)
        build, created, note = buildrequests.request_package_build(c.db, c.cfg, name, body.commit,
                                                             body.force, token.name)
        _after_request(c, build, created, token.name)
        response.status_code = 201 if created else 200
        return Requested(build=build, created=created, note=note)

    @_route(router, "POST", "/builds/{build_id}/abort", admins, response_model=BuildView)
    def abort(request: Request, build_id: BuildId,
              token: TokenInfo = Depends(require(*admins))) -> BuildView:
        c = _coordinator(request)
        build = actions.abort(c.db, c.cfg, build_id, token.name)
        events.aborted(build, token.name)
        return build

    @_route(router, "POST", "/builds/{build_id}/requeue", admins, response_model=BuildView)
    def requeue(request: Request, build_id: BuildId,
                token: TokenInfo = Depends(require(*admins))) -> BuildView:
        c = _coordinator(request)
        build = actions.requeue(c.db, c.cfg, build_id, token.name)
        events.requeued(build, token.name)
        c.wake_claims_threadsafe()
        return build

    @_route(router, "POST", "/workers/{name}/pause", admins, response_model=WorkerView)
    def pause(request: Request, name: str,
              token: TokenInfo = Depends(require(*admins))) -> WorkerView:
        c = _coordinator(request)
        view = actions.set_worker_paused(c.db, c.cfg, name, True)
        events.worker_paused(name, True)
        return view

    @_route(router, "POST", "/workers/{name}/resume", admins, response_model=WorkerView)
    def resume(request: Request, name: str,
               token: TokenInfo = Depends(require(*admins))) -> WorkerView:
        c = _coordinator(request)
        view = actions.set_worker_paused(c.db, c.cfg, name, False)
        events.worker_paused(name, False)
        c.wake_claims_threadsafe()
        return view

    @router.get("/whoami")
    def whoami(token: TokenInfo = Depends(require("worker", "hook", "admin"))
               ) -> dict[str, Any]:
        return {"name": token.name, "role": token.role}

    return router
