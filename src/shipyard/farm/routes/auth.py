"""Who may call what: every route that changes state names the token roles it accepts in
:data:`ROUTE_ROLES` (tests/farm/test_routes_auth.py walks it); the dependency
:func:`require` answers 401 without a valid token and 403 with a token of another role,
before the body is even looked at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from shipyard.farm.coordinator import Coordinator
from shipyard.farm.errors import Forbidden, Unauthorized
from shipyard.farm.tokens import TokenInfo

# Ids are INTEGER columns: bound every id the API accepts so a huge number is a 422, not an
# overflow inside the database driver.
MAX_ID = 2**31 - 1
BuildId = Annotated[int, PathParam(ge=1, le=MAX_ID)]

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


def coordinator_of(request: Request) -> Coordinator:
    """The coordinator the app serves (set by :func:`shipyard.farm.app.create_app`)."""
    return request.app.state.coordinator


def route(router: APIRouter, method: str, path: str, roles: tuple[str, ...],
          **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``router.api_route`` that also records the roles the route accepts."""
    ROUTE_ROLES[(method, path)] = roles
    return router.api_route(path, methods=[method], **kwargs)
