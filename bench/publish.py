"""The publisher run at 1,000 and 10,000 packages in three channels.

Measures, through the real CLI (``shipyard repo publish --json``, Python start-up and
database open included, as cron runs it):

* **full**: the first publication of a repository whose accepted queue holds all N
  packages (every archive checked, hashed, linked into the pool and recorded; all three
  channels rendered, signed, flipped);
* **one_upload**: a publication after one new upload into the largest channel (``stable``,
  ~60 % of the packages): one index rendered, two linked, release signed, flipped
  (``one_upload_engine``: the same run's own ``seconds``, from opening the repository to
  the end, without Python start-up and imports);
* **noop**: a run with nothing to do (the fixed cost: start-up, lock, recovery, activity);
* **republish_all**: ``--all``, every channel's index re-rendered from the database (what a
  publisher without dirty tracking does on every run: the in-run reference for
  one_upload).

Aim (issue 2): one_upload under 1 s at 10,000 packages and at most 1.5 x its time at 1,000.

The peer, measured in the same run on the same packages built as ``.deb`` files: Debian's
``apt-ftparchive`` (apt-utils) generating ``Packages`` per channel with its hash cache
database and a ``Release`` over them, the core of an apt archive publisher (unsigned, no
atomic switch, no hooks: it does less than a Shipyard run). Skipped when not installed.

Each figure is the median of ``--repeats`` runs after one warm-up, with min and max. The
full publish needs a fresh repository per run, so its queue is written directly in the
format ``repo upload`` writes (one ``incoming/<name>/`` per archive with ``upload.json``),
hard-linking pre-built archives, to keep the set-up out of the measurement.

    .venv/bin/python bench/publish.py [--repeats 5] [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from shipyard.config import load_settings
from shipyard.repo.keys import keygen
from shipyard.repo.layout import init_repository
from shipyard.repo.upload import upload

CLI = [sys.executable, "-m", "shipyard.cli.main"]
CHANNELS = {"stable": 1, "testing": 1, "security": 0}
SHARES = (("stable", 0.6), ("testing", 0.3), ("security", 0.1))
GROUP = "org.bench.publish"
VERSIONS_PER_ID = 4


def make_archive(out: Path, ident: str, version: str) -> Path:
    """A minimal valid package: shipyard.toml and one file, reproducible bytes."""
    manifest = (f'[package]\ngroup = "{GROUP}"\nid = "{ident}"\nversion = "{version}"\n'
                f'summary = "bench package {ident} {version}"\n'
                'maintainer = "Bench <bench@example.org>"\n'
                f'requires = ["{GROUP}:base:>=1.0"]\n').encode()
    payload = f"{ident} {version}\n".encode() * 8
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("shipyard.toml", manifest), ("README", payload)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    path = out / f"{ident}-{version}.tar.gz"
    path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return path


def build_archives(work: Path, size: int) -> list[tuple[Path, str]]:
    """``size`` archives with their channel (seeded), built once per size."""
    store = work / f"archives-{size}"
    rng = random.Random(size)
    plan = []
    for n in range(size):
        ident, version = f"pkg{n // VERSIONS_PER_ID:05d}", f"1.{n % VERSIONS_PER_ID}.0"
        pick = rng.random()
        channel = "security"
        for name, share in SHARES:
            if pick < share:
                channel = name
                break
            pick -= share
        plan.append((ident, version, channel))
    if not store.exists():
        tmp = work / f".archives-{size}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for ident, version, _ in plan:
            make_archive(tmp, ident, version)
        tmp.rename(store)
    return [(store / f"{i}-{v}.tar.gz", ch) for i, v, ch in plan]


# -- the peer: apt-ftparchive over the same packages as .deb files ---------------------------


def _ar_member(name: str, data: bytes) -> bytes:
    header = (f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n").encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def _targz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def make_deb(out: Path, ident: str, version: str) -> Path:
    """The same package as a minimal .deb (ar: debian-binary, control, data)."""
    control = (f"Package: {ident}\nVersion: {version}\nArchitecture: all\n"
               "Maintainer: Bench <bench@example.org>\nDepends: base (>= 1.0)\n"
               f"Description: bench package {ident} {version}\n").encode()
    data = {f"./usr/share/doc/{ident}/README": f"{ident} {version}\n".encode() * 8}
    body = (b"!<arch>\n" + _ar_member("debian-binary", b"2.0\n")
            + _ar_member("control.tar.gz", _targz({"./control": control}))
            + _ar_member("data.tar.gz", _targz(data)))
    path = out / f"{ident}_{version}_all.deb"
    path.write_bytes(body)
    return path


def apt_publish(root: Path, channels: list[str]) -> float:
    """What an apt archive publisher runs: Packages per channel (hashes cached in a
    database), then a Release over them. Unsigned, so it does less than we do."""
    started = time.perf_counter()
    for channel in channels:
        target = root / "dists" / channel
        target.mkdir(parents=True, exist_ok=True)
        with open(target / "Packages", "wb") as out:
            subprocess.run(["apt-ftparchive", "--db", str(root / "cache.db"), "packages",
                            f"pool/{channel}"], cwd=root, stdout=out, check=True,
                           stderr=subprocess.DEVNULL)
    with open(root / "Release.tmp", "wb") as out:
        subprocess.run(["apt-ftparchive", "release", "dists"], cwd=root, stdout=out,
                       check=True)
    os.replace(root / "Release.tmp", root / "dists" / "Release")
    return time.perf_counter() - started


def bench_peer(work: Path, size: int, archives: list[tuple[Path, str]], repeats: int
               ) -> dict[str, object]:
    if shutil.which("apt-ftparchive") is None:
        return {"skipped": "apt-ftparchive not installed (apt-get install apt-utils)"}
    store = work / f"debs-{size}"
    if not store.exists():
        tmp = work / f".debs-{size}"
        shutil.rmtree(tmp, ignore_errors=True)
        for archive, channel in archives:
            ident, _, rest = archive.name.partition("-")
            (tmp / channel).mkdir(parents=True, exist_ok=True)
            make_deb(tmp / channel, ident, rest[: -len(".tar.gz")])
        tmp.rename(store)
    channels = [name for name, _ in SHARES]
    full: list[float] = []
    root = work / f"apt-{size}"
    for attempt in range(repeats + 1):
        shutil.rmtree(root, ignore_errors=True)
        for channel in channels:
            (root / "pool" / channel).mkdir(parents=True)
            for deb in (store / channel).iterdir():
                os.link(deb, root / "pool" / channel / deb.name)
        seconds = apt_publish(root, channels)
        if attempt:
            full.append(seconds)
    one: list[float] = []
    for attempt in range(repeats + 1):
        make_deb(root / "pool" / "stable", "extra", f"{attempt}.0")
        seconds = apt_publish(root, ["stable"])
        if attempt:
            one.append(seconds)
    return {"tool": "apt-ftparchive (hash cache db, unsigned)", "full": summary(full),
            "one_upload": summary(one)}


def fresh_repo(work: Path, name: str, key: Path) -> Path:
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    init_repository(root, CHANNELS, signing_key=key)
    return root


def fill_queue(root: Path, archives: list[tuple[Path, str]]) -> None:
    incoming = root / "incoming"
    for n, (archive, channel) in enumerate(archives):
        entry = incoming / f"20260101T000000{n:06d}-bench"
        entry.mkdir()
        os.link(archive, entry / archive.name)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        (entry / "upload.json").write_text(json.dumps({
            "channel": channel, "sha256": digest, "size": archive.stat().st_size}))


CPU: dict[str, list[float]] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_publish(home: Path, root: Path, *extra: str, label: str = "") -> tuple[float, dict]:
    """Wall seconds of one CLI run; its CPU seconds go to ``CPU[label]`` (the machine may
    be shared: CPU time shows what the run itself costs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    cpu = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run([*CLI, "repo", "publish", "--repo", str(root), "--json", *extra],
                          capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if label:
        CPU.setdefault(label, []).append(_children_cpu() - cpu)
    if proc.returncode != 0:
        raise SystemExit(f"publish failed: {proc.stderr.strip()}")
    return seconds, json.loads(proc.stdout)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "runs": len(values)}


def bench_full(work: Path, home: Path, key: Path, size: int, repeats: int
               ) -> tuple[Path, list[float]]:
    """Fresh repositories with a queue of ``size`` uploads; the last one stays for the
    incremental figures."""
    archives = build_archives(work, size)
    full: list[float] = []
    root = work / f"repo-{size}"
    for attempt in range(repeats + 1):  # the first is the warm-up
        root = fresh_repo(work, f"repo-{size}", key)
        fill_queue(root, archives)
        seconds, result = run_publish(home, root, label=f"full-{size}" if attempt else "")
        assert len(result["accepted"]) == size, result["message"]
        if attempt:
            full.append(seconds)
    return root, full


def bench_incremental(work: Path, home: Path, roots: dict[int, Path], repeats: int
                      ) -> dict[int, dict[str, list[float]]]:
    """one upload, no-op and --all, the sizes interleaved run by run so that a machine
    whose load changes over minutes weighs on every size alike (the ratio is an aim)."""
    settings = load_settings(home=home, env={})
    figures: dict[int, dict[str, list[float]]] = {
        size: {"one": [], "engine": [], "noop": [], "all": []} for size in roots}
    for attempt in range(repeats + 1):
        for size, root in roots.items():
            label = f"-{size}" if attempt else ""
            extra_dir = work / f"extra-{size}"
            extra_dir.mkdir(exist_ok=True)
            archive = make_archive(extra_dir, "extra", f"{attempt}.{time.time_ns()}")
            upload(settings, root, archive, "stable")
            seconds, result = run_publish(home, root, label="one" + label if label else "")
            assert [p["channels"] for p in result["passes"]] == [["stable"]], result["message"]
            noop, _ = run_publish(home, root, label="noop" + label if label else "")
            everything, _ = run_publish(home, root, "--all")
            if attempt:
                figures[size]["one"].append(seconds)
                figures[size]["engine"].append(result["seconds"])
                figures[size]["noop"].append(noop)
                figures[size]["all"].append(everything)
    return figures


def bench_size(work: Path, size: int, full: list[float], figures: dict[str, list[float]],
               repeats: int) -> dict[str, object]:
    archives = build_archives(work, size)
    stable = sum(1 for _, ch in archives if ch == "stable") + repeats + 1
    peer = bench_peer(work, size, archives, repeats)
    line: dict[str, object] = {
        "packages": size, "stable_packages": stable, "full": summary(full),
        "one_upload": summary(figures["one"]), "one_upload_engine": summary(figures["engine"]),
        "noop": summary(figures["noop"]), "republish_all": summary(figures["all"]),
        "peer": peer,
        "cpu_seconds": {"full": summary(CPU[f"full-{size}"]),
                        "one_upload": summary(CPU[f"one-{size}"]),
                        "noop": summary(CPU[f"noop-{size}"])}}
    if isinstance(peer.get("one_upload"), dict):
        line["one_upload_vs_peer"] = round(
            summary(figures["one"])["median"]
            / peer["one_upload"]["median"], 3)  # type: ignore[index]
    return line


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed tool has its .pyc files
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--work", default=None, help="work dir (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="shipyard-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    key = work / "keys" / "repository.key"
    if not key.exists():
        keygen(key)
    results = {}
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        roots, fulls = {}, {}
        for size in sizes:
            roots[size], fulls[size] = bench_full(work, home, key, size, args.repeats)
        figures = bench_incremental(work, home, roots, args.repeats)
        for size in sizes:
            results[str(size)] = bench_size(work, size, fulls[size], figures[size],
                                            args.repeats)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    line: dict[str, object] = {"bench": "publish", "repeats": args.repeats, "results": results}
    if len(sizes) >= 2:
        small, large = sorted(sizes)[0], sorted(sizes)[-1]
        pairs = [a / b for a, b in zip(figures[large]["one"], figures[small]["one"],
                                       strict=True)]
        line["one_upload_ratio_large_to_small"] = summary(pairs)
        line["aim_one_upload_under_1s"] = statistics.median(figures[large]["one"]) < 1.0
        line["aim_ratio_at_most_1_5"] = statistics.median(pairs) <= 1.5
    print(json.dumps(line, sort_keys=True))


if __name__ == "__main__":
    main()
