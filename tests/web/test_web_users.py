"""``shipyard farm user``: the real CLI, typed on a real (pseudo-)terminal where it asks
for passwords, against a real coordinator whose sign-in page then knows the users."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from webkit import LIMITS, WebFarm, sign_in

from conftest import SHIPYARD


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[WebFarm]:
    farm = WebFarm.create(tmp_path, LIMITS).serve()
    farm.add_user()
    yield farm
    farm.close()


def _on_terminal(farm: WebFarm, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its controlling terminal, typing ``answers``
    at each password prompt."""
    master, slave = pty.openpty()

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([*SHIPYARD, *args], env=farm.env, stdin=slave, stdout=slave,
                            stderr=slave, preexec_fn=controlling_tty, close_fds=True)
    os.close(slave)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
                # Answer a prompt only once it is shown: getpass flushes what was typed
                # before it turned echo off.
                if pending and output.endswith(b": "):
                    os.write(master, pending.pop(0).encode() + b"\n")
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), output.decode(errors="replace")
    finally:
        os.close(master)


def test_user_commands(coordinator: WebFarm) -> None:
    farm = coordinator
    code, output = _on_terminal(farm, ["farm", "user", "add", "bob"],
                                ["s3cret-enough", "s3cret-enough"])
    assert code == 0, output
    assert "Password:" in output and "Password again:" in output
    assert "s3cret-enough" not in output  # not echoed
    assert "added user bob" in output
    code, output = _on_terminal(farm, ["farm", "user", "add", "carol"],
                                ["first-password", "other-password"])
    assert code == 2 and "the two passwords differ" in output

    with httpx.Client(base_url=farm.url, timeout=30) as client:
        assert sign_in(client, "bob", "s3cret-enough").status_code == 303

    users = {u["name"]: u for u in json.loads(farm.cli("farm", "user", "list", "--json").stdout)}
    assert set(users) == {"alice", "bob"}
    assert users["bob"]["last_signin_at"] is not None
    assert "password" not in str(users).lower()

    bad = [(["farm", "user", "add", "dave", "--password-stdin"], "short\n",
            "password too short: at least 8 characters", 2),
           (["farm", "user", "add", "no spaces", "--password-stdin"], "long enough\n",
            "invalid user name 'no spaces'", 2),
           (["farm", "user", "add", "bob", "--password-stdin"], "long enough\n",
            "user 'bob' exists already", 1),
           (["farm", "user", "add", "erin"], "", "use --password-stdin", 2),
           (["farm", "user", "remove", "zed"], "", "no user 'zed'", 1)]
    for args, stdin, message, code in bad:
        result = farm.cli(*args, input=stdin, check=False)
        assert result.returncode == code, (args, result.stderr)
        assert result.stderr.strip() == f"shipyard: error: {message}" or (
            message in result.stderr and "Traceback" not in result.stderr), result.stderr

    # A new password ends the user's sessions.
    with httpx.Client(base_url=farm.url, timeout=30) as client:
        assert sign_in(client, "bob", "s3cret-enough").status_code == 303
        farm.cli("farm", "user", "passwd", "bob", "--password-stdin", input="another-one1\n")
        assert "Signed in as <strong>" not in client.get("/").text
        assert sign_in(client, "bob", "another-one1").status_code == 303
    farm.cli("farm", "user", "remove", "bob")
    assert "bob" not in farm.cli("farm", "user", "list").stdout
