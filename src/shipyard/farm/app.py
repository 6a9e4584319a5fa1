"""The coordinator's HTTP API (FastAPI; OpenAPI at ``/docs``).

Reads are anonymous (the seed: anyone may watch the farm). Every route that changes state
names the token roles it accepts in :data:`ROUTE_ROLES`; the dependency :func:`require`
answers 401 without a valid token and 403 with a token of another role, before the body is
even looked at (:mod:`.routes.auth`). JSON lives under ``/api/``, one router per audience
(:mod:`.routes`); the web pages (next stage) build on these. This module composes them
over one :class:`~shipyard.farm.coordinator.Coordinator`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shipyard import __version__
from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.farm.apidocs import install as install_api_docs
from shipyard.farm.config import FarmConfig
from shipyard.farm.coordinator import Coordinator
from shipyard.farm.db import FarmDB
from shipyard.farm.routes.auth import ROUTE_ROLES, require
from shipyard.farm.routes.control import control_routes
from shipyard.farm.routes.read import public_routes
from shipyard.farm.routes.worker import worker_routes
from shipyard.formats.http import refusal

__all__ = ["ROUTE_ROLES", "check_signing_key", "create_app", "require"]


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
        body, status, headers = refusal(exc)
        return JSONResponse(body, status_code=status, headers=headers)

    app.include_router(public_routes())
    app.include_router(worker_routes())
    app.include_router(control_routes())
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
