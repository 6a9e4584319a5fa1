"""Faults: the publisher killed with SIGKILL at random moments, and a reader over HTTP racing
a loop of publications. Neither may ever see an incomplete or unverifiable release."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

from repo_helpers import RepoUnderTest, coords, make_repo, wait_until

from conftest import Shipyard
from kit.repository import served
from shipyard.config import load_settings
from shipyard.errors import ShipyardError, VerificationError
from shipyard.formats.signing import load_public_key
from shipyard.pkg.client import RepositoryClient
from shipyard.repo.publish import publish
from shipyard.repo.upload import upload

# 30 kills on SQLite; 15 on PostgreSQL, where the files behave the same and what differs
# (transactions, the recovery of "building" publications) shows up within fewer kills.
KILL_ITERATIONS = {"sqlite": 30, "postgresql": 15}


def _settings(repo: RepoUnderTest):  # type: ignore[no-untyped-def]
    return load_settings(home=repo.shipyard.home, env={})


def _assert_clean(repo: RepoUnderTest) -> None:
    """After a successful run nothing of a dead run is left."""
    current = repo.current_serial()
    assert current is not None
    leftovers = [p.name for p in (repo.root / "generations").iterdir()
                 if p.name.startswith(".") or int(p.name) > current]
    assert leftovers == []
    assert list(repo.root.glob(".current.*")) == []
    queue = [p.name for p in (repo.root / "incoming").iterdir()
             if p.name != "rejected" and not p.name.startswith(".tmp-")]
    assert queue == []
    assert list((repo.root / "incoming" / "rejected").iterdir()) == []


def test_kill_9_during_publish(shipyard: Shipyard, tmp_path: Path, db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    marker = tmp_path / "pre-hook-ran"
    go = tmp_path / "go"
    go.touch()
    # The hook says it runs, then holds while "go" is missing (bounded: 2 s at most, so a
    # hook orphaned by the kill ends by itself).
    repo.hook("pre", "10-mark", f"""#!/bin/sh
echo "$1 $SHIPYARD_SERIAL" >> "{marker}"
i=0
while [ ! -e "{go}" ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i + 1)); done
""")
    repo.hook("post", "10-noop", "#!/bin/sh\nexit 0\n")
    settings = _settings(repo)
    rng = random.Random(20261122)
    expected: dict[str, set[str]] = {"stable": set(), "security": set()}

    def add_upload(n: int) -> None:
        channel = rng.choice(["stable", "stable", "security"])
        coord = upload(settings, repo.root, repo.archive(f"pkg{n % 7}", f"1.{n}"), channel)
        expected[channel].add(str(coord))

    add_upload(0)
    started = time.monotonic()
    repo.publish()
    duration = time.monotonic() - started
    kills = {"held": 0, "marker": 0, "timer": 0, "finished": 0}
    recovered: list[str] = []
    iterations = KILL_ITERATIONS["sqlite" if db_url.startswith("sqlite") else "postgresql"]
    for n in range(1, iterations + 1):
        for extra in range(rng.choice([1, 1, 2, 3])):
            add_upload(n * 10 + extra)
        marker.unlink(missing_ok=True)
        pick = rng.random()
        if pick < 0.2:
            go.unlink()
        proc = shipyard.popen("repo", "publish", "--repo", str(repo.root),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if pick < 0.5:
                wait_until(lambda p=proc: marker.exists() or p.poll() is not None, timeout=60,
                           interval=0.002, what="the pre-publication hook")
                if pick < 0.2:
                    # Kill while the hook holds: a complete generation that is not current.
                    kind = "held"
                else:
                    # Kill around the end of the hook, the flip, post hooks and the prune.
                    time.sleep(rng.uniform(0, 0.03))
                    kind = "marker"
            else:
                # Kill anywhere: start-up, recovery, queue processing, rendering.
                time.sleep(rng.uniform(0.2 * duration, 1.1 * duration))
                kind = "timer"
            if proc.poll() is None:
                proc.kill()
                kills[kind] += 1
            else:
                kills["finished"] += 1
        finally:
            proc.wait(timeout=60)
            go.touch()

        # A reader of `current` sees a complete, signed, hash-consistent generation.
        release, _indexes = repo.verify_current()
        assert os.readlink(repo.root / "current") == f"generations/{release.serial}"

        # The next run recovers and publishes everything that was uploaded so far.
        result = publish(settings, repo.root)
        recovered += result.recovered
        _assert_clean(repo)
        release, indexes = repo.verify_current()
        assert result.serial == release.serial
        for channel, wanted in expected.items():
            assert coords(indexes[channel]) == wanted, (n, channel)

    assert kills["held"] >= 1 and kills["held"] + kills["marker"] + kills["timer"] >= (
        iterations // 2), kills
    # Some kills landed mid-pass and left work for recovery (an unfinished generation).
    assert any("unfinished generation" in note for note in recovered), (kills, recovered)
    final = repo.publish()
    assert final.returncode == 0
    rows = json.loads(repo.run("activity", "--json", "--limit", "200").stdout)
    interrupted = [r for r in rows if r["message"].startswith("interrupted")]
    assert rows[0]["status"] == "success"
    assert all(r["status"] in ("success", "failure") for r in rows)  # none left "running"
    assert interrupted  # at least some kills landed after the activity row was written


def test_http_reader_races_publications(shipyard: Shipyard, tmp_path: Path,
                                        db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    settings = _settings(repo)
    upload(settings, repo.root, repo.archive("seed", "1.0"), "stable")
    repo.publish()
    stop = threading.Event()
    seen: list[int] = []
    failures: list[str] = []
    key = load_public_key(repo.public_key)

    def reader() -> None:
        state = tmp_path / "reader-state"
        state.mkdir()
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            for channel in ("stable", "security"):
                try:
                    with RepositoryClient(url, keys=[key], channel=channel,
                                          state_dir=state) as client:
                        index = client.index()
                        seen.append(client.release().serial)
                        assert index.channel == channel
                except VerificationError as exc:
                    failures.append(exc.message)
                except ShipyardError as exc:  # e.g. a connection reset: not a verification
                    failures.append(f"unexpected: {exc.message}")

    with served(repo.root, tmp_path) as url:
        try:
            thread = threading.Thread(target=reader, daemon=True)
            thread.start()
            rng = random.Random(7)
            for n in range(8):
                channel = rng.choice(["stable", "security"])
                upload(settings, repo.root, repo.archive(f"web{n}", "1.0"), channel)
                repo.publish()
            wait_until(lambda: len(set(seen)) >= 3 or failures, timeout=60,
                       what="the reader to see several generations")
            stop.set()
            thread.join(timeout=60)
        finally:
            stop.set()
    assert failures == []
    assert len(seen) >= 10
    assert seen == sorted(seen)  # serials only move forward for one reader
    assert len(set(seen)) >= 3


def test_recovery_after_death_in_a_hook_and_after_the_flip(shipyard: Shipyard, tmp_path: Path,
                                                          db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    repo.upload(repo.archive("hello", "1.0"))
    repo.publish()
    good = repo.current_serial()
    # The publisher dies while its pre-publication hook runs (the hook kills it).
    hook = repo.hook("pre", "10-die", "#!/bin/sh\nkill -9 $PPID\nsleep 5\n")
    repo.upload(repo.archive("hello", "1.1"))
    died = repo.publish(check=False)
    assert died.returncode == -9
    assert repo.current_serial() == good
    assert (repo.root / "generations" / str(good + 1)).is_dir()  # the unfinished tree
    hook.unlink()
    result = repo.publish_json()
    assert f"removed unfinished generation {good + 1}" in result["recovered"]
    assert [p["serial"] for p in result["passes"]] == [good + 2]
    assert not (repo.root / "generations" / str(good + 1)).exists()
    _release, indexes = repo.verify_current()
    assert coords(indexes["stable"]) == {"org.example:hello:1.0", "org.example:hello:1.1"}
    rows = json.loads(repo.run("activity", "--json").stdout)
    assert rows[1]["status"] == "failure" and rows[1]["message"].startswith("interrupted")

    # A run that died right after the flip, before recording it: the database still says
    # "building" and the channel dirty. Recovery records the publication as it stands.
    from sqlalchemy import text

    from shipyard.repo.store import RepoStore

    flipped = repo.current_serial()
    with RepoStore(db_url).engine.begin() as conn:
        conn.execute(text("UPDATE repo_publication SET status = 'building' WHERE serial = :s"),
                     {"s": flipped})
        conn.execute(text("UPDATE repo_channel SET published_seq = published_seq - 1 "
                          "WHERE name = 'stable'"))
    result = repo.publish_json()
    assert any(f"generation {flipped} was published by a run that died" in note
               for note in result["recovered"])
    assert result["passes"] == []  # the flip was complete: nothing to redo
    assert repo.current_serial() == flipped


def test_concurrent_runs_take_turns(shipyard: Shipyard, tmp_path: Path, db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    settings = _settings(repo)
    for n in range(3):
        upload(settings, repo.root, repo.archive("hello", f"1.{n}"), "stable")
    procs = [shipyard.popen("repo", "publish", "--repo", str(repo.root), "--json",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    results = [json.loads(out) for out, _err in outputs]
    assert sorted(len(r["accepted"]) for r in results) == [0, 0, 3]
    _release, indexes = repo.verify_current()
    assert len(indexes["stable"].packages) == 3
