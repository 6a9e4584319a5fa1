"""``farm serve`` checks at start what would otherwise fail on every publish: a repository
without its signing key is refused with the ``repo keygen`` command that fixes it (unless
publishing is off); and a coordinator can serve on a socket its supervisor bound."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
from farmkit import Farm, _make_farm, _sqlite_farm, wait_until  # noqa: F401

from conftest import SHIPYARD
from kit.coordinator import listening_url


def test_serve_refuses_to_publish_without_its_signing_key(sqlite_farm: Farm,
                                                          tmp_path: Path) -> None:
    farm = sqlite_farm
    repo = tmp_path / "repo"
    farm.cli("repo", "init", str(repo))
    key = farm.shipyard.home / "state" / "keys" / "repository.key"
    assert not key.exists()

    refused = farm.cli("farm", "serve", "--bind", "127.0.0.1:0", "--repo", str(repo),
                       check=False, timeout=60)
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    assert f"no signing key at {key}" in lines[0]
    assert f"shipyard repo keygen --out {key}" in lines[0]
    assert "--no-publish" in lines[0]

    # Publishing off: it starts, and shows the repository without publishing to it.
    proc = farm._spawn("no-publish", ["farm", "serve", "--bind", "127.0.0.1:0", "--repo",
                                      str(repo), "--no-publish"])
    url = listening_url(proc, 30, "the coordinator without publishing")
    wait_until(lambda: httpx.get(f"{url}/repository", timeout=5).status_code == 200, 30)
    farm.kill(proc)

    # The command the message named fixes it.
    farm.cli("repo", "keygen", "--out", str(key))
    farm.start_coordinator(repo=repo)


def test_serve_on_an_inherited_socket(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    proc = farm.running.spawn("inherited", [*SHIPYARD, "farm", "serve", "--socket-fd",
                                            str(sock.fileno())], farm.env,
                              pass_fds=(sock.fileno(),))
    sock.close()

    def instance() -> str | None:
        text = proc.output()
        if f"listening on http://127.0.0.1:{port} (instance " not in text:
            return None
        return text.split("(instance ", 1)[1].split(",", 1)[0]

    printed = proc.wait_for(instance, 30, "the coordinator on the inherited socket")
    health = wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/api/health",
                                          timeout=5).json(), 30)
    assert health["instance"] == printed
    proc.stop()

    bad = farm.cli("farm", "serve", "--socket-fd", "999", check=False)
    assert bad.returncode != 0 and "--socket-fd 999: not an open socket" in bad.stderr
    assert "Traceback" not in bad.stderr
