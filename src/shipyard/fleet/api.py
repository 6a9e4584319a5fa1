"""The fleet's HTTP routes under ``/api/fleet`` (docs/fleet.md), mounted into the
coordinator's application by :func:`install`.

Unlike the farm's reads, *every* fleet route needs a credential, because a desired
document names instances and addresses: a node's own credential for its own routes (403
for another node's), an admin token for the operator's, a one-time ``node`` token for the
join. :data:`ROUTE_AUTH` names the kind each route takes; the route-enumeration test
(tests/farm/test_routes_auth.py) walks the table and holds every route to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from shipyard.config import Settings
from shipyard.fleet import events, pairs, service, snapshot
from shipyard.fleet.credentials import CredentialBatcher
from shipyard.fleet.db import FleetDB
from shipyard.fleet.errors import FleetError, Forbidden, Unauthorized
from shipyard.fleet.hub import Hub
from shipyard.fleet.packages import check_in_repository
from shipyard.formats import fleet as wire

MAX_WAIT = 300.0
# (method, path under /api) -> "node" (the node's own credential), "operator" (an admin
# token) or "join" (a one-time node token).
ROUTE_AUTH: dict[tuple[str, str], str] = {}


class Fleet:
    """What the routes share in one coordinator process."""

    def __init__(self, settings: Settings, db: FleetDB, repo_dir: Path | None) -> None:
        self.settings = settings
        self.db = db
        self.repo_dir = repo_dir
        self.lease_seconds = max(0.5, settings.fleet.lease_seconds)
        self.credentials = CredentialBatcher(db)
        self.hub = Hub(db, lease_seconds=self.lease_seconds,
                       poll_seconds=max(0.05, settings.fleet.poll_seconds))
        try:  # the links work (which interfaces a package announces or accepts)
            from shipyard.fleet import links as _links
        except ImportError:
            # (a build without the links work: the module is then absent)
            _links = None  # type: ignore[assignment]
        if _links is not None and hasattr(_links, "configure"):
            _links.configure(settings, repo_dir)

    async def start(self) -> None:
        await self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop()
        self.db.dispose()


def _fleet(request: Request) -> Fleet:
    return request.app.state.fleet


def _announce(fleet: Fleet, what: str, answer: wire.ChangeAnswer, by: str) -> wire.ChangeAnswer:
    """An operator's committed change: wake the parked polls and log it once."""
    fleet.hub.changed_threadsafe(answer.revision)
    events.changed(what, answer, by)
    return answer


def _peer(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _bearer(authorization: str | None) -> str:
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("a credential is required (Authorization: Bearer <token>)")
    return secret.strip()


async def node_auth(request: Request, name: str,
                    authorization: str | None = Header(default=None)) -> Any:
    """The node row, when the credential is node ``name``'s own: read from the database
    for this request, batched with the requests of the same moment
    (:mod:`shipyard.fleet.credentials`), on the event loop but for that one read."""
    secret = _bearer(authorization)
    fleet = _fleet(request)
    if not secret.startswith(service.CREDENTIAL_PREFIX):
        token = await run_in_threadpool(service.operator_token, fleet.db, secret)
        if token is None:
            raise Unauthorized("invalid node credential")
        raise Forbidden(f"a {token.role} token may not do this (needs the node's credential)")
    row = await fleet.credentials.lookup(service.hash_secret(secret))
    return service.node_for(row, name)


def _live_node_credential(db: FleetDB, secret: str) -> bool:
    if not secret.startswith(service.CREDENTIAL_PREFIX):
        return False
    try:
        service.authenticate_node(db, secret, "")
    except Forbidden:  # a live node's credential (it names another node than "")
        return True
    except FleetError:
        return False
    return False


def operator_auth(request: Request, authorization: str | None = Header(default=None)) -> Any:
    secret = _bearer(authorization)
    fleet = _fleet(request)
    token = service.operator_token(fleet.db, secret)
    if token is None:
        if _live_node_credential(fleet.db, secret):
            raise Forbidden("a node credential may not do this (needs an admin token)")
        raise Unauthorized("invalid or revoked token")
    if token.role != "admin":
        raise Forbidden(f"a {token.role} token may not do this (needs: admin)")
    return token


def join_auth(request: Request, authorization: str | None = Header(default=None)) -> str:
    secret = _bearer(authorization)
    db = _fleet(request).db
    token = service.operator_token(db, secret)
    if token is None:
        if _live_node_credential(db, secret):
            raise Forbidden("a node credential cannot join (needs a one-time node token)")
        raise Unauthorized("invalid, used or revoked join token")
    if token.role != "node":
        raise Forbidden(f"a {token.role} token cannot join a node (needs a node token: "
                        "shipyard farm token create --role node)")
    return secret


def _route(router: APIRouter, method: str, path: str, kind: str, **kwargs: Any
           ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    ROUTE_AUTH[(method, "/fleet" + path)] = kind
    return router.api_route(path, methods=[method], **kwargs)


def install(app: FastAPI, settings: Settings, db_url: str, repo_dir: Path | None = None
            ) -> Fleet:
    """Add the fleet routes to ``app``; the caller's lifespan must await ``start()`` and
    ``stop()`` of the returned object."""
    fleet = Fleet(settings, FleetDB(db_url, pool_size=10), repo_dir)
    app.state.fleet = fleet

    async def _fleet_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FleetError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    app.add_exception_handler(FleetError, _fleet_error)
    app.include_router(_node_routes())
    app.include_router(_operator_routes())
    return fleet


def _node_routes() -> APIRouter:
    router = APIRouter(prefix="/api/fleet", tags=["fleet: nodes"])

    @_route(router, "POST", "/join", "join")
    def join(request: Request, body: wire.JoinRequest,
             secret: str = Depends(join_auth)) -> wire.JoinAnswer:
        fleet = _fleet(request)
        credential, revision = service.join(fleet.db, secret, body, fleet.lease_seconds)
        fleet.hub.changed_threadsafe(revision)
        events.joined(body, revision, _peer(request))
        return wire.JoinAnswer(name=body.name, credential=credential, revision=revision,
                               lease_seconds=fleet.lease_seconds,
                               heartbeat_seconds=max(0.2, fleet.lease_seconds / 3.0))

    @_route(router, "GET", "/nodes/{name}/desired", "node",
            response_model=wire.DesiredDocument)
    async def desired(request: Request, name: str,
                      index: int = Query(0, ge=0, le=2**62),
                      wait: float = Query(60.0, ge=0, le=MAX_WAIT),
                      node: Any = Depends(node_auth)) -> Response:
        """Long poll: answers at once when the fleet's revision is past ``index``, else
        when it changes or ``wait`` seconds have passed (then with the same revision).
        Documents come from the hub's shared snapshot (:mod:`shipyard.fleet.snapshot`)."""
        hub = _fleet(request).hub
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        event = hub.event()
        snap = await hub.snapshot(await hub.read_revision() if wait <= 0 else hub.revision)
        if snapshot.credential_problem(snap, node) is not None:
            # Authenticated just now, so the snapshot predates the node's join: read anew.
            snap = await hub.snapshot(snap.revision + 1)
        while True:
            problem = snapshot.credential_problem(snap, node)
            if problem is not None:  # revoked (or joined again) while this poll waited
                raise Unauthorized(problem)
            doc = snapshot.document_from(snap, node)
            if doc.revision > index:
                break
            while hub.revision <= index:
                remaining = deadline - loop.time()
                if remaining <= 0 or hub.stopping or await request.is_disconnected():
                    return Response(doc.model_dump_json(), media_type="application/json")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=remaining)
                event = hub.event()
            snap = await hub.snapshot(hub.revision)
        return Response(doc.model_dump_json(), media_type="application/json")

    @_route(router, "POST", "/nodes/{name}/report", "node")
    def report(request: Request, name: str, body: wire.NodeReport,
               node: Any = Depends(node_auth)) -> dict[str, Any]:
        fleet = _fleet(request)
        revision = service.report(fleet.db, node, body, fleet.lease_seconds, _peer(request))
        if revision is not None:
            fleet.hub.changed_threadsafe(revision)
            events.back(node.name, revision)
        return {"ok": True}

    @_route(router, "POST", "/nodes/{name}/heartbeat", "node")
    def heartbeat(request: Request, name: str, body: wire.Heartbeat,
                  node: Any = Depends(node_auth)) -> wire.HeartbeatAnswer:
        fleet = _fleet(request)
        answer, came_back = service.heartbeat(fleet.db, node, body, fleet.lease_seconds,
                                              _peer(request))
        if came_back:
            fleet.hub.changed_threadsafe(answer.revision)
            events.back(node.name, answer.revision)
        return answer

    @_route(router, "POST", "/nodes/{name}/announcements", "node")
    def announcements(request: Request, name: str, body: wire.AnnouncementPublish,
                      node: Any = Depends(node_auth)) -> dict[str, Any]:
        fleet = _fleet(request)
        revision = pairs.publish_announcements(fleet.db, node, body)
        if revision is not None:
            fleet.hub.changed_threadsafe(revision)
            events.announcements(node.name, body, revision)
        return {"changed": revision is not None}

    @_route(router, "POST", "/nodes/{name}/leave", "node")
    def leave(request: Request, name: str, node: Any = Depends(node_auth)) -> dict[str, Any]:
        fleet = _fleet(request)
        revision = service.revoke(fleet.db, node.name)
        fleet.hub.changed_threadsafe(revision)
        events.left(node.name, revision)
        return {"left": node.name}

    return router


def _operator_routes() -> APIRouter:
    router = APIRouter(prefix="/api/fleet", tags=["fleet: operator"])

    @_route(router, "GET", "/nodes", "operator")
    def nodes(request: Request, _token: Any = Depends(operator_auth)) -> list[wire.NodeView]:
        return service.nodes(_fleet(request).db)

    @_route(router, "POST", "/nodes/{name}/revoke", "operator")
    def revoke(request: Request, name: str,
               token: Any = Depends(operator_auth)) -> wire.ChangeAnswer:
        fleet = _fleet(request)
        revision = service.revoke(fleet.db, name)
        fleet.hub.changed_threadsafe(revision)
        events.revoked(name, revision, token.name)
        return wire.ChangeAnswer(revision=revision, changed=[f"revoked node {name}"])

    @_route(router, "POST", "/assign", "operator")
    def assign(request: Request, body: wire.AssignRequest,
               token: Any = Depends(operator_auth)) -> wire.ChangeAnswer:
        fleet = _fleet(request)
        coord = service.check_package(body.package)
        service.check_service(body.service)
        with fleet.db.rtx() as conn:  # an unknown node is reported before the repository
            service.select_nodes(conn, body.nodes)
        check_in_repository(fleet.settings, fleet.repo_dir, coord)
        return _announce(fleet, "assign", service.assign(fleet.db, body), token.name)

    @_route(router, "POST", "/unassign", "operator")
    def unassign(request: Request, body: wire.UnassignRequest,
                 token: Any = Depends(operator_auth)) -> wire.ChangeAnswer:
        fleet = _fleet(request)
        return _announce(fleet, "unassign", service.unassign(fleet.db, body), token.name)

    @_route(router, "GET", "/status", "operator")
    def status(request: Request, _token: Any = Depends(operator_auth)) -> wire.FleetStatus:
        return service.status(_fleet(request).db)

    @_route(router, "GET", "/links", "operator")
    def links(request: Request, _token: Any = Depends(operator_auth)
              ) -> list[wire.LinkPairView]:
        return pairs.link_pairs(_fleet(request).db)

    @_route(router, "POST", "/links/disable", "operator")
    def disable(request: Request, body: wire.LinkPairRequest,
                token: Any = Depends(operator_auth)) -> wire.ChangeAnswer:
        fleet = _fleet(request)
        answer = pairs.set_pair_disabled(fleet.db, body, True, token.name)
        return _announce(fleet, "disable", answer, token.name)

    @_route(router, "POST", "/links/enable", "operator")
    def enable(request: Request, body: wire.LinkPairRequest,
               token: Any = Depends(operator_auth)) -> wire.ChangeAnswer:
        fleet = _fleet(request)
        answer = pairs.set_pair_disabled(fleet.db, body, False, token.name)
        return _announce(fleet, "enable", answer, token.name)

    return router
