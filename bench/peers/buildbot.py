"""Buildbot 4 as the farm benchmark's peer: a master and N workers on loopback.

Buildbot runs from a venv of its own (``bench/.peers/buildbot/venv``, created once and
reused; git ignores it) with ``buildbot``, ``buildbot-worker`` and ``buildbot-www``: the
REST API, through which builds are forced and read back, is served only when the
``buildbot-www`` plugin is installed (the master refuses to start its web server without
it).

The master (SQLite database, PB and web ports on free 127.0.0.1 ports, no usage reporting)
has one builder on all workers (``max_builds=1`` each, separate processes) with
``collapseRequests=False``: Buildbot merges pending requests for the same source by
default, which would finish 200 requests with far fewer builds. Its build matches the
Shipyard farm's trivial build step for step: check out the commit from a local bare git
repository (``steps.Git``, incremental), write ``out.txt`` and pack it as a ``.tar.gz``
(one ``ShellCommand``), upload the archive to the master (``FileUpload``).

Figures come from Buildbot's own records (REST API): a buildrequest's ``submitted_at``,
its build's ``started_at`` and ``complete_at``. Buildbot stores these as whole epoch
seconds, so each difference is good to about one second.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from peers import stop_groups

ROOT = Path(__file__).resolve().parent.parent.parent
PEER_DIR = ROOT / "bench" / ".peers" / "buildbot"
REQUIREMENTS = ["buildbot>=4,<5", "buildbot-worker>=4,<5", "buildbot-www>=4,<5"]
SUCCESS = 0  # buildbot.process.results.SUCCESS
BUILDER = "triv"
SCHEDULER = "force"
T = TypeVar("T")

# Read by the master from its basedir; parameters come from bench.json beside it so that
# this text needs no quoting.
MASTER_CFG = '''\
import json
import os

from buildbot.plugins import schedulers, steps, util, worker

p = json.load(open(os.path.join(basedir, "bench.json")))
c = BuildmasterConfig = {}
c["title"] = "bench"
c["buildbotURL"] = "http://127.0.0.1:%d/" % p["www_port"]
c["buildbotNetUsageData"] = None
c["db"] = {"db_url": p["db_url"]}
c["protocols"] = {"pb": {"port": "tcp:%d:interface=127.0.0.1" % p["pb_port"]}}
c["www"] = {"port": "tcp:%d:interface=127.0.0.1" % p["www_port"], "plugins": {}}
c["collapseRequests"] = False
c["workers"] = [worker.Worker(name, p["password"], max_builds=1) for name in p["workers"]]
factory = util.BuildFactory()
factory.addStep(steps.Git(repourl=p["repo"], mode="incremental", name="checkout"))
factory.addStep(steps.ShellCommand(name="build", command=[
    "sh", "-c", "rm -rf dest && mkdir dest && echo built > dest/out.txt"
    " && tar -czf triv-1.0.tar.gz -C dest ."]))
factory.addStep(steps.FileUpload(
    name="upload", workersrc="triv-1.0.tar.gz",
    masterdest=util.Interpolate("uploads/%(prop:buildnumber)s-triv-1.0.tar.gz")))
c["builders"] = [util.BuilderConfig(name=p["builder"], workernames=p["workers"],
                                    factory=factory, collapseRequests=False)]
c["schedulers"] = [schedulers.ForceScheduler(name=p["scheduler"],
                                             builderNames=[p["builder"]])]
'''


def _env() -> dict[str, str]:
    """The peer's processes run like an installed Buildbot: bytecode cached, own venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{PEER_DIR / 'venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def peer_venv() -> Path:
    """The Buildbot venv, created and filled on first use only (pip reached once)."""
    venv = PEER_DIR / "venv"
    stamp = venv / "bench-requirements.txt"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if not (stamp.exists() and stamp.read_text() == wanted):
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *REQUIREMENTS],
                       check=True)
        stamp.write_text(wanted)
    return venv


def version() -> str:
    venv = peer_venv()
    return subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import buildbot; print(buildbot.version)"], check=True,
                          capture_output=True, text=True, env=_env()).stdout.strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Callable[[], T | None], timeout: float, what: str,
          interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError, OSError):  # not up yet
            value = predicate()
            if value:
                return value
        time.sleep(interval)
    raise RuntimeError(f"buildbot: timed out waiting for {what}")


class BuildbotFarm:
    """A running Buildbot master with ``workers`` workers, building ``commit`` of ``repo``.

    Use as a context manager: every process is stopped (TERM, then KILL) on exit.
    """

    def __init__(self, workdir: Path, repo: Path, commit: str, workers: int = 4,
                 db_url: str = "sqlite:///state.sqlite") -> None:
        self.workdir = workdir
        self.db_url = db_url  # another database needs its driver in the peer venv
        self.commit = commit
        self.repo = repo
        self.venv = peer_venv()
        self.env = _env()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.master_dir = workdir / "master"
        self.worker_names = [f"bw{index}" for index in range(workers)]
        self.pb_port = _free_port()
        self.www_port = _free_port()
        self.url = f"http://127.0.0.1:{self.www_port}"
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self.builder_id = 0
        try:
            self._start_master()
            for name in self.worker_names:
                self._start_worker(name)
            _wait(self._all_connected, 120, "the workers to connect")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> BuildbotFarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def _run(self, *argv: str) -> None:
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}"
                               f"\n{proc.stderr[-2000:]}")

    def _spawn(self, argv: list[str], cwd: Path) -> None:
        with open(cwd / "console.log", "wb") as log:
            self.procs.append(subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def _start_master(self) -> None:
        self._run(self._bin("buildbot"), "create-master", "--quiet", "--relocatable",
                  "--db", self.db_url, str(self.master_dir))
        (self.master_dir / "bench.json").write_text(json.dumps({
            "db_url": self.db_url, "pb_port": self.pb_port,
            "www_port": self.www_port, "password": "bench", "workers": self.worker_names,
            "repo": str(self.repo), "builder": BUILDER, "scheduler": SCHEDULER}))
        (self.master_dir / "master.cfg").write_text(MASTER_CFG)
        self._spawn([self._bin("buildbot"), "start", "--nodaemon", str(self.master_dir)],
                    self.master_dir)

        def builder() -> int | None:
            self._check_alive()
            found = self.http.get("/api/v2/builders", params={"name": BUILDER}).json()
            return int(found["builders"][0]["builderid"]) if found["builders"] else None

        self.builder_id = _wait(builder, 120, "the master's REST API")

    def _start_worker(self, name: str) -> None:
        basedir = self.workdir / name
        self._run(self._bin("buildbot-worker"), "create-worker", "--quiet", "--relocatable",
                  str(basedir), f"127.0.0.1:{self.pb_port}", name, "bench")
        self._spawn([self._bin("buildbot-worker"), "start", "--nodaemon", str(basedir)],
                    basedir)

    def _all_connected(self) -> bool:
        self._check_alive()
        found = self.http.get("/api/v2/workers").json()["workers"]
        connected = {w["name"] for w in found if w.get("connected_to")}
        return connected == set(self.worker_names)

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                log = Path(str(proc.args[-1])) / "twistd.log"
                tail = log.read_text()[-3000:] if log.exists() else ""
                raise RuntimeError(f"buildbot process {proc.args} exited "
                                   f"({proc.returncode}):\n{tail}")

    def cpu_seconds(self) -> float:
        """CPU used so far by the master and the workers, with the processes they waited
        for (git, sh, tar)."""
        import psutil

        total = 0.0
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(proc.pid).cpu_times()
                total += times.user + times.system + times.children_user \
                    + times.children_system
        return total

    def force(self, client: httpx.Client) -> int:
        """Force one build through the ForceScheduler's JSON-RPC; its buildrequest id."""
        answer = client.post(f"/api/v2/forceschedulers/{SCHEDULER}", json={
            "jsonrpc": "2.0", "method": "force", "id": 1,
            "params": {"builderid": str(self.builder_id), "reason": "bench",
                       "revision": self.commit, "branch": "master",
                       "repository": str(self.repo), "project": ""}})
        answer.raise_for_status()
        body = answer.json()
        if "error" in body:
            raise RuntimeError(f"buildbot force failed: {body['error']}")
        # result: [buildset id, {builder id: buildrequest id}]
        return int(next(iter(body["result"][1].values())))

    def send(self, count: int, threads: int = 4) -> list[int]:
        """Force ``count`` builds at once from ``threads`` clients; the buildrequest ids."""
        ids: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def send(share: int) -> None:
            try:
                with httpx.Client(base_url=self.url, timeout=60) as client:
                    for _ in range(share):
                        brid = self.force(client)
                        with lock:
                            ids.append(brid)
            except BaseException as exc:  # reported by the caller's thread
                errors.append(exc)

        shares = [count // threads + (1 if i < count % threads else 0)
                  for i in range(threads)]
        workers = [threading.Thread(target=send, args=(share,)) for share in shares]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        if errors:
            raise errors[0]
        return ids

    def _list(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        answer = self.http.get(path, params=params)
        answer.raise_for_status()
        return list(answer.json()[key])

    def wait_done(self, brids: list[int], timeout: float = 1800
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Wait until every request is complete; their buildrequests and builds, checked:
        one build per request, every one SUCCESS, and one uploaded archive each."""
        low, high = min(brids), max(brids)
        span = {"buildrequestid__ge": low, "buildrequestid__le": high}

        def done() -> bool:
            self._check_alive()
            pending = self._list("/api/v2/buildrequests", "buildrequests",
                                 {**span, "complete": "false",
                                  "field": ["buildrequestid", "complete"]})
            return not pending

        _wait(done, timeout, f"{len(brids)} builds", interval=0.5)
        wanted = set(brids)
        requests = [r for r in self._list("/api/v2/buildrequests", "buildrequests", span)
                    if r["buildrequestid"] in wanted]
        builds = [b for b in self._list("/api/v2/builds", "builds", span)
                  if b["buildrequestid"] in wanted]
        failed = [r for r in requests if r["results"] != SUCCESS]
        failed += [b for b in builds if b["results"] != SUCCESS]
        if failed or len(requests) != len(brids) or len(builds) != len(brids):
            raise RuntimeError(f"buildbot: {len(requests)} requests, {len(builds)} builds "
                               f"for {len(brids)} forced; not successful: {failed[:2]}")
        uploads = self.master_dir / "uploads"
        names = {f"{b['number']}-triv-1.0.tar.gz" for b in builds}
        missing = names - {p.name for p in uploads.iterdir()}
        if missing:
            raise RuntimeError(f"buildbot: {len(missing)} archives were not uploaded")
        return requests, builds

    def burst(self, count: int, cpu: list[float] | None = None
              ) -> tuple[float, list[float]]:
        """Force ``count`` builds at once; builds/s = count / (first submitted -> last
        complete) and each build's request-to-start latency (ms), from Buildbot's data.
        Appends the master's and workers' CPU ms per build to ``cpu``."""
        before = self.cpu_seconds()
        requests, builds = self.wait_done(self.send(count))
        if cpu is not None:
            cpu.append((self.cpu_seconds() - before) * 1000 / count)
        submitted = {r["buildrequestid"]: r["submitted_at"] for r in requests}
        first = min(submitted.values())
        last = max(b["complete_at"] for b in builds)
        latencies = [(b["started_at"] - submitted[b["buildrequestid"]]) * 1000.0
                     for b in builds]
        # Whole seconds: a burst that ends within the second it began counts as 1 s.
        return count / max(last - first, 1), latencies

    def close(self) -> None:
        self.http.close()
        stop_groups(self.procs, 15)  # a master's clean shutdown may wait for its builds
        self.procs.clear()
