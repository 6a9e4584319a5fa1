"""Farm throughput and request-to-claim latency, on SQLite and on PostgreSQL.

A real coordinator (``shipyard farm serve``) and four real workers (``shipyard farm
worker``, capacity 1 each) build a trivial package (a one-line ``[build] command``, packed
and uploaded like any other) from a real bare git repository. Per database and run:

* throughput: N forced build requests sent at once; builds/s = N / (time from the first
  request to the last success);
* latency: requests sent at a steady rate well below capacity (so a request finds idle
  workers waiting in their long poll); request-to-claim = ``first_claimed_at -
  requested_at`` as the coordinator recorded them;
* CPU: what the coordinator and the workers (with their git and build processes) spend
  per build, and the builds/s the machine's cores would allow at that cost (on a loaded
  machine builds/s measures the load as much as the farm).

Runs are repeated (default 5) after a warm-up; the JSON line carries median, min and max.

Peer (``--peer buildbot``, the default): Buildbot 4 (``bench/peers/buildbot.py``: a master
on SQLite and the same number of workers, one build at a time each, in a venv of its own
under ``bench/.peers/``) builds the same commit of the same bare repository: git checkout,
``out.txt`` written and packed as a ``.tar.gz``, the archive uploaded to the master. After
the per-database runs, a fresh Shipyard setup on SQLite and the Buildbot master are both
up; after a warm-up of each, every run forces ``--peer-builds`` (200) builds at once on
one, then on the other, alternating which goes first, and takes from each farm's own
records:

* builds/s = N / (first request -> last build finished);
* request-to-start per build: Shipyard ``first_claimed_at - requested_at`` (the moment the
  coordinator hands the build to a worker; the farm API has no later "started" mark) and
  Buildbot ``builds.started_at - buildrequests.submitted_at`` (its build record is created
  when the master has claimed the request for a worker, before any step runs). Buildbot
  keeps whole seconds, so its figures are good to about a second; in a burst of 200 most
  of the latency is queueing, seconds long on both sides.

Ratios (``vs_buildbot.ratios``: Shipyard builds/s over Buildbot's, Shipyard p95 over
Buildbot's) are taken run by run; the aim is a median throughput ratio of at least 5 and a
median p95 ratio below 1.

    .venv/bin/python bench/farm.py [--builds 500] [--runs 5] [--db sqlite,postgresql]
        [--peer buildbot|none] [--peer-builds 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from peers import stop_groups

ROOT = Path(__file__).resolve().parent.parent
SHIPYARD = [sys.executable, "-m", "shipyard.cli.main"]
PG_ADMIN = os.environ.get("SHIPYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
GIT_ID = ["-c", "user.name=Bench", "-c", "user.email=bench@example.org"]


def _env(home: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SHIPYARD_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(SHIPYARD_HOME=str(home), SHIPYARD_FARM_DB=db_url, PYTHONUNBUFFERED="1")
    return env


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *GIT_ID, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


class Setup:
    """One coordinator, four workers and a source repository on one database."""

    def __init__(self, kind: str, workdir: Path, workers: int) -> None:
        self.kind = kind
        self.workdir = workdir
        self.pg_name: str | None = None
        if kind == "sqlite":
            self.db_url = f"sqlite:///{workdir / 'farm.sqlite'}"
        else:
            import psycopg

            self.pg_name = f"shipyard_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            self.db_url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{self.pg_name}"
        self.env = _env(workdir / "home", self.db_url)
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            self._start(workers)
        except BaseException:  # no coordinator or worker outlives a failed start
            self._stop()
            raise

    def _start(self, workers: int) -> None:
        workdir = self.workdir
        from shipyard.farm.db import FarmDB
        from shipyard.farm.tokens import create_token

        db = FarmDB(self.db_url)
        self.worker_token = create_token(db, "worker", "bench-worker")[0]
        self.admin_token = create_token(db, "admin", "bench-admin")[0]
        db.dispose()
        self.url = self._coordinator()
        self.commit = self._source()
        for index in range(workers):
            self._spawn(["farm", "worker", "--coordinator", self.url, "--token",
                         self.worker_token, "--name", f"w{index}", "--workdir",
                         str(workdir / f"w{index}")], f"w{index}")
        self.http = httpx.Client(base_url=self.url, timeout=60,
                                 headers={"Authorization": f"Bearer {self.admin_token}"})
        self._wait(lambda: len(self.http.get("/api/workers").json()) == workers, 60)

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([*SHIPYARD, *args], env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _coordinator(self) -> str:
        self._spawn(["farm", "serve", "--bind", "127.0.0.1:0"], "coordinator")
        log = self.workdir / "coordinator.log"

        def url() -> str | None:
            for line in log.read_text().splitlines():
                if "listening on " in line:
                    return line.split("listening on ", 1)[1].split()[0]
            return None

        return self._wait(url, 60)

    def _source(self) -> str:
        bare = self.workdir / "src.git"
        work = self.workdir / "src"
        _git("init", "-q", "--bare", str(bare))
        _git("init", "-q", str(work))
        pkg = work / "triv"
        pkg.mkdir()
        (pkg / "shipyard.toml").write_text(
            '[package]\ngroup = "org.bench"\nid = "triv"\nversion = "1.0"\n'
            'maintainer = "Bench <bench@example.org>"\n\n[build]\n'
            'command = "echo built > $SHIPYARD_DESTDIR/out.txt"\n')
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "-m", "triv", cwd=work)
        _git("push", "-q", str(bare), "HEAD:refs/heads/master", cwd=work)
        commit = _git("rev-parse", "HEAD", cwd=work)
        # Announce the package once (what the push hook does), then force rebuilds.
        from shipyard.farm.client import FarmClient

        with FarmClient(self.url, self.admin_token) as client:
            client.post("/api/builds", {"commit": commit, "repo_url": str(bare),
                                        "subdir": "triv", "group": "org.bench", "id": "triv",
                                        "version": "1.0"})
        return commit

    @staticmethod
    def _wait(predicate: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, OSError):
                value = predicate()
                if value:
                    return value
            time.sleep(0.05)
        raise RuntimeError("timed out")

    def request(self, client: httpx.Client | None = None) -> int:
        answer = (client or self.http).post("/api/packages/org.bench:triv/builds",
                                            json={"force": True})
        answer.raise_for_status()
        return int(answer.json()["build"]["id"])

    def states(self, since: int) -> dict[str, int]:
        builds = self.http.get("/api/builds", params={"limit": 1000}).json()
        counts: dict[str, int] = {}
        for build in builds:
            if build["id"] > since:
                counts[build["state"]] = counts.get(build["state"], 0) + 1
        return counts

    def wait_done(self, ids: list[int], timeout: float = 600) -> list[dict[str, Any]]:
        first = min(ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self.http.get("/api/stats").json()["builds"]
            if stats["queued"] == 0 and stats["running"] == 0:
                break
            time.sleep(0.25)  # the figures come from the coordinator's timestamps
        builds: list[dict[str, Any]] = []
        before = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if before:
                params["before"] = before
            page = self.http.get("/api/builds", params=params).json()
            page = [b for b in page if b["id"] >= first]
            builds += [b for b in page if b["id"] in set(ids)]
            if len(page) < 1000 or not page:
                break
            before = page[-1]["id"]
        bad = [b for b in builds if b["state"] != "succeeded"]
        if bad or len(builds) != len(ids):
            raise RuntimeError(f"{len(bad)} builds did not succeed: {bad[:1]}")
        return builds

    def close(self) -> None:
        self.http.close()
        self._stop()

    def _stop(self) -> None:
        stop_groups(self.procs, 10)
        if self.pg_name:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _cpu(setup: Setup) -> float:
    """CPU seconds used so far by the coordinator and the workers, with the processes they
    waited for (git, the build commands)."""
    import psutil

    total = 0.0
    for proc in setup.procs:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(proc.pid).cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def throughput(setup: Setup, count: int, cpu: list[float] | None = None) -> float:
    """Send ``count`` requests at once (4 client threads); builds per second. Appends the
    farm's CPU milliseconds per build to ``cpu``: a figure the machine's load does not
    stretch (builds/s does)."""
    return burst(setup, count, cpu)[0]


def burst(setup: Setup, count: int, cpu: list[float] | None = None
          ) -> tuple[float, list[float]]:
    """As ``throughput``, with each build's request-to-claim time (ms) in that burst."""
    before = _cpu(setup)
    ids: list[int] = []
    lock = threading.Lock()

    def send(share: int) -> None:
        with httpx.Client(base_url=setup.url, timeout=60, headers=dict(setup.http.headers)
                          ) as client:
            for _ in range(share):
                build_id = setup.request(client)
                with lock:
                    ids.append(build_id)

    shares = [count // 4 + (1 if i < count % 4 else 0) for i in range(4)]
    threads = [threading.Thread(target=send, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    builds = setup.wait_done(ids)
    if cpu is not None:
        cpu.append((_cpu(setup) - before) * 1000 / count)
    start = min(_ts(b["requested_at"]) for b in builds)
    end = max(_ts(b["finished_at"]) for b in builds)
    waits = [(_ts(b["first_claimed_at"]) - _ts(b["requested_at"])) * 1000 for b in builds]
    return count / (end - start), waits


def latency(setup: Setup, count: int, rate: float) -> list[float]:
    """Request-to-claim times (ms) of ``count`` requests sent at ``rate`` per second."""
    ids = []
    next_at = time.monotonic()
    for _ in range(count):
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        ids.append(setup.request())
        next_at += 1.0 / rate
    builds = setup.wait_done(ids)
    return [(_ts(b["first_claimed_at"]) - _ts(b["requested_at"])) * 1000 for b in builds]


def _summary(values: list[float], digits: int = 2) -> dict[str, float]:
    return {"median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits)}


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def bench(kind: str, builds: int, runs: int, workers: int, samples: int,
          rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"farm-bench-{kind}-") as tmp:
        setup = Setup(kind, Path(tmp), workers)
        try:
            throughput(setup, 40)  # warm-up: mirrors cloned, connections pooled
            latency(setup, 10, rate)
            rates, p50s, p95s, all_latencies, cpu = [], [], [], [], []
            for _ in range(runs):
                rates.append(throughput(setup, builds, cpu))
                values = latency(setup, samples, rate)
                all_latencies += values
                p50s.append(_percentile(values, 50))
                p95s.append(_percentile(values, 95))
            return {
                "builds_per_s": _summary(rates),
                "claim_latency_ms_p50": _summary(p50s),
                "claim_latency_ms_p95": _summary(p95s),
                "claim_latency_ms_p95_all": round(_percentile(all_latencies, 95), 2),
                "farm_cpu_ms_per_build": _summary(cpu),
                "cpu_bound_builds_per_s": round(
                    (os.cpu_count() or 1) * 1000 / statistics.median(cpu), 1),
            }
        finally:
            setup.close()


def _side(rates: list[float], p50s: list[float], p95s: list[float], cpu: list[float]
          ) -> dict[str, Any]:
    return {"builds_per_s": _summary(rates), "start_latency_ms_p50": _summary(p50s),
            "start_latency_ms_p95": _summary(p95s), "farm_cpu_ms_per_build": _summary(cpu),
            "per_run_builds_per_s": [round(r, 3) for r in rates],
            "per_run_p95_ms": [round(v, 1) for v in p95s]}


def vs_buildbot(builds: int, runs: int, workers: int) -> dict[str, Any]:
    """Shipyard (SQLite) and Buildbot both up; ``runs`` bursts of ``builds`` on each after
    a warm-up, alternating which farm goes first; ratios pair by pair."""
    from peers.buildbot import BuildbotFarm

    warmup = 5 * workers  # every worker has cloned and built at least once
    figures: dict[str, dict[str, list[float]]] = {
        side: {"rates": [], "p50s": [], "p95s": [], "cpu": []}
        for side in ("shipyard", "buildbot")}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="farm-bench-vs-buildbot-") as tmp:
        setup: Setup | None = None
        peer: BuildbotFarm | None = None
        try:
            setup = Setup("sqlite", Path(tmp), workers)
            (Path(tmp) / "buildbot").mkdir()
            peer = BuildbotFarm(Path(tmp) / "buildbot", Path(tmp) / "src.git",
                                setup.commit, workers)
            burst(setup, warmup)
            peer.burst(warmup)
            for run in range(runs):
                order = ["shipyard", "buildbot"] if run % 2 == 0 else ["buildbot", "shipyard"]
                for side in order:
                    cpu = figures[side]["cpu"]
                    rate, waits = (burst(setup, builds, cpu) if side == "shipyard"
                                   else peer.burst(builds, cpu))
                    figures[side]["rates"].append(rate)
                    figures[side]["p50s"].append(_percentile(waits, 50))
                    figures[side]["p95s"].append(_percentile(waits, 95))
                loads.append(round(os.getloadavg()[0], 2))
        finally:
            if peer is not None:
                peer.close()
            if setup is not None:
                setup.close()
    ours, theirs = figures["shipyard"], figures["buildbot"]
    rate_ratio = _summary([a / b for a, b in zip(ours["rates"], theirs["rates"], strict=True)])
    p95_ratio = [a / b if b else float("inf")
                 for a, b in zip(ours["p95s"], theirs["p95s"], strict=True)]
    return {
        "builds": builds, "runs": runs, "workers": workers, "warmup_builds": warmup,
        "db": "sqlite",  # both farms
        "start_latency": {"shipyard": "first_claimed_at - requested_at",
                          "buildbot": "build started_at - buildrequest submitted_at "
                                      "(whole seconds)"},
        "shipyard": _side(ours["rates"], ours["p50s"], ours["p95s"], ours["cpu"]),
        "buildbot": _side(theirs["rates"], theirs["p50s"], theirs["p95s"], theirs["cpu"]),
        # Shipyard / Buildbot, run by run.
        "ratios": {"builds_per_s": rate_ratio, "start_latency_ms_p95": _summary(p95_ratio, 4)},
        "aim_throughput_ratio": 5,
        "met_throughput": rate_ratio["median"] >= 5,
        "met_p95": statistics.median(p95_ratio) < 1,
        "loadavg_per_run": loads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=500, help="builds per throughput run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--samples", type=int, default=100, help="latency requests per run")
    parser.add_argument("--rate", type=float, default=10.0, help="latency requests per s")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--peer", choices=["buildbot", "none"], default="buildbot")
    parser.add_argument("--peer-builds", type=int, default=200,
                        help="builds per burst in the comparison with the peer")
    args = parser.parse_args()
    # A TERM (timeout, CI) unwinds through the finally blocks that stop the farms.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result: dict[str, Any] = {
        "bench": "farm", "builds": args.builds, "runs": args.runs, "workers": args.workers,
        "latency_samples": args.samples, "latency_rate_per_s": args.rate, "peer": None,
    }
    if args.peer == "buildbot":
        from peers.buildbot import version

        result["peer"] = f"buildbot {version()}"
    result["machine"] = {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()[0]}
    for kind in args.db.split(","):
        result[kind] = bench(kind, args.builds, args.runs, args.workers, args.samples,
                             args.rate)
    if args.peer == "buildbot":
        result["vs_buildbot"] = vs_buildbot(args.peer_builds, args.runs, args.workers)
    result["machine"]["loadavg_after"] = os.getloadavg()[0]
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
