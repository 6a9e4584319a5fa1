"""Boot and shutdown of 200 instances: ``shipyard svc boot``/``shutdown`` vs supervisord.

Both start the same tiny long-running program (``sleep``) 200 times as the same service
user, with stdout and stderr captured to files, each process in its own group, and the same
notion of "started": the process must stay up for the start grace period
(``svc.start_grace`` = supervisord's ``startsecs``, 1 s, supervisord's default). Timed:

* shipyard: ``shipyard svc boot`` from exec to exit (it exits once every instance is
  confirmed running) and ``shipyard svc shutdown`` to exit (every instance stopped), the
  command line's own start-up included;
* supervisord (pip ``supervisor``, installed into ``bench/.peers/venv``): the daemon is
  already up with ``autostart=false``, then ``supervisorctl start all`` (returns once all are
  RUNNING) and ``supervisorctl stop all`` (returns once all are STOPPED).

Every run checks that 200 processes really run after the start and none after the stop.
One warm-up run, then ``--runs`` (default 5) measured runs, alternating which tool goes
first; medians, min and max, and the per-run ratio shipyard/supervisord. Prints one JSON
line. Run as root (the service user is created if missing):

    .venv/bin/python bench/boot.py [--instances 200] [--runs 5] [--grace 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / ".peers"
WORK = ROOT / "bench" / ".work"
SHIPYARD = [sys.executable, "-m", "shipyard.cli.main"]
SHIPYARD_SLEEP = "1000001"
SUPERVISOR_SLEEP = "1000002"
USER = "shipyard"


def _peer_venv() -> Path:
    venv = PEERS / "venv"
    if not (venv / "bin" / "supervisord").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "supervisor"],
                       check=True)
    return venv


def _count(argument: str) -> int:
    """Live (non-zombie) sleep processes with this argument."""
    count = 0
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        info = proc.info
        if info["name"] == "sleep" and info["status"] != psutil.STATUS_ZOMBIE \
                and (info["cmdline"] or [])[-1:] == [argument]:
            count += 1
    return count


def _wait_count(argument: str, expected: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _count(argument) != expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"expected {expected} 'sleep {argument}', "
                             f"have {_count(argument)}")
        time.sleep(0.05)


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if "ERROR" in proc.stdout:
        raise SystemExit(f"{' '.join(argv)} reported errors:\n{proc.stdout[-2000:]}")
    return took


class ShipyardSide:
    def __init__(self, work: Path, instances: int, grace: float) -> None:
        self.home = work / "shipyard"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        self.env.update(SHIPYARD_HOME=str(self.home), SHIPYARD_SVC_START_GRACE=str(grace),
                        SHIPYARD_SVC_USER=USER)
        source = work / "sleeper"
        source.mkdir(parents=True)
        (source / "shipyard.toml").write_text(
            '[package]\ngroup = "org.bench"\nid = "sleeper"\nversion = "1.0"\n\n'
            f'[service]\nexec = ["sleep", "{SHIPYARD_SLEEP}"]\n')
        self.run("pkg", "pack", str(source), "--out", str(work / "archives"))
        self.run("pkg", "install", str(work / "archives" / "sleeper-1.0.tar.gz"))
        # Registration is setup, not what is measured: write the registry files through
        # the registry's own API instead of 200 CLI calls.
        from shipyard.config import load_settings
        from shipyard.coords import PackageCoord, ServiceCoord
        from shipyard.svc import registry

        settings = load_settings(home=self.home, env={})
        package = PackageCoord.parse("org.bench:sleeper:1.0")
        for index in range(instances):
            registry.save(settings, registry.Registration(
                coordinate=ServiceCoord.parse(f"{index}.sleeper.bench.local"),
                package=package, user=USER))
        self.instances = instances
        # The service user as `svc start` would create it (as a system user), now: the
        # peer's config names it, and supervisord refuses to start with an unknown user.
        from shipyard.svc import users

        users.ensure(settings, USER)

    def run(self, *args: str) -> None:
        subprocess.run([*SHIPYARD, *args], env=self.env, check=True, capture_output=True)

    def start(self) -> float:
        took = _timed([*SHIPYARD, "svc", "boot"], self.env)
        _wait_count(SHIPYARD_SLEEP, self.instances, timeout=1)
        return took

    def stop(self) -> float:
        took = _timed([*SHIPYARD, "svc", "shutdown"], self.env)
        _wait_count(SHIPYARD_SLEEP, 0, timeout=1)
        return took

    def close(self) -> None:
        subprocess.run([*SHIPYARD, "svc", "shutdown"], env=self.env, capture_output=True)


class SupervisorSide:
    def __init__(self, work: Path, instances: int, grace: float) -> None:
        venv = _peer_venv()
        self.dir = work / "supervisor"
        (self.dir / "logs").mkdir(parents=True)
        self.conf = self.dir / "supervisord.conf"
        lines = [
            "[unix_http_server]", f"file={self.dir}/supervisor.sock", "",
            "[supervisord]", f"logfile={self.dir}/supervisord.log",
            f"pidfile={self.dir}/supervisord.pid", f"childlogdir={self.dir}/logs",
            "minfds=4096", "", "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "", "[supervisorctl]", f"serverurl=unix://{self.dir}/supervisor.sock", "",
        ]
        for index in range(instances):
            lines += [
                f"[program:sleeper{index}]", f"command=sleep {SUPERVISOR_SLEEP}",
                "autostart=false", "autorestart=false", f"startsecs={int(grace)}",
                f"user={USER}", "stopasgroup=true", "killasgroup=true", "stopwaitsecs=10",
                f"stdout_logfile={self.dir}/logs/sleeper{index}.out",
                f"stderr_logfile={self.dir}/logs/sleeper{index}.err", "",
            ]
        self.conf.write_text("\n".join(lines))
        self.bin = venv / "bin"
        self.env = dict(os.environ)
        subprocess.run([str(self.bin / "supervisord"), "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + 30
        while subprocess.run(self.ctl("pid"), capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("supervisord did not come up")
            time.sleep(0.1)
        self.instances = instances

    def ctl(self, *args: str) -> list[str]:
        return [str(self.bin / "supervisorctl"), "-c", str(self.conf), *args]

    def start(self) -> float:
        took = _timed(self.ctl("start", "all"), self.env)
        _wait_count(SUPERVISOR_SLEEP, self.instances, timeout=1)
        return took

    def stop(self) -> float:
        took = _timed(self.ctl("stop", "all"), self.env)
        _wait_count(SUPERVISOR_SLEEP, 0, timeout=1)
        return took

    def close(self) -> None:
        subprocess.run(self.ctl("shutdown"), capture_output=True)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def main() -> int:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed tool has its .pyc files
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--grace", type=int, default=1,
                        help="start grace = supervisord startsecs (whole seconds)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: both tools start the programs as a service user")
    work = WORK / f"boot-{os.getpid()}"
    work.mkdir(parents=True)
    os.chmod(work, 0o755)
    sides: dict[str, ShipyardSide | SupervisorSide] = {}
    load_before = os.getloadavg()[0]
    try:
        sides["shipyard"] = ShipyardSide(work, args.instances, args.grace)
        sides["supervisord"] = SupervisorSide(work, args.instances, args.grace)
        times: dict[str, dict[str, list[float]]] = {
            name: {"start": [], "stop": []} for name in sides}
        order = list(sides)
        for run in range(args.runs + 1):  # run 0 is the warm-up
            for name in order if run % 2 == 0 else list(reversed(order)):
                side = sides[name]
                start = side.start()
                stop = side.stop()
                if run > 0:
                    times[name]["start"].append(start)
                    times[name]["stop"].append(stop)
        ratios = {
            what: _summary([s / p for s, p in zip(times["shipyard"][what],
                                                   times["supervisord"][what], strict=True)])
            for what in ("start", "stop")
        }
        print(json.dumps({
            "bench": "boot",
            "instances": args.instances,
            "runs": args.runs,
            "start_grace_s": args.grace,
            "cpus": os.cpu_count(),
            "load_avg_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            "shipyard": {"boot_s": _summary(times["shipyard"]["start"]),
                         "shutdown_s": _summary(times["shipyard"]["stop"])},
            "supervisord": {"start_all_s": _summary(times["supervisord"]["start"]),
                            "stop_all_s": _summary(times["supervisord"]["stop"])},
            "ratio_shipyard_over_supervisord": {"boot": ratios["start"],
                                                "shutdown": ratios["stop"]},
        }, sort_keys=False))
    finally:
        for side in sides.values():
            side.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
