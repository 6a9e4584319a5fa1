"""Every route that changes state refuses a request without a valid token of the right role:
the test walks the application's route table, so a route added later is covered too."""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from kit.net import serving
from shipyard.config import load_settings
from shipyard.db.farm_models import ROLES
from shipyard.farm.app import ROUTE_ROLES
from shipyard.farm.db import FarmDB
from shipyard.farm.tokens import create_token, revoke_token
from shipyard.fleet.api import ROUTE_AUTH
from shipyard.server import create_app

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def _api_routes(routes: list) -> list[APIRoute]:
    """Every API route of the table, also inside included routers (FastAPI keeps those as
    nested entries)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        inner = getattr(route, "original_router", None)
        found += _api_routes(inner.routes if inner is not None else getattr(route, "routes", []))
    return found


@contextlib.contextmanager
def _serve(app: FastAPI) -> Iterator[httpx.Client]:
    """The app under a real Uvicorn on a free loopback port, in a thread."""
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def _fill(path: str) -> str:
    """A concrete URL for a route path: every parameter gets a harmless value."""
    return re.sub(r"\{[^}]+\}", lambda m: "1" if "id" in m.group(0) else "x", path)


def test_every_state_changing_route_needs_a_token_of_its_role(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", env={})
    url = f"sqlite:///{tmp_path / 'farm.sqlite'}"
    db = FarmDB(url)
    tokens = {role: create_token(db, role, f"t-{role}")[0] for role in ROLES}
    revoked = create_token(db, "admin", "gone")[0]
    revoke_token(db, "gone")
    db.dispose()
    app = create_app(settings, url)

    # The JSON API (/api/...) takes bearer tokens; the web pages (shipyard.web) sign people
    # in with sessions and have tests of their own.
    changing = [(method, route) for route in _api_routes(app.routes)
                if route.path.startswith("/api/") and not route.path.startswith("/api/fleet/")
                for method in sorted(route.methods - READ_METHODS)]
    assert len(changing) >= 10  # the walk sees the real table, not an empty one
    with _serve(app) as client:
        for method, route in changing:
            declared = ROUTE_ROLES.get((method, route.path.removeprefix("/api")))
            assert declared, f"{method} {route.path} declares no roles"
            target = _fill(route.path)
            for headers in ({}, {"Authorization": "Bearer shy_forged"},
                            {"Authorization": f"Bearer {revoked}"},
                            {"Authorization": f"Token {tokens['admin']}"}):
                answer = client.request(method, target, headers=headers, json={})
                assert answer.status_code == 401, (method, target, headers, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
            for role in ROLES:
                answer = client.request(method, target, json={},
                                        headers={"Authorization": f"Bearer {tokens[role]}"})
                if role in declared:
                    assert answer.status_code not in (401, 403), (method, target, role)
                else:
                    assert answer.status_code == 403, (method, target, role, answer.text)

        # Reads stay anonymous.
        for path in ("/api/health", "/api/builds", "/api/workers", "/api/packages",
                     "/api/stats", "/api/stale", "/openapi.json", "/docs", "/metrics"):
            assert client.get(path).status_code == 200, path
        # /metrics is outside /api/ and only reads: nothing else is routed there.
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert client.request(method, "/metrics").status_code == 405, method
        assert client.get("/api/whoami").status_code == 401
        me = client.get("/api/whoami", headers={"Authorization": f"Bearer {tokens['hook']}"})
        assert me.json() == {"name": "t-hook", "role": "hook"}


def _join(client: httpx.Client, token: str, name: str) -> str:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    answer = client.post("/api/fleet/join", headers={"Authorization": f"Bearer {token}"},
                         json={"name": name, "address": "127.0.1.9", "signing_key": key,
                               "sealing_key": key})
    assert answer.status_code == 200, answer.text
    return answer.json()["credential"]


def test_every_fleet_route_refuses_anonymous_and_foreign_callers(tmp_path: Path) -> None:
    """Fleet routes are never anonymous, reads included: each takes a node's own
    credential, an admin token, or (to join) a one-time node token, as ROUTE_AUTH says."""
    settings = load_settings(home=tmp_path / "home", env={})
    url = f"sqlite:///{tmp_path / 'farm.sqlite'}"
    db = FarmDB(url)
    tokens = {role: create_token(db, role, f"t-{role}")[0] for role in ROLES}
    joins = [create_token(db, "node", f"join-{i}")[0] for i in range(3)]
    revoked = create_token(db, "admin", "gone")[0]
    revoke_token(db, "gone")
    db.dispose()
    app = create_app(settings, url)
    routes = [(method, route) for route in _api_routes(app.routes)
              if route.path.startswith("/api/fleet/") for method in sorted(route.methods)]
    assert len(routes) >= 12
    routes.sort(key=lambda item: item[1].path.endswith("/leave"))  # leaving revokes: last
    with _serve(app) as client:
        mine = _join(client, joins[0], "x")  # the node the filled-in paths name
        other = _join(client, joins[1], "other")
        gone = _join(client, joins[2], "gone")
        assert client.post("/api/fleet/nodes/gone/revoke",
                           headers={"Authorization": f"Bearer {tokens['admin']}"}
                           ).status_code == 200
        for method, route in routes:
            kind = ROUTE_AUTH.get((method, route.path.removeprefix("/api")))
            assert kind in ("node", "operator", "join"), f"{method} {route.path}: {kind}"
            target = _fill(route.path)
            if target.endswith("/revoke"):  # revoke a node nobody uses, not the one we call as
                target = target.replace("/x/", "/nobody/")
            params = {"wait": 0} if target.endswith("/desired") else None

            def call(secret: str | None, scheme: str = "Bearer", target: str = target,
                     method: str = method, params: dict | None = params) -> httpx.Response:
                headers = {"Authorization": f"{scheme} {secret}"} if secret else {}
                return client.request(method, target, headers=headers, json={},
                                      params=params)

            for secret, scheme in ((None, "Bearer"), ("shy_forged", "Bearer"),
                                   ("shn_forged", "Bearer"), (revoked, "Bearer"),
                                   (gone, "Bearer"), (tokens["admin"], "Token"),
                                   (mine, "Token")):
                answer = call(secret, scheme)
                assert answer.status_code == 401, (method, target, scheme, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
            allowed = {"node": [mine], "operator": [tokens["admin"]],
                       "join": [tokens["node"]]}[kind]
            refused = [tokens[r] for r in ROLES if tokens[r] not in allowed]
            refused += [] if kind == "node" else [mine]
            if kind == "node":
                refused.append(other)  # another node's credential: 403, not its document
            for secret in refused:
                answer = call(secret)
                assert answer.status_code == 403, (method, target, answer.text)
            for secret in allowed:
                answer = call(secret)
                assert answer.status_code not in (401, 403), (method, target, answer.text)
