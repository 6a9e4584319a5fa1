"""Links at scale: 30 acceptors x 30 announcers (900 pairs) with trivial adapters.

Measures, through the real CLI (``shipyard link reconcile --json``):

* the first reconcile, which links all 900 pairs;
* a no-op reconcile right after it (nothing changed): the aim is no accept adapter started
  and under 1 s of wall time, Python start-up included;

and, as the peer, the seed's dispatcher taken literally ("run every server adapter with
every transport's data"): each announce adapter once, then every accept adapter, on every
run. It keeps no state, so its no-op run costs the same as its first run.

Every measurement is repeated (fresh home each time) after one warm-up; the JSON line gives
median, min and max, and the speed-up of our no-op over the peer's, computed per repetition.

    .venv/bin/python bench/links.py [--repeats 5] [--size 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shipyard.config import load_settings
from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.svc import registry
from shipyard.svc.registry import Registration

GROUP = "org.bench.links"
ANNOUNCE = """#!/bin/sh
for flag in "$@"; do sed -n "s/^${flag#--} = //p" "$SHIPYARD_LINK_CONFIG"; done
"""
ACCEPT = """#!/bin/sh
echo "$SHIPYARD_COORDINATE $1" >> "$SHIPYARD_PACKAGE_DIR/../../../../../../accept-calls"
"""
CLI = [sys.executable, "-m", "shipyard.cli.main"]


def write_package(software: Path, ident: str, body: str, adapter: str, script: str) -> Path:
    root = PackageCoord(GROUP, ident, "1.0").install_path(software)
    (root / "link.d").mkdir(parents=True)
    (root / "shipyard.toml").write_text(
        f'[package]\ngroup = "{GROUP}"\nid = "{ident}"\nversion = "1.0"\n\n{body}')
    path = root / "link.d" / adapter
    path.write_text(script)
    path.chmod(0o755)
    return root


def build(home: Path, size: int) -> None:
    settings = load_settings(home=home, env={})
    user = __import__("pwd").getpwuid(os.geteuid()).pw_name
    write_package(settings.software_root, "server", (
        '[[link.accept]]\ninterface = "chat"\nadapter = "link.d/accept"\n'), "accept", ACCEPT)
    for i in range(size):
        write_package(settings.software_root, f"t{i}", (
            '[[link.announce]]\ninterface = "chat"\nadapter = "link.d/announce"\n'
            f'generate = {{ port = {4000 + i}, hostname_prefix = "t{i}", '
            'password = "random" }\n'), "announce", ANNOUNCE)
        registry.save(settings, Registration(ServiceCoord.parse(f"1.t{i}.bench.local"),
                                             PackageCoord(GROUP, f"t{i}", "1.0"), user))
        registry.save(settings, Registration(ServiceCoord.parse(f"{i}.srv.bench.local"),
                                             PackageCoord(GROUP, "server", "1.0"), user))


def reconcile(home: Path) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_HOME=str(home), SHIPYARD_LINK_FQDN="bench.example.org")
    started = time.perf_counter()
    proc = subprocess.run([*CLI, "link", "reconcile", "--json"], capture_output=True,
                          text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"reconcile failed: {proc.stderr}")
    return seconds, json.loads(proc.stdout)


def peer_dispatch(home: Path, size: int) -> float:
    """The literal seed dispatcher: ask every transport, then run every server adapter."""
    settings = load_settings(home=home, env={})
    software, runtime = settings.software_root, settings.runtime_root
    server_dir = PackageCoord(GROUP, "server", "1.0").install_path(software)
    started = time.perf_counter()
    announced = []
    for i in range(size):
        coordinate = f"1.t{i}.bench.local"
        package = PackageCoord(GROUP, f"t{i}", "1.0").install_path(software)
        env = {"PATH": os.environ["PATH"], "SHIPYARD_RUNTIME_DIR": str(runtime / coordinate),
               "SHIPYARD_LINK_CONFIG": str(runtime / coordinate / "etc" / "link-chat.ini")}
        out = subprocess.run([str(package / "link.d" / "announce"), "--host", "--port",
                              "--password"], capture_output=True, text=True, env=env,
                             check=True).stdout.splitlines()
        announced.append(out)
    for j in range(size):
        coordinate = f"{j}.srv.bench.local"
        env = {"PATH": os.environ["PATH"], "SHIPYARD_COORDINATE": coordinate,
               "SHIPYARD_RUNTIME_DIR": str(runtime / coordinate),
               "SHIPYARD_PACKAGE_DIR": str(server_dir)}
        for host, port, password in announced:
            subprocess.run([str(server_dir / "link.d" / "accept"), f"--host={host}",
                            f"--port={port}", f"--password={password}"], env=env, check=True,
                           capture_output=True)
    return time.perf_counter() - started


def one_round(size: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="shipyard-bench-links-"))
    try:
        build(home, size)
        first_s, first = reconcile(home)
        assert first["counts"] == {"applied": size * size}, first["counts"]
        calls = home / "accept-calls"
        before = len(calls.read_text().splitlines())
        noop_s, noop = reconcile(home)
        assert len(calls.read_text().splitlines()) == before
        peer_s = peer_dispatch(home, size)
        return {
            "first_s": first_s, "first_accept_runs": first["accept_runs"],
            "first_announce_runs": first["announce_runs"],
            "noop_s": noop_s, "noop_engine_s": noop["seconds"],
            "noop_accept_runs": noop["accept_runs"], "noop_announce_runs": noop["announce_runs"],
            "peer_s": peer_s,
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed tool has its .pyc files
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=30)
    args = parser.parse_args()
    one_round(args.size)  # warm-up: page cache, .pyc files
    rounds = [one_round(args.size) for _ in range(args.repeats)]
    result = {
        "bench": "links",
        "pairs": args.size * args.size,
        "repeats": args.repeats,
        "first_reconcile_s": summary([r["first_s"] for r in rounds]),
        "first_accept_runs": max(r["first_accept_runs"] for r in rounds),
        "first_announce_runs": max(r["first_announce_runs"] for r in rounds),
        "noop_reconcile_s": summary([r["noop_s"] for r in rounds]),
        "noop_engine_s": summary([r["noop_engine_s"] for r in rounds]),
        "noop_accept_runs": max(r["noop_accept_runs"] for r in rounds),
        "noop_announce_runs": max(r["noop_announce_runs"] for r in rounds),
        "peer_literal_dispatch_s": summary([r["peer_s"] for r in rounds]),
        "peer_spawns_per_run": args.size + args.size * args.size,
        "noop_speedup_vs_peer": summary([r["peer_s"] / r["noop_s"] for r in rounds]),
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
