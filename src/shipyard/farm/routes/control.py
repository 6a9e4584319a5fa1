"""Build requests (push hooks and admins) and operator actions (admins): abort, requeue,
pause and resume workers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from shipyard.coords import validate_group, validate_id, validate_version
from shipyard.errors import CoordinateError
from shipyard.farm import actions, buildrequests, events
from shipyard.farm.buildrequests import BuildRequest
from shipyard.farm.coordinator import Coordinator
from shipyard.farm.errors import FarmError
from shipyard.farm.routes.auth import BuildId, coordinator_of, require, route
from shipyard.farm.tokens import TokenInfo
from shipyard.formats.farm import (
    BuildRequestIn,
    BuildView,
    PackageBuildIn,
    Requested,
    WhoAmI,
    WorkerView,
)


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


def control_routes() -> APIRouter:
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

    @route(router, "POST", "/builds", requesters, status_code=200, response_model=Requested)
    def request_build(request: Request, body: BuildRequestIn, response: Response,
                      token: TokenInfo = Depends(require(*requesters))) -> Requested:
        """Queue a build of (package, version, commit) unless that version is queued,
        running or built already; answers 201 when a build was created."""
        c = coordinator_of(request)
        build, created, note = buildrequests.request_build(c.db, c.cfg, _validated_request(body),
                                                     token.name)
        _after_request(c, build, created, token.name)
        response.status_code = 201 if created else 200
        return Requested(build=build, created=created, note=note)

    @route(router, "POST", "/packages/{name}/builds", requesters, status_code=200,
            response_model=Requested)
    def request_package_build(request: Request, name: str, body: PackageBuildIn,
                              response: Response,
                              token: TokenInfo = Depends(require(*requesters))
                              ) -> Requested:
        c = coordinator_of(request)
        build, created, note = buildrequests.request_package_build(c.db, c.cfg, name, body.commit,
                                                             body.force, token.name)
        _after_request(c, build, created, token.name)
        response.status_code = 201 if created else 200
        return Requested(build=build, created=created, note=note)

    @route(router, "POST", "/builds/{build_id}/abort", admins, response_model=BuildView)
    def abort(request: Request, build_id: BuildId,
              token: TokenInfo = Depends(require(*admins))) -> BuildView:
        c = coordinator_of(request)
        build = actions.abort(c.db, c.cfg, build_id, token.name)
        events.aborted(build, token.name)
        return build

    @route(router, "POST", "/builds/{build_id}/requeue", admins, response_model=BuildView)
    def requeue(request: Request, build_id: BuildId,
                token: TokenInfo = Depends(require(*admins))) -> BuildView:
        c = coordinator_of(request)
        build = actions.requeue(c.db, c.cfg, build_id, token.name)
        events.requeued(build, token.name)
        c.wake_claims_threadsafe()
        return build

    def _set_paused(request: Request, name: str, paused: bool) -> WorkerView:
        c = coordinator_of(request)
        view = actions.set_worker_paused(c.db, c.cfg, name, paused)
        events.worker_paused(name, paused)
        if not paused:
            c.wake_claims_threadsafe()
        return view

    @route(router, "POST", "/workers/{name}/pause", admins, response_model=WorkerView)
    def pause(request: Request, name: str,
              token: TokenInfo = Depends(require(*admins))) -> WorkerView:
        return _set_paused(request, name, True)

    @route(router, "POST", "/workers/{name}/resume", admins, response_model=WorkerView)
    def resume(request: Request, name: str,
               token: TokenInfo = Depends(require(*admins))) -> WorkerView:
        return _set_paused(request, name, False)

    @router.get("/whoami", response_model=WhoAmI)
    def whoami(token: TokenInfo = Depends(require("worker", "hook", "admin"))) -> WhoAmI:
        return WhoAmI(name=token.name, role=token.role)

    return router
