"""The one duration formatter keeps the strings the three it replaced printed."""

from __future__ import annotations

import subprocess
from datetime import timedelta

from helpers import wait_until
from shipyard import procs, timeutil
from shipyard.cli.svc import _uptime
from shipyard.repo.activity import format_age
from shipyard.web import format as web_format


def test_compact_and_spoken_durations() -> None:
    cases = [(5, "5s", "5s", "5.0 s"), (60, "1m", "1m00s", "1 min"),
             (185, "3m5s", "3m05s", "3 min 5 s"), (3600, "1h", "1h00m", "1 h"),
             (3725, "1h2m", "1h02m", "1 h 2 min"), (86400, "1d", "1d0h", "1 d"),
             (200000, "2d7h", "2d7h", "2 d 7 h")]
    for seconds, age, uptime, page in cases:
        assert format_age(timedelta(seconds=seconds)) == age
        assert _uptime(seconds) == uptime
        assert web_format.duration(seconds) == page
    assert web_format.ago(timeutil.utcnow() - timedelta(seconds=185)) == "3 min ago"
    assert timeutil.utcnow().tzinfo is not None


def test_group_alive_ignores_zombies() -> None:
    child = subprocess.Popen(["true"], start_new_session=True)
    try:
        # Not reaped yet: the group exists (a zombie) but nothing in it is alive.
        def exited() -> bool:
            found = procs.identify(child.pid)
            return found is None or not found.alive

        wait_until(exited, 30, what="the child to exit")
        assert procs.group_exists(child.pid)
        assert not procs.group_alive(child.pid)
    finally:
        child.wait()
    assert not procs.group_exists(child.pid)
