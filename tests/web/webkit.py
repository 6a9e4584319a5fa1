"""The web interface under test: a real coordinator (``shipyard farm serve`` under Uvicorn)
with a repository, a real worker, a real git repository of example packages, and Debian's
Chromium driven by Playwright. Everything on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ROOT, SHIPYARD, make_env
from kit.cli import Result, run
from kit.coordinator import create_token, start_coordinator
from kit.git import git as kit_git
from kit.manifest import manifest_text
from kit.net import free_port
from kit.procs import Proc, Procs
from kit.wait import wait_until
from shipyard.farm.client import FarmClient

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "tests" / "artifacts" / "web"
PASSWORD = "correct horse battery"
# Sign-in limits small enough to test: 3 failures per address within 4 seconds.
LIMITS = {"SHIPYARD_WEB_SIGNIN_ATTEMPTS": "3", "SHIPYARD_WEB_SIGNIN_WINDOW": "4"}

# Example packages: one quick, one that prints a line every 0.6 s for six seconds,
# one that runs until it is aborted, one that fails, one that prints a long log until aborted.
PACKAGES = {
    "hello": ("echo hello line 1; echo hello line 2; mkdir -p $SHIPYARD_DESTDIR/share && "
              "echo hi > $SHIPYARD_DESTDIR/share/hello.txt"),
    "slow": ("for i in 1 2 3 4 5 6 7 8 9 10; do echo slow line $i; sleep 0.6; done; "
             "mkdir -p $SHIPYARD_DESTDIR/share && echo slow > $SHIPYARD_DESTDIR/share/slow.txt"),
    "forever": "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
    "broken": "echo about to fail; echo 'error: the widget is missing' >&2; exit 3",
    # Far more lines than the log box shows at once, then a line every 0.2 s until aborted.
    "chatty": ("i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo early line $i; done; "
               "i=0; while true; do i=$((i+1)); echo late line $i; sleep 0.2; done"),
}


def git(*args: str, cwd: Path | None = None) -> str:
    return kit_git(*args, cwd=cwd).stdout.strip()


def manifest(ident: str, version: str, command: str) -> str:
    return manifest_text("org.example", ident, version,
                         maintainer="Pat Maintainer <pat@example.org>",
                         tables={"build": {"command": command}})


@dataclass
class WebFarm:
    """A coordinator (and optionally a repository, a worker and example packages)."""

    root: Path
    env: dict[str, str]
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    repo_dir: Path | None = None
    bare: Path | None = None
    commit: str = ""
    worker_http: int | None = None
    builds: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.running = Procs(self.root, grace=10)

    # -- processes --------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, extra_env: dict[str, str] | None = None,
               db_url: str | None = None) -> WebFarm:
        home = root / "home"
        home.mkdir(parents=True)
        env = make_env(home)
        env.update({"SHIPYARD_FARM_DB": db_url or f"sqlite:///{root / 'farm.sqlite'}",
                    "SHIPYARD_FARM_LEASE_SECONDS": "3", "SHIPYARD_FARM_POLL_SECONDS": "0.2",
                    **(extra_env or {})})
        return cls(root, env)

    def cli(self, *args: str, input: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> Result:
        return run({**self.env, **(env or {})}, *args, check=check, input=input)

    def spawn(self, name: str, *args: str) -> Proc:
        return self.running.spawn(name, [*SHIPYARD, *args], self.env)

    def serve(self, *, repository: bool = False) -> WebFarm:
        args: list[str] = []
        if repository:
            self.cli("repo", "keygen")
            self.repo_dir = self.root / "repo"
            self.cli("repo", "init", str(self.repo_dir))
            args += ["--repo", str(self.repo_dir)]
        self.url = start_coordinator(self.running, self.env, args=args).url
        return self

    def token(self, role: str) -> str:
        if role not in self.tokens:
            self.tokens[role] = create_token(self.env, role, f"test-{role}")
        return self.tokens[role]

    def add_user(self, name: str = "alice", password: str = PASSWORD) -> None:
        self.cli("farm", "user", "add", name, "--password-stdin", input=password + "\n")

    def start_worker(self, name: str = "w1") -> Proc:
        self.worker_http = free_port()
        proc = self.spawn(f"worker-{name}", "farm", "worker", "--coordinator", self.url,
                          "--token", self.token("worker"), "--name", name,
                          "--workdir", str(self.root / f"workdir-{name}"),
                          "--http", str(self.worker_http))
        wait_until(lambda: any(w["name"] == name for w in self.api_get("/api/workers")), 30,
                   what=f"worker {name} to register")
        return proc

    def close(self) -> None:
        self.running.close()

    # -- source and builds --------------------------------------------------------------------

    def make_source(self) -> None:
        self.bare = self.root / "src.git"
        work = self.root / "src-work"
        git("init", "-q", "--bare", str(self.bare))
        git("init", "-q", str(work))
        for ident, command in PACKAGES.items():
            (work / ident).mkdir()
            (work / ident / "shipyard.toml").write_text(manifest(ident, "1.0", command))
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "example packages", cwd=work)
        git("push", "-q", str(self.bare), "HEAD:refs/heads/master", cwd=work)
        self.commit = git("rev-parse", "HEAD", cwd=work)

    def request(self, ident: str, version: str = "1.0", force: bool = False) -> int:
        """Ask for a build as the push hook does (this also makes the package known)."""
        assert self.bare is not None
        body = {"commit": self.commit, "repo_url": str(self.bare), "subdir": ident,
                "group": "org.example", "id": ident, "version": version, "ref": "master",
                "maintainer": "Pat Maintainer <pat@example.org>", "force": force}
        answer = self.api_post("/api/builds", body, role="hook")
        return int(answer["build"]["id"])

    def publish_directly(self, ident: str, version: str) -> None:
        """Put a version into the repository with the repo commands (pack, upload,
        publish), independent of the farm's own hand-over of built packages."""
        assert self.repo_dir is not None
        source = self.root / f"direct-{ident}-{version}"
        source.mkdir()
        (source / "shipyard.toml").write_text(manifest(ident, version, PACKAGES["hello"]))
        out = self.root / "direct-out"
        self.cli("pkg", "pack", str(source), "--out", str(out))
        self.cli("repo", "upload", str(out / f"{ident}-{version}.tar.gz"),
                 "--repo", str(self.repo_dir))
        self.cli("repo", "publish", "--repo", str(self.repo_dir))

    # -- API ----------------------------------------------------------------------------------

    def api_get(self, path: str, **params: Any) -> Any:
        with FarmClient(self.url) as client:
            return client.get(path, params=params)

    def api_post(self, path: str, body: dict[str, Any] | None = None,
                 role: str = "admin") -> Any:
        with FarmClient(self.url, self.token(role)) as client:
            return client.post(path, body or {})

    def build(self, build_id: int) -> dict[str, Any]:
        return self.api_get(f"/api/builds/{build_id}")

    def wait_state(self, build_id: int, *states: str, timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            build = self.build(build_id)
            return build if build["state"] in states else None

        return wait_until(done, timeout, f"build {build_id} to be {' or '.join(states)}",
                          interval=0.1)

    def worker(self, name: str = "w1") -> dict[str, Any]:
        return self.api_get(f"/api/workers/{name}")


def start_full_farm(root: Path) -> WebFarm:
    """Coordinator + repository + worker w1 + user alice, with a few builds done: one
    success (hello), one failure (broken), two stopped (slow, forever), and slow 0.9
    published straight into the repository."""
    farm = WebFarm.create(root).serve(repository=True)
    try:
        farm.add_user()
        farm.make_source()
        farm.start_worker("w1")
        for ident in ("hello", "broken"):
            farm.builds[ident] = farm.request(ident)
        # "slow" and "forever" become known to the farm; their first builds are stopped
        # at once (the tests force builds of them from the pages).
        for ident in ("slow", "forever"):
            farm.builds[ident] = farm.request(ident)
            farm.api_post(f"/api/builds/{farm.builds[ident]}/abort")
        farm.wait_state(farm.builds["hello"], "succeeded", timeout=60)
        farm.wait_state(farm.builds["broken"], "failed", timeout=60)
        for ident in ("slow", "forever"):
            farm.wait_state(farm.builds[ident], "cancelled", "aborted", timeout=60)
        farm.publish_directly("slow", "0.9")
    except BaseException:
        farm.close()
        raise
    return farm


# ---------------------------------------------------------------------------------------
# Plain HTTP


def csrf_of(html: str) -> str:
    """The CSRF token of the first form in a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: httpx.Client, name: str = "alice",
             password: str = PASSWORD) -> httpx.Response:
    """Sign in through the form, as a browser would (the answer is not followed)."""
    form = client.get("/signin")
    return client.post("/signin", data={"csrf": csrf_of(form.text), "name": name,
                                        "password": password, "next": "/workers"})


# ---------------------------------------------------------------------------------------
# The browser


@dataclass
class Tab:
    """One browser context (its own cookies) with one page; collects console errors."""

    context: Any
    page: Any
    base: str
    errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base + path if path.startswith("/") else path)
        self.page.wait_for_load_state("load")
        return response

    def shot(self, name: str, *, full: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(target), full_page=full)
        assert target.stat().st_size > 1000, target
        return target

    def sign_in(self, name: str = "alice", password: str = PASSWORD) -> None:
        self.goto("/signin")
        self.page.get_by_label("User name").fill(name)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state("load")
        assert f"Signed in as {name}" in self.page.inner_text("header")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def post_forms(self) -> int:
        return self.page.locator("form[method=post]").count()

    def check_console(self) -> None:
        assert not self.errors, "browser console errors:\n" + "\n".join(self.errors)


def launch_browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright; the session fixture ``browser`` (tests/conftest.py,
    defined once: a fixture each module imported would be one Playwright per module, and a
    second sync Playwright in one process refuses to start) yields from this."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_tab(browser: Any, base: str, width: int = 1280, height: int = 900) -> Tab:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(20_000)
    tab = Tab(context, page, base)
    page.on("console", lambda msg: tab.errors.append(f"console.{msg.type}: {msg.text} "
                                                     f"({msg.location.get('url', '')})")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
    return tab
