"""HTTP client of the coordinator, for workers, the push hook and the CLI.

Calls that must not be lost (a worker's finish, its upload) are retried while the
coordinator is unreachable, with a backoff that grows to a bound and then stays there;
a 4xx answer is final and raised as :class:`ApiError` with the coordinator's one line.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from shipyard.errors import ShipyardError
from shipyard.farm.errors import CoordinatorUnreachable
from shipyard.farm.transport import fast_transport
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
from shipyard.formats.http import error_detail

RETRYABLE_STATUS = {502, 503, 504}
MAX_BACKOFF = 2.0  # seconds between tries while the coordinator is down: cheap for it, and
# a restarted coordinator gets its workers back within two seconds


class ApiError(ShipyardError):
    """The coordinator refused a request; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FarmClient:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0,
                 connect_timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": "shipyard-farm"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=self.url, headers=headers,
                                 timeout=httpx.Timeout(timeout, connect=connect_timeout),
                                 transport=fast_transport(self.url))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FarmClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, retry_for: float | None = 0.0,
                stop: Callable[[], bool] | None = None, timeout: float | None = None,
                **kwargs: Any) -> httpx.Response:
        """One call. While the coordinator is unreachable, retry for ``retry_for`` seconds
        (``None``: until it answers or ``stop()`` says so); 4xx raises :class:`ApiError`."""
        deadline = None if retry_for is None else time.monotonic() + retry_for
        delay = 0.1
        while True:
            try:
                extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
                response = self.http.request(method, path, **extra, **kwargs)
            except httpx.TransportError as exc:
                problem = f"coordinator {self.url} unreachable: {type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRYABLE_STATUS and response.status_code < 500:
                    raise ApiError(response.status_code,
                                   f"coordinator refused {method} {path}: "
                                   f"{response.status_code} {error_detail(response)}")
                problem = (f"coordinator {self.url} answered {response.status_code}: "
                           f"{error_detail(response)}")
            if (deadline is not None and time.monotonic() >= deadline) or (stop and stop()):
                raise CoordinatorUnreachable(problem)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, MAX_BACKOFF)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.request("POST", path, json=body if body is not None else {}, **kwargs)
        return response.json() if response.status_code != 204 else None

    def upload(self, path: str, file: Path, params: dict[str, Any], **kwargs: Any) -> Any:
        """PUT a file as the raw body; re-opened on every retry."""
        deadline_kwargs = dict(kwargs)
        retry_for = deadline_kwargs.pop("retry_for", 0.0)
        stop = deadline_kwargs.pop("stop", None)
        start = time.monotonic()
        delay = 0.1
        while True:
            try:
                with open(file, "rb") as handle:
                    return self.request(
                        "PUT", path, params=params, content=handle,
                        headers={"Content-Type": "application/octet-stream",
                                 "Content-Length": str(file.stat().st_size)},
                        retry_for=0.0, **deadline_kwargs).json()
            except CoordinatorUnreachable:
                if retry_for is not None and time.monotonic() - start >= retry_for:
                    raise
                if stop and stop():
                    raise
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    # -- the worker protocol, typed (shipyard.formats.farm) ---------------------------------

    def send(self, path: str, body: BaseModel, **kwargs: Any) -> Any:
        """POST a wire model as JSON: only the fields it was given, as before the models
        (the coordinator fills in its defaults and validates)."""
        response = self.request("POST", path, json=body.model_dump(exclude_unset=True),
                                **kwargs)
        return response.json() if response.status_code != 204 else None

    def register(self, body: RegisterIn, **kwargs: Any) -> Registered:
        return Registered.model_validate(self.send("/api/workers/register", body, **kwargs))

    def claim(self, name: str, body: ClaimIn, **kwargs: Any) -> Job | None:
        """A long poll: the build to run, or None when the wait ended without one."""
        answer = self.send(f"/api/workers/{name}/claim", body, **kwargs)
        return None if answer is None else Job.model_validate(answer)

    def heartbeat(self, build_id: int, body: AttemptIn, **kwargs: Any) -> HeartbeatOut:
        return HeartbeatOut.model_validate(
            self.send(f"/api/builds/{build_id}/heartbeat", body, **kwargs))

    def send_log(self, build_id: int, body: LogIn, **kwargs: Any) -> LogOut:
        return LogOut.model_validate(self.send(f"/api/builds/{build_id}/log", body, **kwargs))

    def finish(self, build_id: int, body: FinishIn, **kwargs: Any) -> Finished:
        return Finished.model_validate(
            self.send(f"/api/builds/{build_id}/finish", body, **kwargs))

    def upload_artifact(self, build_id: int, file: Path, attempt: AttemptIn,
                        **kwargs: Any) -> StoredArtifact:
        params = {**attempt.model_dump(), "filename": file.name}
        return StoredArtifact.model_validate(
            self.upload(f"/api/builds/{build_id}/artifact", file, params, **kwargs))
