"""Nothing is lost when parts of the farm die: a coordinator down during a push, a worker
killed with -9 mid-build, a coordinator restarted mid-build (SQLite and PostgreSQL)."""

from __future__ import annotations

import signal

from farmkit import Farm, Source, _farm, _make_farm, request_ids, wait_until  # noqa: F401


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_push_while_coordinator_down_is_built_after_it_returns(farm: Farm) -> None:
    coordinator = farm.start_coordinator()
    url, port = coordinator.url, _port(coordinator.url)
    source = Source.create(farm, url)
    farm.kill(coordinator, signal.SIGKILL)

    source.package("a", "org.example", "alpha", "1.0", "echo alpha")
    commit_a, output = source.push("alpha while the farm is down")
    assert "unreachable" in output and "kept in" in output, output
    assert "farm hook flush" in output
    assert len(source.spool()) == 1
    failed = farm.cli("farm", "hook", "flush", str(source.bare), check=False)
    assert failed.returncode == 1 and "1 request(s) still kept" in failed.stderr

    # Back up: `farm hook flush` sends what was kept.
    farm.start_coordinator(port=port)
    farm.start_worker("w1", url)
    flushed = farm.cli("farm", "hook", "flush", str(source.bare))
    (first,) = request_ids(flushed.stdout)
    assert source.spool() == []
    assert "nothing to send" in farm.cli("farm", "hook", "flush", str(source.bare)).stdout
    build = farm.wait_state(url, first, "succeeded", "failed")
    assert (build["package"], build["commit"], build["state"]) == (
        "org.example:alpha", commit_a, "succeeded")

    # Unreachable again (the hook pointed elsewhere): the next push that gets through sends
    # the kept request first, then its own.
    farm.cli("farm", "hook", "install", str(source.bare), "--coordinator",
             "http://127.0.0.1:9", "--token", farm.token("hook"))
    source.package("a", "org.example", "alpha", "1.1", "echo alpha")
    commit_a2, output = source.push("alpha 1.1")
    assert len(source.spool()) == 1, output
    farm.cli("farm", "hook", "install", str(source.bare), "--coordinator", url,
             "--token", farm.token("hook"))
    source.package("b", "org.example", "beta", "1.0", "echo beta")
    commit_b, output = source.push("beta")
    created = request_ids(output)
    assert len(created) == 2, output
    builds = [farm.wait_state(url, build_id, "succeeded", "failed") for build_id in created]
    assert [(b["package"], b["version"], b["commit"], b["state"]) for b in builds] == [
        ("org.example:alpha", "1.1", commit_a2, "succeeded"),
        ("org.example:beta", "1.0", commit_b, "succeeded")]
    assert source.spool() == []


def test_worker_killed_mid_build_is_finished_by_another(farm: Farm) -> None:
    coordinator = farm.start_coordinator()
    url = coordinator.url
    first = farm.start_worker("w1", url)
    source = Source.create(farm, url)
    source.package("slow", "org.example", "slow", "1.0",
                   "echo started; sleep 1.5; echo finished")
    _commit, output = source.push("slow")
    (build_id,) = request_ids(output)
    wait_until(lambda: "started" in farm.log(url, build_id), 30, what="the build to start")
    assert farm.build(url, build_id)["worker"] == "w1"
    farm.kill(first, signal.SIGKILL)

    farm.start_worker("w2", url)
    build = farm.wait_state(url, build_id, "succeeded", "failed", timeout=60)
    assert build["state"] == "succeeded", farm.log(url, build_id)
    assert (build["worker"], build["attempt"]) == ("w2", 2)
    log = farm.log(url, build_id)
    assert "attempt 1 lost: worker w1 stopped heartbeating" in log
    assert log.count("finished") == 1  # attempt 1 never finished; its report is gone


def test_coordinator_restart_mid_build_loses_nothing(farm: Farm) -> None:
    coordinator = farm.start_coordinator()
    url, port = coordinator.url, _port(coordinator.url)
    farm.start_worker("w1", url)
    source = Source.create(farm, url)
    source.package("p1", "org.example", "one", "1.0", "echo before; sleep 2; echo after")
    source.package("p2", "org.example", "two", "1.0", "echo two")
    _commit, output = source.push("two packages")
    first, second = request_ids(output)
    wait_until(lambda: "before" in farm.log(url, first), 30, what="the first build to start")
    assert farm.build(url, second)["state"] == "queued"  # capacity 1: waits its turn

    farm.kill(coordinator, signal.SIGKILL)
    farm.start_coordinator(port=port)
    one = farm.wait_state(url, first, "succeeded", "failed", timeout=60)
    two = farm.wait_state(url, second, "succeeded", "failed", timeout=60)
    assert (one["state"], one["attempt"]) == ("succeeded", 1), farm.log(url, first)
    assert (two["state"], two["attempt"]) == ("succeeded", 1)
    log = farm.log(url, first)
    assert log.count("before") == 1 and log.count("after") == 1, log
    assert "lost" not in log
