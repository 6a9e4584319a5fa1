"""kill -9 during install and uninstall: a package dir is complete with its record, or
absent; leftovers are swept by the next command; the next install succeeds."""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from pkgkit import make_source, pack

from conftest import Shipyard
from helpers import wait_until
from shipyard.config import load_settings
from shipyard.node import uninstall
from shipyard.pkg import store
from shipyard.pkg.extract import CHILD_MIN
from shipyard.pkg.verify import verify_record

ITERATIONS = 30
SEED = 20_261_122


def _files(count: int) -> dict[str, bytes]:
    """Incompressible files, so the archive is large enough (> extract.CHILD_MIN) for the
    helper writer process to be part of what gets killed."""
    return {f"d{i % 10}/f{i}.bin": os.urandom(20_000 + (i * 397) % 30_000) for i in range(count)}


@pytest.fixture
def archive(shipyard: Shipyard, tmp_path: Path) -> Path:
    src = make_source(tmp_path / "src", "kill", "1.0", files=_files(300))
    path = pack(shipyard, src, tmp_path / "out")
    assert path.stat().st_size >= CHILD_MIN
    return path


def _parent(shipyard: Shipyard) -> Path:
    return shipyard.home / "software" / "org" / "test" / "kill"


def _transients(shipyard: Shipyard) -> list[str]:
    parent = _parent(shipyard)
    if not parent.exists():
        return []
    return sorted(p.name for p in parent.iterdir() if store.TRANSIENT_RE.match(p.name))


def _assert_consistent(shipyard: Shipyard) -> None:
    """Every version dir present is complete: its record exists and every file verifies."""
    parent = _parent(shipyard)
    if not parent.exists():
        return
    for entry in parent.iterdir():
        if entry.name.startswith("."):
            assert store.TRANSIENT_RE.match(entry.name), entry.name
            continue
        record = store.read_record(entry)
        assert record is not None, f"{entry} has no install record"
        report = verify_record(record)
        assert report.ok, report.to_dict()


def _kill_at(proc: subprocess.Popen, delay: float) -> None:
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.kill()
    proc.wait()


def test_kill_during_install_and_uninstall(shipyard: Shipyard, archive: Path) -> None:
    settings = load_settings(home=shipyard.home, env={})
    started = time.monotonic()
    shipyard.run("pkg", "install", str(archive))
    full = time.monotonic() - started
    rng = random.Random(SEED)
    seen = {"install": 0, "uninstall": 0, "transient": 0, "recovered": 0}
    for iteration in range(ITERATIONS):
        # Alternate the verb so both are killed often whatever the machine's speed; each
        # killed command starts from whatever the previous one left, complete or not.
        verb = "uninstall" if iteration % 2 else "install"
        if verb == "uninstall" and not (_parent(shipyard) / "1.0").exists():
            shipyard.run("pkg", "install", str(archive))
        target = "org.test:kill:1.0" if verb == "uninstall" else str(archive)
        proc = shipyard.popen("pkg", verb, target, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        if verb == "install" and iteration % 4 == 0:
            # Anchor every other install's kill to its staging dir appearing, so kills land
            # mid-extraction however fast this machine is compared to the first install.
            wait_until(lambda p=proc: p.poll() is not None or any(
                ".staging-" in n for n in _transients(shipyard)), timeout=60, interval=0.001,
                what="the install to start staging")
            _kill_at(proc, rng.uniform(0.0, 0.3 * full))
        else:
            _kill_at(proc, rng.uniform(0.3 * full, 1.1 * full))
        seen[verb] += 1
        seen["transient"] += bool(_transients(shipyard))
        _assert_consistent(shipyard)
        if iteration % 3 != 2:
            continue  # the next killed command starts from whatever this one left
        result = shipyard.run("pkg", "install", str(archive))
        assert "org.test:kill:1.0" in result.stdout
        assert _transients(shipyard) == [], "the next command sweeps leftovers"
        _assert_consistent(shipyard)
        assert (_parent(shipyard) / "1.0" / ".shipyard" / "installed.json").exists()
        seen["recovered"] += 1
        if rng.random() < 0.5:
            uninstall(settings, "org.test:kill:1.0")
    assert seen["install"] >= 5 and seen["uninstall"] >= 5, seen
    assert seen["transient"] >= 1, f"no kill landed mid-operation: {seen}"
    assert seen["recovered"] == ITERATIONS // 3


def test_kill_while_staging_then_sweep(shipyard: Shipyard, archive: Path) -> None:
    proc = shipyard.popen("pkg", "install", str(archive), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(".staging-" in n for n in _transients(shipyard)) or
                   proc.poll() is not None, timeout=60, interval=0.001,
                   message="a staging dir")
    finally:
        proc.kill()
        proc.wait()
    assert not (_parent(shipyard) / "1.0").exists() or proc.returncode == 0
    _assert_consistent(shipyard)
    shipyard.run("pkg", "install", str(archive))
    assert _transients(shipyard) == []
    assert shipyard.run("pkg", "verify").returncode == 0


def test_kill_while_tombstoned_then_sweep(shipyard: Shipyard, archive: Path) -> None:
    shipyard.run("pkg", "install", str(archive))
    proc = shipyard.popen("pkg", "uninstall", "org.test:kill:1.0",
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(".tombstone-" in n for n in _transients(shipyard)) or
                   proc.poll() is not None, timeout=60, interval=0.001,
                   message="a tombstone")
    finally:
        proc.kill()
        proc.wait()
    assert not (_parent(shipyard) / "1.0").exists()
    _assert_consistent(shipyard)
    result = shipyard.run("pkg", "install", str(archive))
    assert "installed org.test:kill:1.0" in result.stdout
    assert _transients(shipyard) == []
