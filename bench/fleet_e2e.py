"""End to end: ``git push`` of a fixed package -> the new version running on N real nodes.

Every part is the real one: a bare git repository with the farm's push hook (``shipyard
farm hook install``), the coordinator (``shipyard farm serve --repo``) on PostgreSQL, one
build worker (``shipyard farm worker``, in its bubblewrap sandbox when ``bwrap`` is
installed), the signed repository the coordinator publishes into, and N node agents
(``shipyard node agent``), each with its own ``SHIPYARD_HOME``, joined with its own
one-time token and calling from its own loopback address (127.0.1.N). One assignment
(label selector ``role=bench``) puts the package on all N.

The package is fixed (``bench.e2e:svc``: a one-line build that writes the service's
``bin/run``, a ``sleep`` in the foreground); each run only bumps its version, commits
and pushes. The clock starts when ``git push`` starts; the hook requests the build; the
bench waits for the build to be published (polling the farm's API), then does what a
deploy step would and assigns the new version to ``role=bench`` (one API call); the clock
stops when every node reports the assigned revision applied with the instance running
(``/api/fleet/nodes`` and ``/api/fleet/status``, polled every 0.1 s with a deadline).
Afterwards each node's own registry is read to check it really runs the new version.

Baseline in the same run, named ``farm``: the push -> published part alone (what the
farm costs before the fleet starts), so the fleet's share shows; ``fleet`` is the
assignment answered -> running on every node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
SHIPYARD = [sys.executable, "-m", "shipyard.cli.main"]
PG_ADMIN = os.environ.get("SHIPYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
GIT_ID = ["-c", "user.name=Bench", "-c", "user.email=bench@example.org"]
SERVICE = "1.svc.bench.e2e"
GROUP, IDENT = "bench.e2e", "svc"
DEADLINE = 600.0

MANIFEST = """[package]
group = "bench.e2e"
id = "svc"
version = "{version}"
maintainer = "Bench <bench@example.org>"

[build]
command = "sh build.sh"

[service]
exec = ["bin/run"]
"""

BUILD = """set -e
mkdir -p "$SHIPYARD_DESTDIR/bin"
printf '#!/bin/sh\\nexec sleep 1000000\\n' > "$SHIPYARD_DESTDIR/bin/run"
chmod 755 "$SHIPYARD_DESTDIR/bin/run"
"""


def log(message: str) -> None:
    print(f"fleet bench (e2e): {message}", file=sys.stderr, flush=True)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def _git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *GIT_ID, *args], cwd=cwd, check=True, capture_output=True,
                          text=True, env=env)


def _wait(predicate: Any, timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            value = predicate()
            if value:
                return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


class Setup:
    """Coordinator, worker, source repository and N joined nodes with their agents."""

    def __init__(self, base: Path, db_url: str, count: int) -> None:
        self.base = base
        self.db_url = db_url
        self.procs: list[subprocess.Popen[bytes]] = []
        self.check_seconds: list[float] = []
        self.home = base / "coordinator"
        self.home.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        self.env.update(SHIPYARD_HOME=str(self.home), SHIPYARD_FARM_DB=db_url,
                        PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT / "src"),
                        SHIPYARD_FLEET_LEASE_SECONDS="600", SHIPYARD_FLEET_POLL_SECONDS="2")
        self.repo = base / "repository"
        self._cli(self.env, "repo", "keygen")
        self._cli(self.env, "repo", "init", str(self.repo))
        self.public_key = self.home / "state" / "keys" / "repository.key.pub"
        tokens = self._tokens(["admin", "worker", "hook"] + ["node"] * count)
        self.admin = tokens[0]
        self.url = self._coordinator()
        self.http = httpx.Client(base_url=self.url, timeout=60,
                                 headers={"Authorization": f"Bearer {self.admin}"})
        sandbox = [] if _has_bwrap() else ["--no-sandbox"]
        self.sandboxed = not sandbox
        self._spawn("worker", ["farm", "worker", "--coordinator", self.url, "--token-file",
                               self._token_file("worker", tokens[1]), "--name", "w1",
                               "--workdir", str(base / "w1"), *sandbox], self.env)
        self.bare, self.work = base / "src.git", base / "src"
        _git("init", "-q", "--bare", str(self.bare))
        self._cli(self.env, "farm", "hook", "install", str(self.bare), "--coordinator",
                  self.url, "--token-file", self._token_file("hook", tokens[2]))
        _git("init", "-q", str(self.work))
        _git("remote", "add", "origin", str(self.bare), cwd=self.work)
        (self.work / IDENT).mkdir()
        (self.work / IDENT / "build.sh").write_text(BUILD)
        self.nodes = [self._node(index, token) for index, token in enumerate(tokens[3:])]

    # -- parts ---------------------------------------------------------------------------------

    def _cli(self, env: dict[str, str], *args: str) -> str:
        done = subprocess.run([*SHIPYARD, *args], env=env, capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            raise SystemExit(f"shipyard {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def _tokens(self, roles: list[str]) -> list[str]:
        from shipyard.farm.db import FarmDB
        from shipyard.farm.tokens import create_token

        db = FarmDB(self.db_url)
        try:
            return [create_token(db, role, f"bench-{role}-{i}")[0]
                    for i, role in enumerate(roles)]
        finally:
            db.dispose()

    def _token_file(self, role: str, secret: str) -> str:
        path = self.base / f"{role}.token"
        path.touch(mode=0o600)
        path.write_text(secret + "\n")
        return str(path)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Path:
        log_path = self.base / f"{name}.log"
        with open(log_path, "wb") as handle:
            self.procs.append(subprocess.Popen([*SHIPYARD, *args], env=env, stdout=handle,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True))
        return log_path

    def _coordinator(self) -> str:
        log_path = self._spawn("coordinator", ["farm", "serve", "--bind", "127.0.0.1:0",
                                               "--repo", str(self.repo)], self.env)

        def url() -> str | None:
            if self.procs[0].poll() is not None:
                raise SystemExit(f"the coordinator exited: {log_path.read_text()[-2000:]}")
            for line in log_path.read_text().splitlines():
                if "listening on " in line:
                    return line.split("listening on ", 1)[1].split()[0]
            return None

        found = _wait(url, 120, "the coordinator to listen")
        _wait(lambda: httpx.get(f"{found}/api/health", timeout=2).status_code == 200, 120,
              "the coordinator to answer")
        return str(found)

    def _node(self, index: int, token: str) -> dict[str, Any]:
        name, address = f"n{index:02d}", f"127.0.1.{index + 2}"
        home = self.base / f"node-{name}"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env.update(SHIPYARD_HOME=str(home), PYTHONUNBUFFERED="1",
                   PYTHONPATH=str(ROOT / "src"), SHIPYARD_REPO_URL=self.repo.as_uri(),
                   SHIPYARD_REPO_KEY=str(self.public_key),
                   SHIPYARD_NODE_SOURCE_ADDRESS=address, SHIPYARD_NODE_BACKOFF_MAX="1")
        self._cli(env, "node", "join", "--coordinator", self.url, "--token", token, "--name",
                  name, "--address", address, "--label", "role=bench")
        self._spawn(f"agent-{name}", ["node", "agent"], env)
        return {"name": name, "home": home}

    # -- one release ---------------------------------------------------------------------------

    def push(self, version: str) -> int:
        """Commit ``version`` of the package and push it; the build the hook requested."""
        (self.work / IDENT / "shipyard.toml").write_text(MANIFEST.format(version=version))
        _git("add", "-A", cwd=self.work)
        _git("commit", "-q", "-m", f"svc {version}", cwd=self.work)
        pushed = _git("push", "origin", "HEAD:refs/heads/master", cwd=self.work,
                      env={**self.env, "GIT_TERMINAL_PROMPT": "0"})
        ids = [int(line.split("shipyard farm: build ", 1)[1].split()[0])
               for line in pushed.stderr.splitlines() if "shipyard farm: build " in line]
        if len(ids) != 1:
            raise SystemExit(f"the push requested {ids} builds, not one: {pushed.stderr}")
        return ids[0]

    def published(self, build_id: int) -> bool:
        build = self.http.get(f"/api/builds/{build_id}").json()
        if build["state"] == "failed" or build.get("publish_state") == "error":
            raise SystemExit(f"build {build_id} failed: {build}")
        return build.get("publish_state") == "published"

    def assign(self, version: str) -> int:
        answer = self.http.post("/api/fleet/assign", json={
            "service": SERVICE, "package": f"{GROUP}:{IDENT}:{version}",
            "nodes": ["role=bench"]})
        answer.raise_for_status()
        return int(answer.json()["revision"])

    def running_at(self, revision: int, seen: dict[str, float]) -> bool:
        """Every node has applied ``revision`` and reports the instance running; notes in
        ``seen`` when each node was first found so."""
        began = time.monotonic()
        applied = {row["name"] for row in self.http.get("/api/fleet/nodes").json()
                   if row["revision_applied"] >= revision}
        rows = self.http.get("/api/fleet/status").json()["rows"]
        running = {row["node"] for row in rows if row["instance"] == SERVICE
                   and row["actual"] == "running" and not row["last_error"]}
        now = time.monotonic()
        self.check_seconds.append(now - began)  # the figure's resolution
        for name in applied & running:
            seen.setdefault(name, now)
        return len(seen) == len(self.nodes)

    def check_versions(self, version: str) -> None:
        """Each node's own registry names the new version (read after the clock stopped)."""
        from shipyard.config import load_settings
        from shipyard.coords import ServiceCoord
        from shipyard.svc import registry

        wrong = []
        for node in self.nodes:
            settings = load_settings(home=node["home"], env={})
            reg = registry.load(settings, ServiceCoord.parse(SERVICE))
            if reg is None or reg.package.version != version:
                wrong.append(f"{node['name']}: {reg.package if reg else 'not registered'}")
        if wrong:
            raise SystemExit(f"nodes not on {version}: {', '.join(wrong)}")

    def release(self, version: str) -> dict[str, float]:
        t0 = time.monotonic()
        build_id = self.push(version)
        _wait(lambda: self.published(build_id), DEADLINE, f"build {build_id} published")
        t_published = time.monotonic()
        revision = self.assign(version)
        t_assigned = time.monotonic()
        seen: dict[str, float] = {}
        _wait(lambda: self.running_at(revision, seen), DEADLINE,
              f"{version} running on all {len(self.nodes)} nodes")
        t_done = max(seen.values())
        self.check_versions(version)
        per_node = sorted(t - t_assigned for t in seen.values())
        return {"total_s": t_done - t0, "farm_s": t_published - t0,
                "fleet_s": t_done - t_assigned,
                "fleet_p50_node_s": statistics.median(per_node)}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.http.close()
        for proc in self.procs:  # agents first would not matter: all are stopped
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _kill_instances(self.base)


def _has_bwrap() -> bool:
    import shutil

    return shutil.which("bwrap") is not None


def _kill_instances(base: Path) -> None:
    """The instances the agents started live in sessions of their own: stop each process
    whose environment names a runtime directory under ``base`` (this bench's, no other)."""
    needle = f"SHIPYARD_RUNTIME_DIR={base}".encode()
    for pid in psutil.pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if needle in handle.read():
                    psutil.Process(pid).kill()
        except (OSError, psutil.Error):
            continue


def measure(count: int, runs: int) -> dict[str, Any]:
    import psycopg

    name = f"shipyard_bench_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    base = Path(tempfile.mkdtemp(prefix="shipyard-bench-e2e-", dir="/tmp"))
    os.chmod(base, 0o755)  # instances may run as a service user
    setup: Setup | None = None
    try:
        started = time.monotonic()
        setup = Setup(base, db_url, count)
        log(f"coordinator, worker and {count} joined agents up in "
            f"{time.monotonic() - started:.1f}s (worker sandboxed: {setup.sandboxed})")
        # Warm-up: the first version, built, published, assigned and running everywhere
        # (the worker's mirror cloned, every agent's first install done).
        warm = setup.release("1.0.0")
        log(f"warm-up 1.0.0: {warm['total_s']:.1f}s")
        figures: dict[str, list[float]] = {}
        loads = []
        for run in range(runs):
            got = setup.release(f"1.0.{run + 1}")
            for key, value in got.items():
                figures.setdefault(key, []).append(value)
            loads.append(round(os.getloadavg()[0], 2))
            log(f"run {run}: push -> running on {count} nodes {got['total_s']:.2f}s "
                f"(farm {got['farm_s']:.2f}s, fleet {got['fleet_s']:.2f}s)")
    finally:
        if setup is not None:
            setup.close()
        else:
            _kill_instances(base)
        import shutil

        shutil.rmtree(base, ignore_errors=True)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    share = [f / t for f, t in zip(figures["fleet_s"], figures["total_s"], strict=True)]
    over_farm = [t / f for t, f in zip(figures["total_s"], figures["farm_s"], strict=True)]
    return {"nodes": count, "runs": runs, "sandboxed_build": setup.sandboxed,
            "push_to_running_s": _summary(figures["total_s"]),
            "farm_push_to_published_s": _summary(figures["farm_s"]),
            "fleet_assign_to_running_s": _summary(figures["fleet_s"]),
            "fleet_p50_node_s": _summary(figures["fleet_p50_node_s"]),
            "fleet_share_of_total": _summary(share),
            "ratio_total_over_farm": _summary(over_farm),
            "status_check_s": _summary(setup.check_seconds),
            "per_run_total_s": [round(v, 3) for v in figures["total_s"]],
            "loadavg_per_run": loads,
            "baseline": "farm: the same push -> published in the repository"}
