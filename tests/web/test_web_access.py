"""Who may do what through the pages, over plain HTTP against a real coordinator: session
cookies, CSRF on the sign-in form, sign-in rate limiting, and the admin-token API twin of
every page action."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from webkit import LIMITS, PASSWORD, WebFarm, csrf_of, sign_in, wait_until


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[WebFarm]:
    """A coordinator on SQLite with user alice."""
    farm = WebFarm.create(tmp_path, LIMITS).serve()
    farm.add_user()
    yield farm
    farm.close()


@pytest.fixture
def any_coordinator(tmp_path: Path, db_url: str) -> Iterator[WebFarm]:
    """The same on SQLite and, in a second run, on PostgreSQL."""
    farm = WebFarm.create(tmp_path, LIMITS, db_url=db_url).serve()
    farm.add_user()
    yield farm
    farm.close()


def test_session_cookie_is_httponly_strict_signed_and_revocable(any_coordinator: WebFarm
                                                                 ) -> None:
    coordinator = any_coordinator
    with httpx.Client(base_url=coordinator.url, timeout=30) as client:
        answer = sign_in(client)
        assert answer.status_code == 303 and answer.headers["location"] == "/workers"
        cookies = [c for c in answer.headers.get_list("set-cookie")
                   if c.startswith("shipyard_session=")]
        assert len(cookies) == 1
        attributes = [part.strip().lower() for part in cookies[0].split(";")]
        assert "httponly" in attributes and "samesite=strict" in attributes
        assert "path=/" in attributes
        value = client.cookies["shipyard_session"]
        page = client.get("/workers")
        assert "Signed in as <strong>alice</strong>" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]

    # The database holds only a hash of the session id, never the cookie's secret part.
    from sqlalchemy import text

    from shipyard.db import make_engine

    engine = make_engine(coordinator.env["SHIPYARD_FARM_DB"])
    with engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT id_hash FROM web_sessions"))]
    engine.dispose()
    sid = value.rsplit(".", 1)[0]
    assert len(stored) == 1 and sid not in stored[0] and len(stored[0]) == 64

    # A cookie whose signature or id was changed counts for nothing.
    sid, mac = value.rsplit(".", 1)
    for forged in (f"{sid}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
                   f"{sid[:-1]}{'A' if sid[-1] != 'A' else 'B'}.{mac}", sid, "junk"):
        page = httpx.get(f"{coordinator.url}/workers", cookies={"shipyard_session": forged},
                         timeout=10)
        assert page.status_code == 200 and "Signed in as" not in page.text

    # Removing the user ends the session at once.
    coordinator.cli("farm", "user", "remove", "alice")
    page = httpx.get(f"{coordinator.url}/workers", cookies={"shipyard_session": value},
                     timeout=10)
    assert "Signed in as" not in page.text


def test_failed_sign_ins_are_rate_limited_per_address(any_coordinator: WebFarm) -> None:
    coordinator = any_coordinator
    with httpx.Client(base_url=coordinator.url, timeout=30) as client:
        for _ in range(3):
            answer = sign_in(client, password="wrong password")
            assert answer.status_code == 401
            assert "Wrong user name or password." in answer.text
        # The right password does not help while the address is blocked.
        answer = sign_in(client)
        assert answer.status_code == 429
        assert "Too many failed sign-ins from your address" in answer.text
        assert 1 <= int(answer.headers["retry-after"]) <= 5
        assert "shipyard_session" not in client.cookies

        # Another address is not blocked by this one's failures.
        other = httpx.Client(base_url=coordinator.url, timeout=30,
                             transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            assert sign_in(other).status_code == 303

        # Once the window has passed, the address may sign in again.
        def signed_in() -> bool:
            return sign_in(client).status_code == 303

        wait_until(signed_in, 15, "the block to expire", interval=0.5)
        assert "Signed in as <strong>alice" in client.get("/").text


def test_sign_in_refuses_a_missing_csrf_token_and_foreign_next(coordinator: WebFarm) -> None:
    with httpx.Client(base_url=coordinator.url, timeout=30) as client:
        client.get("/signin")
        answer = client.post("/signin", data={"name": "alice", "password": PASSWORD})
        assert answer.status_code == 403
        assert "shipyard_session" not in client.cookies
        form = client.get("/signin?next=//evil.example/x")
        assert 'name="next" value="/"' in form.text
        answer = client.post("/signin", data={"csrf": csrf_of(form.text), "name": "alice",
                                              "password": PASSWORD,
                                              "next": "https://evil.example/"})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        # A form that is not urlencoded is refused before anything else.
        answer = client.post("/signout", content=b"{}",
                             headers={"content-type": "application/json"})
        assert answer.status_code == 415


def test_page_actions_have_admin_token_twins(coordinator: WebFarm) -> None:
    """Every state-changing page action exists in the API, where an admin token (and no
    weaker one) passes the authorisation check."""
    from shipyard.web.pages import router

    pages = {route.path for route in router().routes if "POST" in getattr(route, "methods", ())}
    twins = {"/builds/{build_id}/abort": "/api/builds/999999/abort",
             "/builds/{build_id}/requeue": "/api/builds/999999/requeue",
             "/workers/{name}/pause": "/api/workers/nobody/pause",
             "/workers/{name}/resume": "/api/workers/nobody/resume",
             "/packages/{name:path}/force": "/api/packages/org.example:none/builds"}
    assert pages == {*twins, "/signin", "/signout"}
    for api in twins.values():
        body = {"force": True} if api.endswith("/builds") else {}
        assert httpx.post(coordinator.url + api, json=body, timeout=10).status_code == 401
        for role, status in (("worker", 403), ("admin", 404)):
            answer = httpx.post(coordinator.url + api, json=body, timeout=10,
                                headers={"Authorization": f"Bearer {coordinator.token(role)}"})
            assert answer.status_code == status, (api, role, answer.text)


def _sign_in_from(url: str, forwarded: str, password: str) -> int:
    with httpx.Client(base_url=url, timeout=30,
                      headers={"X-Forwarded-For": forwarded}) as client:
        return sign_in(client, password=password).status_code


# A window no loaded machine outlasts between the tries (the limit is the subject here).
SLOW_LIMITS = {**LIMITS, "SHIPYARD_WEB_SIGNIN_WINDOW": "600"}


def test_a_forged_forwarded_for_does_not_dodge_the_sign_in_limit(tmp_path: Path) -> None:
    farm = WebFarm.create(tmp_path, SLOW_LIMITS)
    try:
        farm.serve()
        farm.add_user()
        # Every try claims another address; without a trusted proxy none of them counts.
        for n in range(3):
            assert _sign_in_from(farm.url, f"198.51.100.{n}", "wrong password") == 401
        assert _sign_in_from(farm.url, "198.51.100.99", PASSWORD) == 429
    finally:
        farm.close()


def test_a_trusted_proxy_forwards_the_client_address(tmp_path: Path) -> None:
    farm = WebFarm.create(tmp_path, {**SLOW_LIMITS,
                                     "SHIPYARD_FARM_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        farm.serve()
        farm.add_user()
        for _ in range(3):
            assert _sign_in_from(farm.url, "203.0.113.7", "wrong password") == 401
        assert _sign_in_from(farm.url, "203.0.113.7", PASSWORD) == 429
        # The proxy's other clients are not blocked by that one's failures.
        assert _sign_in_from(farm.url, "203.0.113.8", PASSWORD) == 303
    finally:
        farm.close()
