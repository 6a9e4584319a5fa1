"""``shipyard.logsetup``: the line formats of the long-running processes (in-process; the
farm tests check the real coordinator and workers), and bad options on the command line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Shipyard
from shipyard.config import load_settings
from shipyard.errors import ConfigError
from shipyard.logsetup import configure_logging, register_secret


@pytest.fixture(name="captured")
def _captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    for name in ("shipyard", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_text_lines_have_a_utc_timestamp_outside_systemd(
        captured: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    configure_logging("info", "text", stream=captured)
    logging.getLogger("shipyard.farm.events").info("build %s claimed", 7)
    logging.getLogger("shipyard.farm.events").debug("not shown at info")
    (line,) = captured.getvalue().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO "
                        r"shipyard\.farm\.events: build 7 claimed", line), line


def test_json_lines_carry_the_event_fields_and_no_timestamp_under_systemd(
        captured: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    configure_logging("debug", "json", stream=captured)
    logging.getLogger("shipyard.farm.worker").warning(
        "build %s: lease lost", 3, extra={"event": "lease-lost", "build": 3})
    (line,) = captured.getvalue().splitlines()
    assert json.loads(line) == {"level": "warning", "logger": "shipyard.farm.worker",
                                "message": "build 3: lease lost", "event": "lease-lost",
                                "build": 3}


def test_a_registered_secret_is_blanked(captured: io.StringIO) -> None:
    secret = "shy_" + "k" * 40
    register_secret(secret)
    configure_logging("info", "text", stream=captured)
    logging.getLogger("shipyard.farm").error("oops: %s", f"Bearer {secret}")
    assert secret not in captured.getvalue()
    assert "Bearer [redacted]" in captured.getvalue()


def test_bad_log_options_are_one_line(shipyard: Shipyard) -> None:
    bad = shipyard.run("farm", "serve", "--log-level", "loud", check=False)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        "shipyard: error: --log-level 'loud': expected one of debug, info, warning, error"]
    bad = shipyard.run("farm", "worker", "--token", "x" * 20, "--log-format", "xml",
                       check=False)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        "shipyard: error: --log-format 'xml': expected one of text, json"]


def test_the_retired_paths_log_setting_says_where_logs_go(tmp_path: Path) -> None:
    ini = tmp_path / "shipyard.ini"
    ini.write_text("[paths]\nlog = /var/log/shipyard\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(home=tmp_path, config_file=ini, env={})
    assert caught.value.message == (
        f"{ini}: [paths] log is no longer a setting: Shipyard's processes log to stderr, for "
        "systemd's journal (see the operator guide's Logs); remove it")
