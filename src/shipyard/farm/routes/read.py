"""The anonymous reads of the coordinator's API (the seed: anyone may watch the farm)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from shipyard import __version__
from shipyard.farm import artifacts, buildlog, queries
from shipyard.farm.routes.auth import MAX_ID, BuildId, coordinator_of
from shipyard.formats.farm import (
    BuildDetail,
    BuildView,
    Health,
    LogText,
    PackageView,
    StalePackage,
    Stats,
    WorkerView,
)


def public_routes() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["read"])

    @router.get("/health", response_model=Health)
    def health(request: Request) -> Health:
        coordinator = coordinator_of(request)
        last = coordinator.last_publish
        return Health(ok=True, version=__version__, instance=coordinator.instance,
                      database=coordinator.db.dialect,
                      repository=str(coordinator.repo_dir) if coordinator.repo_dir else None,
                      last_publish=last.model_dump(mode="json", exclude_none=True)
                      if last is not None else {})

    @router.get("/builds", response_model=list[BuildView])
    def builds(request: Request, state: str | None = None, package: str | None = None,
               worker: str | None = None, limit: int = Query(50, ge=1, le=1000),
               before: int | None = Query(None, ge=1, le=MAX_ID)) -> list[BuildView]:
        c = coordinator_of(request)
        return queries.list_builds(c.db, c.cfg, state=state, package=package, worker=worker,
                                   limit=limit, before=before)

    @router.get("/builds/{build_id}", response_model=BuildDetail)
    def build(request: Request, build_id: BuildId) -> BuildDetail:
        c = coordinator_of(request)
        return queries.get_build(c.db, c.cfg, build_id)

    @router.get("/builds/{build_id}/log", response_model=LogText)
    def build_log(request: Request, build_id: BuildId, offset: int = Query(0, ge=0, le=MAX_ID),
                  limit: int = Query(1 << 20, ge=1, le=16 << 20)) -> LogText:
        c = coordinator_of(request)
        return buildlog.read_log(c.db, c.cfg, build_id, offset, limit)

    @router.get("/builds/{build_id}/artifact")
    def build_artifact(request: Request, build_id: BuildId) -> FileResponse:
        c = coordinator_of(request)
        path = artifacts.artifact_path(c.db, c.cfg, build_id)
        return FileResponse(path, filename=path.name, media_type="application/octet-stream")

    @router.get("/workers", response_model=list[WorkerView])
    def workers(request: Request) -> list[WorkerView]:
        c = coordinator_of(request)
        return queries.list_workers(c.db, c.cfg)

    @router.get("/workers/{name}", response_model=WorkerView)
    def worker(request: Request, name: str) -> WorkerView:
        c = coordinator_of(request)
        return queries.get_worker(c.db, c.cfg, name)

    @router.get("/packages", response_model=list[PackageView])
    def packages(request: Request) -> list[PackageView]:
        return queries.list_packages(coordinator_of(request).db)

    @router.get("/packages/{name}", response_model=PackageView)
    def package(request: Request, name: str) -> PackageView:
        return queries.get_package(coordinator_of(request).db, name)

    @router.get("/stale", response_model=list[StalePackage])
    def stale(request: Request, days: float = Query(2.0, ge=0, le=36500)) -> list[StalePackage]:
        return queries.stale_packages(coordinator_of(request).db, days)

    @router.get("/stats", response_model=Stats)
    def stats(request: Request) -> Stats:
        return queries.stats(coordinator_of(request).db)

    return router
