"""The web interface under test: a real coordinator (``shipyard farm serve`` under Uvicorn)
with a repository, a real worker, a real git repository of example packages, and Debian's
Chromium driven by Playwright. Everything on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ROOT, SHIPYARD, make_env
from helpers import wait_until
from shipyard.farm.client import FarmClient

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "tests" / "artifacts" / "web"
PASSWORD = "correct horse battery"
# Sign-in limits small enough to test: 3 failures per address within 4 seconds.
LIMITS = {"SHIPYARD_WEB_SIGNIN_ATTEMPTS": "3", "SHIPYARD_WEB_SIGNIN_WINDOW": "4"}
GIT_ID = ["-c", "user.name=Dev Eloper", "-c", "user.email=dev@example.org",
          "-c", "init.defaultBranch=master"]

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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def manifest(ident: str, version: str, command: str) -> str:
    return (f'[package]\ngroup = "org.example"\nid = "{ident}"\nversion = "{version}"\n'
            f'maintainer = "Pat Maintainer <pat@example.org>"\n\n'
            f"[build]\ncommand = {json.dumps(command)}\n")


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class WebFarm:
    """A coordinator (and optionally a repository, a worker and example packages)."""

    root: Path
    env: dict[str, str]
    url: str = ""
    procs: list[Proc] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    repo_dir: Path | None = None
    bare: Path | None = None
    commit: str = ""
    worker_http: int | None = None
    builds: dict[str, int] = field(default_factory=dict)

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
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*SHIPYARD, *args], env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=120, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"shipyard {' '.join(args)} exited {result.returncode}\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def spawn(self, name: str, *args: str) -> Proc:
        log = self.root / f"{name}.{len(self.procs)}.log"
        with open(log, "wb") as handle:
            popen = subprocess.Popen([*SHIPYARD, *args], env=self.env, stdout=handle,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(popen, log)
        self.procs.append(proc)
        return proc

    def serve(self, *, repository: bool = False) -> WebFarm:
        args = ["farm", "serve", "--bind", "127.0.0.1:0"]
        if repository:
            self.cli("repo", "keygen")
            self.repo_dir = self.root / "repo"
            self.cli("repo", "init", str(self.repo_dir))
            args += ["--repo", str(self.repo_dir)]
        proc = self.spawn("coordinator", *args)

        def listening() -> str | None:
            if not proc.alive():
                raise AssertionError(f"coordinator exited: {proc.output()}")
            found = re.search(r"listening on (\S+)", proc.output())
            return found.group(1) if found else None

        self.url = wait_until(listening, 30, what="the coordinator to listen")
        wait_until(self._healthy, 30, what="the coordinator to answer")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def token(self, role: str) -> str:
        if role not in self.tokens:
            self.tokens[role] = self.cli("farm", "token", "create", "--role", role,
                                         "--name", f"test-{role}").stdout.strip()
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
        for proc in reversed(self.procs):
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                try:
                    proc.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.popen.pid, signal.SIGKILL)
                    proc.popen.wait(timeout=10)

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
