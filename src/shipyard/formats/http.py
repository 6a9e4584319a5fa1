"""How the coordinator's refusals read on the wire, for its HTTP clients (farm and node).

FastAPI answers an error as ``{"detail": "..."}``, or, for a body that does not validate,
``{"detail": [{"loc": [...], "msg": "..."}, ...]}``; a proxy in front may answer plain text.
Every client turns any of these into the one line it shows the user; :func:`refusal` is
the other end, the answer a server gives for a :class:`~shipyard.errors.ShipyardError`.
"""

from __future__ import annotations

import httpx

from shipyard.errors import HttpError, ShipyardError


def refusal(exc: ShipyardError) -> tuple[dict[str, str], int, dict[str, str] | None]:
    """The JSON body, status and headers that answer ``exc``: an
    :class:`~shipyard.errors.HttpError` with its status, any other error with 400; a 401
    names the scheme the client should use."""
    status = exc.status if isinstance(exc, HttpError) else 400
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return {"detail": exc.message}, status, headers


def error_detail(response: httpx.Response) -> str:
    """The one line an error answer says: FastAPI's detail, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list):  # FastAPI's validation errors: the first three
        parts = []
        for item in detail[:3]:
            where = ".".join(str(p) for p in item.get("loc", [])[1:])
            parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return "; ".join(parts)
    return str(detail) if detail else response.text.strip()[:300]
