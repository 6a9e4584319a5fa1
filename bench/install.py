"""Benchmark: ``shipyard pkg install`` of a 5,000-file, ~50 MB package from a file://
repository, against ``tar -xzf`` of the same archive and ``pip install`` of a wheel holding
the same files, in one run.

Every figure is the wall time of the real command in a fresh target (a fresh
``SHIPYARD_HOME`` for the node, a fresh dir for tar, a fresh ``--target`` for pip), after a
warm-up, repeated (default 5) with the three tools interleaved so that machine noise hits
them alike. Before each timed run the previous outputs are removed and ``sync`` flushes the
page cache's dirty data, so no run pays for another's writeback. Shipyard's figure includes
its durability (``syncfs`` before the rename); ``tar+sync`` is reported for comparison.

    .venv/bin/python bench/install.py [--repeats 5] [--files 5000] [--mbytes 50] [--keep]

Prints one JSON line: medians, spreads (min/max) and per-run ratios.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SHIPYARD = [PYTHON, "-m", "shipyard.cli.main"]
GROUP, IDENT, VERSION = "org.bench", "payload", "1.0"


def make_tree(root: Path, files: int, mbytes: int, seed: int = 7) -> int:
    """A package tree: mostly small files, some medium, a few large; about 30 percent of
    the bytes are random (incompressible), the rest word soup (compressible)."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
             for _ in range(2000)]
    target = mbytes << 20
    sizes = []
    for _ in range(files - 1):
        draw = rng.random()
        if draw < 0.9:
            sizes.append(rng.randint(100, 12_000))
        elif draw < 0.995:
            sizes.append(rng.randint(12_000, 60_000))
        else:
            sizes.append(rng.randint(200_000, 400_000))
    scale = target / sum(sizes)
    sizes = [max(1, int(s * scale)) for s in sizes]
    root.mkdir(parents=True)
    (root / "shipyard.toml").write_text(
        f'[package]\ngroup = "{GROUP}"\nid = "{IDENT}"\nversion = "{VERSION}"\n'
        'summary = "install benchmark payload"\n')
    total = 0
    for index, size in enumerate(sizes):
        directory = root / f"d{index % 50:02d}" / f"s{index % 7}"
        directory.mkdir(parents=True, exist_ok=True)
        if rng.random() < 0.3:
            data = rng.randbytes(size)
        else:
            data = b" ".join(rng.choice(words) for _ in range(size // 6 + 1))[:size]
        (directory / f"f{index}.dat").write_bytes(data)
        total += len(data)
    return total


def make_wheel(tree: Path, out_dir: Path) -> Path:
    """A wheel holding the same files below ``bench_payload/`` (purelib), with a RECORD."""
    name = "bench_payload"
    dist_info = f"{name}-{VERSION}.dist-info"
    wheel = out_dir / f"{name}-{VERSION}-py3-none-any.whl"
    records = []

    def digest(data: bytes) -> str:
        raw = hashlib.sha256(data).digest()
        return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                arcname = f"{name}/{path.relative_to(tree).as_posix()}"
                data = path.read_bytes()
                archive.writestr(arcname, data)
                records.append(f"{arcname},{digest(data)},{len(data)}")
        meta = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {VERSION}\n",
            "WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\n"
                     "Tag: py3-none-any\n",
        }
        for file_name, text in meta.items():
            arcname = f"{dist_info}/{file_name}"
            archive.writestr(arcname, text)
            records.append(f"{arcname},{digest(text.encode())},{len(text)}")
        records.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return done


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    run(cmd, env)
    return time.perf_counter() - started


def clean(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    os.sync()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def main() -> None:
    # An installed tool has its .pyc files; a shell that forbids writing them would
    # charge every run for compiling Shipyard from source.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--mbytes", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-install-"))
    try:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        publisher = {**base_env, "SHIPYARD_HOME": str(work / "publisher")}
        tree = work / "tree"
        payload_bytes = make_tree(tree, args.files, args.mbytes)
        archive = Path(run([*SHIPYARD, "pkg", "pack", str(tree), "--out", str(work / "out")],
                           publisher).stdout.strip())
        repo = work / "repo"
        run([*SHIPYARD, "repo", "init", str(repo)], publisher)
        run([*SHIPYARD, "repo", "keygen", "--repo", str(repo)], publisher)
        run([*SHIPYARD, "repo", "upload", str(archive), "--repo", str(repo)], publisher)
        run([*SHIPYARD, "repo", "publish", "--repo", str(repo)], publisher)
        public_key = work / "publisher" / "state" / "keys" / "repository.key.pub"
        wheel = make_wheel(tree, work)

        node_home = work / "node"
        node_env = {**base_env, "SHIPYARD_HOME": str(node_home),
                    "SHIPYARD_REPO_URL": repo.as_uri(), "SHIPYARD_REPO_KEY": str(public_key)}
        tar_dir = work / "tar-out"
        pip_dir = work / "pip-out"
        coordinate = f"{GROUP}:{IDENT}:{VERSION}"

        def shipyard_once() -> float:
            clean(node_home)
            return timed([*SHIPYARD, "pkg", "install", coordinate], node_env)

        def tar_once(sync: bool = False) -> float:
            clean(tar_dir)
            tar_dir.mkdir()
            started = time.perf_counter()
            run(["tar", "-xzf", str(archive), "-C", str(tar_dir)])
            if sync:
                os.sync()
            return time.perf_counter() - started

        def pip_once() -> float:
            clean(pip_dir)
            return timed([PYTHON, "-m", "pip", "install", "--no-deps", "--no-index",
                          "--disable-pip-version-check", "--no-compile", "--quiet",
                          "--target", str(pip_dir), str(wheel)])

        # Warm-up (page cache, pyc files), and a check that the install is complete.
        shipyard_once()
        verify = run([*SHIPYARD, "pkg", "verify", coordinate, "--json"], node_env)
        assert json.loads(verify.stdout)[0]["ok"], verify.stdout
        tar_once()
        pip_once()

        figures: dict[str, list[float]] = {"shipyard": [], "tar": [], "tar_sync": [],
                                           "pip": []}
        for _ in range(args.repeats):
            figures["tar"].append(tar_once())
            figures["shipyard"].append(shipyard_once())
            figures["pip"].append(pip_once())
            figures["tar_sync"].append(tar_once(sync=True))
        vs_tar = [s / t for s, t in zip(figures["shipyard"], figures["tar"], strict=True)]
        vs_pip = [s / p for s, p in zip(figures["shipyard"], figures["pip"], strict=True)]
        # The aims are judged on the ratios taken run by run (each run's tools ran
        # back to back), not on the ratio of the medians.
        ratio_tar = statistics.median(vs_tar)
        ratio_pip = statistics.median(vs_pip)
        result = {
            "bench": "install",
            "files": args.files,
            "payload_bytes": payload_bytes,
            "archive_bytes": archive.stat().st_size,
            "wheel_bytes": wheel.stat().st_size,
            "repeats": args.repeats,
            "load_average": round(os.getloadavg()[0], 2),
            "seconds": {name: summary(values) for name, values in figures.items()},
            "shipyard_vs_tar": {k: round(v, 2) for k, v in summary(vs_tar).items()},
            "shipyard_vs_pip": {k: round(v, 2) for k, v in summary(vs_pip).items()},
            "aim": {"at_most_1.5x_tar": ratio_tar <= 1.5, "faster_than_pip": ratio_pip < 1},
        }
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    finally:
        if args.keep:
            sys.stderr.write(f"kept {work}\n")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
