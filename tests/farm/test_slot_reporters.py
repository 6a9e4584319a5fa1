"""A worker slot keeps one heartbeat and one log-stream thread for all its builds: a build
after the first must still stream its output while it runs, renew its lease past the lease
time and be aborted within seconds, and no build's output may end up in another's log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from farmkit import Farm, Source, _farm, _make_farm, request_ids, wait_until  # noqa: F401


def test_later_builds_of_a_slot_stream_beat_and_abort(farm: Farm) -> None:
    url = farm.start_coordinator().url
    farm.start_worker("w1", url)
    source = Source.create(farm, url)
    source.package("quick", "org.example", "quick", "1.0", "echo quick-output")
    _commit, output = source.push("a quick build first")
    (quick,) = request_ids(output)
    assert farm.wait_state(url, quick, "succeeded", "failed")["state"] == "succeeded"

    # The same slot now runs a build that outlives the lease (3 s) several times over.
    source.package("long", "org.example", "long", "1.0",
                   "echo long-started; sleep 300; echo long-never")
    _commit, output = source.push("then a long one on the same slot")
    (long,) = request_ids(output)
    wait_until(lambda: "long-started" in farm.log(url, long), 30,
               what="the long build's output to be streamed while it runs")
    first = farm.build(url, long)
    assert first["state"] == "running", first
    # The heartbeats renew the lease: it comes to expire two lease times after the first
    # expiry seen, with the build still running its first attempt.
    renewed_by = _when(first["lease_expires_at"]) + timedelta(seconds=2 * farm.lease)

    def renewed_or_ended() -> dict[str, Any] | None:
        build = farm.build(url, long)
        if build["state"] != "running" or (build["lease_expires_at"] and
                                           _when(build["lease_expires_at"]) >= renewed_by):
            return build
        return None

    renewed = wait_until(renewed_or_ended, 30,
                         what="the long build's lease to be renewed past its first expiry")
    assert renewed["state"] == "running" and renewed["attempt"] == 1, renewed

    aborted = farm.cli("farm", "build", "abort", str(long), "--coordinator", url,
                       "--token", farm.token("admin"))
    assert "abort requested" in aborted.stdout
    build = farm.wait_state(url, long, "aborted", "failed", "succeeded", timeout=15)
    assert build["state"] == "aborted" and build["attempt"] == 1, build

    # And the slot goes on: a third build succeeds; no build's output is in another's log.
    source.package("after", "org.example", "after", "1.0", "echo after-output")
    _commit, output = source.push("a third build")
    (after,) = request_ids(output)
    assert farm.wait_state(url, after, "succeeded", "failed")["state"] == "succeeded"
    logs = {build_id: farm.log(url, build_id) for build_id in (quick, long, after)}
    assert "quick-output" in logs[quick] and "after-output" in logs[after]
    assert "long-started" in logs[long] and "long-never" not in logs[long]
    assert "long-started" not in logs[quick] + logs[after]
    assert "quick-output" not in logs[long] + logs[after]
    assert "after-output" not in logs[quick] + logs[long]


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso)
