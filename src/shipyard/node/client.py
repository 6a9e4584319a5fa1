"""HTTP client of the coordinator's fleet API, for the node agent and the ``node`` and
``fleet`` commands. Every body is a :mod:`shipyard.formats.fleet` model; an answer that
does not validate is an error, not a dict passed along.

A refusal (4xx) raises :class:`ApiError` with the coordinator's one line; a coordinator
that does not answer (connection refused, timeout, 5xx) raises :class:`Unreachable`, which
the agent treats as "keep everything as it is and try again later".
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from shipyard import __version__
from shipyard.errors import ShipyardError
from shipyard.formats import fleet as wire

M = TypeVar("M", bound=BaseModel)


class ApiError(ShipyardError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(ShipyardError):
    """The coordinator did not answer."""


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list):  # FastAPI's validation errors
        parts = []
        for item in detail[:3]:
            where = ".".join(str(p) for p in item.get("loc", [])[1:])
            parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return "; ".join(parts)
    return str(detail) if detail else response.text.strip()[:300]


class FleetClient:
    def __init__(self, url: str, secret: str | None, *, timeout: float = 30.0,
                 local_address: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ShipyardError(f"coordinator URL {url!r}: expected http:// or https://")
        self.url = url.rstrip("/")
        headers = {"User-Agent": f"shipyard-node/{__version__}"}
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        # With a local address, every connection comes from it (a node that has several).
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        self.http = httpx.Client(base_url=self.url, headers=headers, transport=transport,
                                 timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FleetClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, body: BaseModel | None = None,
              params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["content"] = body.model_dump_json()
            kwargs["headers"] = {"Content-Type": "application/json"}
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=5.0)
        try:
            response = self.http.request(method, "/api/fleet" + path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unreachable(f"coordinator {self.url} unreachable: "
                              f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise Unreachable(f"coordinator {self.url} answered {response.status_code}: "
                              f"{_detail(response)}")
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        try:
            return response.json()
        except ValueError:
            raise Unreachable(f"coordinator {self.url}: an answer that is not JSON") from None

    def _model(self, model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ShipyardError(f"coordinator {self.url}: unexpected answer: "
                                f"{exc.errors()[0].get('msg')}") from None

    # -- the node's calls ----------------------------------------------------------------------

    def join(self, body: wire.JoinRequest) -> wire.JoinAnswer:
        return self._model(wire.JoinAnswer, self._call("POST", "/join", body=body))

    def desired(self, name: str, index: int, wait: float) -> wire.DesiredDocument:
        data = self._call("GET", f"/nodes/{name}/desired",
                          params={"index": index, "wait": wait}, timeout=wait + 30.0)
        return self._model(wire.DesiredDocument, data)

    def report(self, name: str, body: wire.NodeReport) -> None:
        self._call("POST", f"/nodes/{name}/report", body=body)

    def heartbeat(self, name: str, body: wire.Heartbeat) -> wire.HeartbeatAnswer:
        return self._model(wire.HeartbeatAnswer,
                           self._call("POST", f"/nodes/{name}/heartbeat", body=body))

    def publish(self, name: str, body: wire.AnnouncementPublish) -> bool:
        return bool(self._call("POST", f"/nodes/{name}/announcements", body=body)["changed"])

    def leave(self, name: str) -> None:
        self._call("POST", f"/nodes/{name}/leave")

    # -- the operator's calls --------------------------------------------------------------------

    def nodes(self) -> list[wire.NodeView]:
        return TypeAdapter(list[wire.NodeView]).validate_python(self._call("GET", "/nodes"))

    def revoke(self, name: str) -> wire.ChangeAnswer:
        return self._model(wire.ChangeAnswer, self._call("POST", f"/nodes/{name}/revoke"))

    def assign(self, body: wire.AssignRequest) -> wire.ChangeAnswer:
        return self._model(wire.ChangeAnswer, self._call("POST", "/assign", body=body))

    def unassign(self, body: wire.UnassignRequest) -> wire.ChangeAnswer:
        return self._model(wire.ChangeAnswer, self._call("POST", "/unassign", body=body))

    def status(self) -> wire.FleetStatus:
        return self._model(wire.FleetStatus, self._call("GET", "/status"))

    def links(self) -> list[wire.LinkPairView]:
        return TypeAdapter(list[wire.LinkPairView]).validate_python(self._call("GET", "/links"))

    def set_pair(self, body: wire.LinkPairRequest, enabled: bool) -> wire.ChangeAnswer:
        verb = "enable" if enabled else "disable"
        return self._model(wire.ChangeAnswer, self._call("POST", f"/links/{verb}", body=body))
