"""The farm's pages in a real browser (Debian's Chromium via Playwright) against a real
coordinator, worker and repository: anonymous reading, signing in, forcing a build and
watching its log arrive live, aborting, pausing. Every test fails on a console error and
leaves screenshots under tests/artifacts/web/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from webkit import (
    PASSWORD,
    Tab,
    WebFarm,
    open_tab,
    start_full_farm,
    wait_until,
)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebFarm]:
    running = start_full_farm(tmp_path_factory.mktemp("webfarm"))
    yield running
    running.close()


@pytest.fixture
def tab(browser: Any, farm: WebFarm) -> Iterator[Tab]:
    opened = open_tab(browser, farm.url)
    yield opened
    try:
        opened.check_console()
    finally:
        opened.context.close()


def _no_overflow(tab: Tab) -> bool:
    return tab.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


PAGES = [
    ("/", "Dashboard", "Build farm"),
    ("/builds", "Builds", "Builds"),
    ("/packages", "Packages", "Packages"),
    ("/workers", "Workers", "Workers"),
    ("/stats", "Statistics", "Statistics"),
    ("/stats?days=30", "Statistics", "Statistics"),
    ("/repository", "Repository", "Repository"),
]


def test_anonymous_reads_every_page_without_actions(tab: Tab, farm: WebFarm) -> None:
    hello, broken = farm.builds["hello"], farm.builds["broken"]
    pages = [*PAGES,
             (f"/builds/{hello}", f"Build {hello}: org.example:hello 1.0", f"Build #{hello}"),
             (f"/builds/{broken}", f"Build {broken}: org.example:broken 1.0",
              f"Build #{broken}"),
             ("/packages/org.example:slow", "Package org.example:slow", "Package"),
             ("/workers/w1", "Worker w1", "Worker")]
    for path, title, heading in pages:
        response = tab.goto(path)
        assert response.status == 200, path
        assert tab.page.title() == f"{title} · Shipyard farm"
        assert tab.text("h1").startswith(heading)
        # Landmarks, and nothing an anonymous visitor could press to change the farm.
        assert tab.page.locator("header nav[aria-label=Main]").count() == 1
        assert tab.page.locator("main#main").count() == 1
        assert tab.post_forms() == 0, f"{path} shows a form that changes state"
        assert tab.page.get_by_role("link", name="Sign in").count() == 1
        tab.shot("anon" + re.sub(r"[^a-z0-9]+", "-", path.lower()).rstrip("-"))

    # What the pages say: the worker's state, the logs, the failure, the published version.
    tab.goto("/")
    assert tab.page.locator("#workers-h + .table-wrap").inner_text().count("w1") >= 1
    assert "idle" in tab.text("#dash-live")
    failures = tab.page.locator("table[aria-label='Latest failures']").inner_text()
    assert "org.example:broken" in failures and "exit" in failures
    tab.goto(f"/builds/{hello}")
    assert "hello line 2" in tab.text("#log")
    assert tab.text("#build-state") == "succeeded"
    tab.goto(f"/builds/{broken}")
    assert "error: the widget is missing" in tab.text("#log")
    assert tab.text("#build-state") == "failed"
    tab.goto("/packages/org.example:slow")
    published = tab.page.locator("table[aria-labelledby=published-h]").inner_text()
    assert re.search(r"stable\s+(1\.0, )?0\.9", published), published
    assert "Pat Maintainer" in tab.text("dl.facts")
    tab.goto("/repository")
    assert "publish" in tab.text("#scripts-h + .table-wrap")
    assert "stable" in tab.text("#channels-h + .table-wrap")
    tab.goto("/stats?days=7")
    assert tab.page.locator("svg.chart").count() == 6
    assert tab.page.locator("svg.chart rect.s-fail").count() >= 1
    tab.shot("anon-stats-7d")

    # The worker's own --http port sends a browser to its page here.
    tab.goto(f"http://127.0.0.1:{farm.worker_http}/")
    assert tab.page.url == f"{farm.url}/workers/w1"
    assert tab.text("h1") == "Worker w1"

    # Raw log: the whole text, served as text.
    raw = httpx.get(f"{farm.url}/builds/{hello}/log.txt", timeout=10)
    assert raw.headers["content-type"].startswith("text/plain")
    assert "hello line 1" in raw.text

    # At phone width the pages fit (tables scroll inside their own box).
    tab.page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/", f"/builds/{broken}", "/stats", "/workers/w1", "/repository"):
        tab.goto(path)
        assert _no_overflow(tab), f"{path} is wider than a phone screen"
        tab.shot("phone" + re.sub(r"[^a-z0-9]+", "-", path.lower()).rstrip("-"))
    tab.check_console()


def test_anonymous_posts_are_refused(tab: Tab, farm: WebFarm) -> None:
    hello = farm.builds["hello"]
    before = len(farm.api_get("/api/builds", limit=1000))
    tab.goto("/")
    for path in (f"/builds/{hello}/requeue", f"/builds/{hello}/abort", "/workers/w1/pause",
                 "/packages/org.example:hello/force", "/signout"):
        for form in ({}, {"csrf": "forged"}):
            answer = tab.context.request.post(farm.url + path, form=form)
            assert answer.status == 403, (path, form, answer.status)
            assert "Sign in to do this" in answer.text()
    assert len(farm.api_get("/api/builds", limit=1000)) == before
    assert farm.worker()["paused"] is False
    tab.check_console()


def test_csrf_token_is_required_even_when_signed_in(tab: Tab, farm: WebFarm,
                                                    browser: Any) -> None:
    tab.sign_in()
    tab.goto("/workers/w1")
    token = tab.page.locator("input[name=csrf]").first.get_attribute("value")
    assert token
    other = open_tab(browser, farm.url)
    try:
        other.sign_in()
        other.goto("/workers/w1")
        foreign = other.page.locator("input[name=csrf]").first.get_attribute("value")
    finally:
        other.context.close()
    assert foreign != token
    post = tab.context.request.post
    for form in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": token[:-2] + "xx"},
                 {"csrf": foreign}):
        answer = post(f"{farm.url}/workers/w1/pause", form=form)
        assert answer.status == 403, form
        assert "security token is missing or wrong" in answer.text()
    # A valid token sent from another site's page is refused too.
    answer = post(f"{farm.url}/workers/w1/pause", form={"csrf": token},
                  headers={"Origin": "http://evil.example"})
    assert answer.status == 403
    assert "another site" in answer.text()
    assert farm.worker()["paused"] is False
    tab.check_console()


def test_sign_in_force_a_build_and_watch_its_log_live(tab: Tab, farm: WebFarm) -> None:
    tab.goto("/packages/org.example:slow")
    assert tab.post_forms() == 0
    tab.page.get_by_role("link", name="Sign in").click()
    tab.page.wait_for_load_state("load")
    assert tab.page.title() == "Sign in · Shipyard farm"
    tab.page.get_by_label("User name").fill("alice")
    tab.page.get_by_label("Password").fill(PASSWORD)
    tab.shot("signin")
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.wait_for_load_state("load")
    # Back on the page the visitor came from, now with the actions.
    assert tab.page.url.endswith("/packages/org.example:slow")
    assert "Signed in as alice." in tab.text("main .flash")
    force = tab.page.get_by_role("button", name=re.compile("Force a build"))
    assert force.count() == 1
    tab.shot("package-signed-in")
    force.click()
    tab.page.wait_for_load_state("load")
    build_id = int(tab.page.url.rsplit("/", 1)[1])
    assert build_id > farm.builds["slow"]
    assert f"Build {build_id} queued" in tab.text("main .flash")
    assert farm.build(build_id)["requested_by"] == "alice"

    # The log arrives while the build runs, without a reload of the page.
    tab.page.evaluate("window.__sameDocument = 42")
    at_load = tab.text("#log")
    assert "slow line 10" not in at_load
    expect(tab.page.locator("#build-state")).to_have_text("running", timeout=30_000)
    expect(tab.page.locator("#log")).to_contain_text("slow line 2", timeout=30_000)
    tab.shot("build-running")
    expect(tab.page.locator("#log")).to_contain_text("slow line 10", timeout=30_000)
    expect(tab.page.locator("#build-state")).to_have_text("succeeded", timeout=30_000)
    assert tab.page.evaluate("window.__sameDocument") == 42, "the page was reloaded"
    log = tab.text("#log")
    assert len(log) > len(at_load) and log.startswith(at_load.rstrip("\n"))
    assert log.count("slow line 5") == 1, "a chunk arrived twice"
    assert "[shipyard] build succeeded" in log
    # What arrived live is exactly the stored log, nothing lost or doubled.
    raw = httpx.get(f"{farm.url}/builds/{build_id}/log.txt", timeout=10).text
    assert log.rstrip("\n") == raw.rstrip("\n")
    tab.shot("build-succeeded")

    # Requeue the finished build: a new forced build of the same commit.
    tab.page.get_by_role("button", name="Build this commit again").click()
    tab.page.wait_for_load_state("load")
    again = int(tab.page.url.rsplit("/", 1)[1])
    assert again > build_id
    assert f"Build {again} queued" in tab.text("main .flash")
    assert farm.build(again)["commit"] == farm.build(build_id)["commit"]
    farm.wait_state(again, "succeeded", timeout=60)
    tab.check_console()


def test_abort_a_running_build(tab: Tab, farm: WebFarm) -> None:
    tab.sign_in()
    tab.goto("/packages/org.example:forever")
    tab.page.get_by_role("button", name=re.compile("Force a build")).click()
    tab.page.wait_for_load_state("load")
    build_id = int(tab.page.url.rsplit("/", 1)[1])
    expect(tab.page.locator("#log")).to_contain_text("tick 3", timeout=30_000)
    # The page was loaded while the build was queued; its live part updated itself.
    expect(tab.page.locator("#build-state")).to_have_text("running", timeout=30_000)
    abort = tab.page.get_by_role("button", name="Abort build")
    wait_until(lambda: abort.count() == 1, 10, what="the abort button")
    abort.click()
    tab.page.wait_for_load_state("load")
    assert "Abort requested" in tab.text("main .flash")
    expect(tab.page.locator("#build-state")).to_have_text("aborted", timeout=30_000)
    build = farm.build(build_id)
    assert build["state"] == "aborted"
    assert "aborted by alice" in build["reason"]
    assert "[shipyard] build aborted" in tab.text("#log")
    assert tab.page.get_by_role("button", name="Abort build").count() == 0
    tab.shot("build-aborted")
    tab.check_console()


def _log_position(tab: Tab) -> dict[str, float]:
    return tab.page.evaluate("(() => { const log = document.getElementById('log'); return "
                             "{top: log.scrollTop, height: log.scrollHeight, "
                             "view: log.clientHeight}; })()")


def _at_end(position: dict[str, float]) -> bool:
    return position["height"] - position["top"] - position["view"] < 40


def test_live_log_opens_at_the_end_and_follows_until_the_reader_scrolls_up(
        tab: Tab, farm: WebFarm) -> None:
    build_id = farm.request("chatty", force=True)
    try:
        wait_until(lambda: "late line 3" in httpx.get(
            f"{farm.url}/builds/{build_id}/log.txt", timeout=10).text, 60,
            what="the chatty build to print its long log")
        tab.goto(f"/builds/{build_id}")
        opened = _log_position(tab)
        assert opened["height"] > 3 * opened["view"], "the log must be longer than its box"
        assert _at_end(opened), f"the log opened at {opened}, not at its end"

        # New lines arrive below and the box follows them.
        seen = tab.text("#log").count("late line")
        wait_until(lambda: tab.text("#log").count("late line") >= seen + 5, 30,
                   what="more live lines")
        following = _log_position(tab)
        assert following["height"] > opened["height"] and _at_end(following), following

        # The reader scrolls up (the mouse wheel over the log): the box stays where they are.
        tab.page.locator("#log").hover()  # brings it into view, the pointer over it
        tab.page.mouse.wheel(0, -3000)
        wait_until(lambda: not _at_end(_log_position(tab)), 10, what="the scroll up")
        read_at = _log_position(tab)["top"]
        seen = tab.text("#log").count("late line")
        wait_until(lambda: tab.text("#log").count("late line") >= seen + 5, 30,
                   what="more live lines while reading")
        assert _log_position(tab)["top"] == read_at, "the log jumped away from the reader"

        # Back at the bottom, it follows again.
        tab.page.mouse.wheel(0, 100000)
        wait_until(lambda: _at_end(_log_position(tab)), 10, what="the scroll down")
        seen = tab.text("#log").count("late line")
        wait_until(lambda: tab.text("#log").count("late line") >= seen + 5, 30,
                   what="more live lines at the end")
        assert _at_end(_log_position(tab))
        tab.shot("build-log-following")
    finally:
        farm.api_post(f"/api/builds/{build_id}/abort")
        farm.wait_state(build_id, "aborted", "cancelled", timeout=60)
    tab.check_console()


def test_pause_and_resume_a_worker(tab: Tab, farm: WebFarm) -> None:
    tab.sign_in()
    try:
        tab.goto("/workers/w1")
        tab.page.get_by_role("button", name="Pause worker").click()
        tab.page.wait_for_load_state("load")
        assert "Worker w1 paused" in tab.text("main .flash")
        assert tab.text("#worker-state") == "paused"
        assert farm.worker()["paused"] is True
        tab.shot("worker-paused")

        # A paused worker keeps polling but is handed nothing.
        build_id = farm.request("hello", force=True)
        requested = farm.build(build_id)["requested_at"]
        wait_until(lambda: farm.worker()["last_seen_at"] > requested, 20,
                   what="the paused worker to poll after the request")
        seen = farm.worker()["last_seen_at"]
        wait_until(lambda: farm.worker()["last_seen_at"] > seen, 20,
                   what="another poll of the paused worker")
        assert farm.build(build_id)["state"] == "queued"

        tab.page.get_by_role("button", name="Resume worker").click()
        tab.page.wait_for_load_state("load")
        assert "Worker w1 resumed" in tab.text("main .flash")
        assert farm.worker()["paused"] is False
        farm.wait_state(build_id, "succeeded", timeout=60)
    finally:
        if farm.worker()["paused"]:
            farm.api_post("/api/workers/w1/resume")
    tab.check_console()


def test_sign_out_ends_the_session(tab: Tab, farm: WebFarm) -> None:
    tab.sign_in()
    tab.goto(f"/builds/{farm.builds['hello']}")
    assert tab.page.get_by_role("button", name="Build this commit again").count() == 1
    cookie = next(c for c in tab.context.cookies() if c["name"] == "shipyard_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    token = tab.page.locator("input[name=csrf]").first.get_attribute("value")
    tab.page.get_by_role("button", name="Sign out").click()
    tab.page.wait_for_load_state("load")
    assert "Signed out." in tab.text("main .flash")
    tab.goto(f"/builds/{farm.builds['hello']}")
    assert tab.post_forms() == 0
    # The old cookie is dead on the server, not only forgotten by this browser.
    stale = httpx.post(f"{farm.url}/workers/w1/pause", data={"csrf": token}, timeout=10,
                       cookies={"shipyard_session": cookie["value"]})
    assert stale.status_code == 403
    assert farm.worker()["paused"] is False
    tab.check_console()

