"""Installing from a repository published with the real ``shipyard repo`` CLI: resolution,
requirements, and every way the chain of trust can be broken.

One repository is published per test module (uploads cost a CLI run each); a test that
tampers with it works on its own copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pkgkit import GROUP, Repo, make_repo, tree_entries

from conftest import Shipyard, make_env
from kit.repository import served

LIB_VERSIONS = ("1.10", "1.9", "2.0")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    base = tmp_path_factory.mktemp("published")
    home = base / "publisher-home"
    home.mkdir()
    repo = make_repo(Shipyard(home, make_env(home)), base)
    for version in LIB_VERSIONS:
        repo.add("lib", version, files={"lib/blob.bin": bytes(range(256)) * 400})
    repo.add("app", "1.0", requires=[f"{GROUP}:lib:>=1.0,<2"])
    repo.add("top", "3.0", requires=[f"{GROUP}:app", f"{GROUP}:lib:>=1.5,<1.10"])
    repo.add("ping", "1.0", requires=[f"{GROUP}:pong"])
    repo.add("pong", "1.0", requires=[f"{GROUP}:ping:>=1.0"])
    repo.add("needy", "1.0", requires=[f"{GROUP}:ghost:>=1"])
    repo.add("fix", "1.0", channel="security")
    repo.publish()
    return repo


@pytest.fixture
def repo(published: Repo, tmp_path: Path) -> Repo:
    """A private copy of the published repository, free to tamper with."""
    return published.copy(tmp_path)


def _installed(shipyard: Shipyard) -> list[str]:
    return [p["coordinate"] for p in json.loads(shipyard.run("pkg", "list", "--json").stdout)]


def _refused(shipyard: Shipyard, env: dict[str, str], target: str, fragment: str) -> str:
    result = shipyard.run("pkg", "install", target, check=False, env=env)
    assert result.returncode == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shipyard: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert tree_entries(shipyard.home / "software") == []
    assert tree_entries(shipyard.home / "state" / "pkg" / "downloads") == []
    return lines[0]


def test_newest_ranges_and_requirements(shipyard: Shipyard, published: Repo) -> None:
    env = published.node_env()
    result = shipyard.run("pkg", "install", f"{GROUP}:app", env=env)
    # 1.10 is newer than 1.9 (numeric runs compare as numbers) and 2.0 is out of range.
    assert result.stdout.splitlines() == [
        f"installed {GROUP}:lib:1.10 in {shipyard.home}/software/org/test/lib/1.10",
        f"installed {GROUP}:app:1.0 in {shipyard.home}/software/org/test/app/1.0",
    ]
    shipyard.run("pkg", "install", f"{GROUP}:lib", env=env)  # group:id = newest
    assert _installed(shipyard) == [f"{GROUP}:app:1.0", f"{GROUP}:lib:1.10", f"{GROUP}:lib:2.0"]

    # top needs lib <1.10: installed 1.10 and 2.0 do not meet it, so 1.9 comes in.
    shipyard.run("pkg", "install", f"{GROUP}:top:3.0", env=env)
    assert f"{GROUP}:lib:1.9" in _installed(shipyard)
    record = json.loads((shipyard.home / "software/org/test/top/3.0/.shipyard/installed.json")
                        .read_text())
    assert record["signed_by"] and record["channel"] == "stable"
    assert record["source"] == f"{published.url}/pool/org/test/top/3.0/top-3.0.tar.gz"

    again = shipyard.run("pkg", "install", f"{GROUP}:top", env=env)
    assert "already installed" in again.stdout
    missing = shipyard.run("pkg", "install", f"{GROUP}:lib:7.0", check=False, env=env)
    assert missing.returncode == 1
    assert "not in channel stable (versions there: 1.9, 1.10, 2.0)" in missing.stderr
    assert shipyard.run("pkg", "verify").returncode == 0


def test_cycles_and_unmet_requirements_install_nothing(shipyard: Shipyard,
                                                       published: Repo) -> None:
    env = published.node_env()
    _refused(shipyard, env, f"{GROUP}:ping",
             f"dependency cycle: {GROUP}:ping -> {GROUP}:pong -> {GROUP}:ping")
    _refused(shipyard, env, f"{GROUP}:needy", f"requires {GROUP}:ghost:>=1, which channel "
             "stable cannot satisfy")


def test_channels(shipyard: Shipyard, published: Repo) -> None:
    env = published.node_env()
    result = shipyard.run("pkg", "install", f"{GROUP}:fix", check=False, env=env)
    assert result.returncode == 1 and "not in channel stable" in result.stderr
    shipyard.run("pkg", "install", f"{GROUP}:fix", "--channel", "security", env=env)
    assert _installed(shipyard) == [f"{GROUP}:fix:1.0"]
    unknown = shipyard.run("pkg", "install", f"{GROUP}:lib", "--channel", "nightly",
                           check=False, env=env)
    assert "no channel 'nightly'" in unknown.stderr


def test_info_from_index_says_whether_signed(shipyard: Shipyard, published: Repo) -> None:
    signed = json.loads(shipyard.run("pkg", "info", f"{GROUP}:lib", "--json",
                                     env=published.node_env()).stdout)
    assert signed["coordinate"] == f"{GROUP}:lib:2.0"
    assert signed["versions"] == ["1.9", "1.10", "2.0"]
    assert signed["signature"].startswith("verified (key ")
    assert signed["status"] == "not installed"
    unsigned = shipyard.run("pkg", "info", f"{GROUP}:lib:1.9", "--allow-unsigned",
                            env=published.node_env(key=False))
    assert "NOT verified" in unsigned.stdout


def test_wrong_sha256_is_refused(shipyard: Shipyard, repo: Repo) -> None:
    pool = repo.pool_file("app", "1.0")
    data = bytearray(pool.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    pool.chmod(0o644)
    pool.write_bytes(bytes(data))
    # lib 1.10 comes first in the plan and is fine: it is fetched, but nothing is placed.
    _refused(shipyard, repo.node_env(), f"{GROUP}:app", "does not match the signed index")


def test_wrong_size_is_refused(shipyard: Shipyard, repo: Repo) -> None:
    pool = repo.pool_file("lib", "2.0")
    pool.chmod(0o644)
    with pool.open("ab") as handle:
        handle.write(b"appended")
    line = _refused(shipyard, repo.node_env(), f"{GROUP}:lib", "size")
    assert "signed index" in line


def test_bad_signature_is_refused(shipyard: Shipyard, published: Repo, tmp_path: Path) -> None:
    from shipyard.formats.signing import generate_key

    stranger = tmp_path / "stranger.pub"
    stranger.write_text(generate_key().public.to_text())
    env = {**published.node_env(), "SHIPYARD_REPO_KEY": str(stranger)}
    _refused(shipyard, env, f"{GROUP}:lib", "no valid signature by a trusted key")


def test_tampered_release_is_refused(shipyard: Shipyard, repo: Repo) -> None:
    release = repo.generation() / "release.json"
    data = json.loads(release.read_text())
    data["valid_until"] = "2099" + data["valid_until"][4:]  # valid for longer: not signed
    release.write_text(json.dumps(data, sort_keys=True, indent=1) + "\n")
    _refused(shipyard, repo.node_env(), f"{GROUP}:lib", "no valid signature")


def test_unsigned_repository_with_a_key_configured(shipyard: Shipyard, repo: Repo) -> None:
    repo.publish("--unsigned", "--all")
    _refused(shipyard, repo.node_env(), f"{GROUP}:lib", "unsigned")
    # The opt-in does not override a configured key: the key says it must be signed.
    _refused(shipyard, {**repo.node_env(), "SHIPYARD_REPO_TRUST": "unsigned"}, f"{GROUP}:lib",
             "unsigned")
    shipyard.run("pkg", "install", f"{GROUP}:lib", "--allow-unsigned",
                 env=repo.node_env(key=False))
    assert _installed(shipyard) == [f"{GROUP}:lib:2.0"]


def test_expired_release_is_refused(shipyard: Shipyard, repo: Repo) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    repo.resign(lambda release: release.update(valid_until=past))
    _refused(shipyard, repo.node_env(), f"{GROUP}:lib", "expired")


def test_index_not_matching_release_is_refused(shipyard: Shipyard, repo: Repo) -> None:
    index = repo.generation() / "dists" / "stable" / "index.json"
    index.write_text(index.read_text().replace('"summary": "', '"summary": "x'))
    _refused(shipyard, repo.node_env(), f"{GROUP}:lib", "does not match release")


def test_archive_with_another_coordinate_is_refused(shipyard: Shipyard, repo: Repo) -> None:
    """A validly signed index whose entry points at another package's bytes."""
    other = repo.pool_file("needy", "1.0")
    pool = repo.pool_file("app", "1.0")
    pool.chmod(0o644)
    shutil.copyfile(other, pool)

    def point(index: dict) -> None:
        for entry in index["packages"]:
            if entry["id"] == "app":
                entry["size"] = other.stat().st_size
                entry["sha256"] = hashlib.sha256(other.read_bytes()).hexdigest()
                entry["requires"] = []

    repo.rewrite_index("stable", point)
    _refused(shipyard, repo.node_env(), f"{GROUP}:app:1.0", "needy")


def test_rollback_is_refused(shipyard: Shipyard, repo: Repo, tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot"
    shutil.copytree(repo.root, snapshot, symlinks=True)
    repo.add("roll", "1.1")
    repo.publish()
    env = repo.node_env()
    shipyard.run("pkg", "install", f"{GROUP}:roll:1.1", env=env)
    shipyard.run("pkg", "uninstall", f"{GROUP}:roll:1.1")
    # The same URL now serves the older (still validly signed, unexpired) publication.
    shutil.rmtree(repo.root)
    shutil.copytree(snapshot, repo.root, symlinks=True)
    line = _refused(shipyard, env, f"{GROUP}:lib", "rollback")
    assert "is older than serial" in line


def test_install_over_http(shipyard: Shipyard, published: Repo) -> None:
    with served(published.root, shipyard.home.parent) as url:
        env = published.node_env(url=f"{url}nothing/")  # the flag wins over the setting
        result = shipyard.run("pkg", "install", f"{GROUP}:top", "--repo-url", url, env=env)
        for coord in (f"{GROUP}:lib:1.9", f"{GROUP}:app:1.0", f"{GROUP}:top:3.0"):
            assert f"installed {coord}" in result.stdout
        assert shipyard.run("pkg", "verify").returncode == 0
        info = json.loads(shipyard.run("pkg", "info", f"{GROUP}:lib:1.9", "--json").stdout)
        assert info["source"] == f"{url}pool/org/test/lib/1.9/lib-1.9.tar.gz"
        missing = shipyard.run("pkg", "install", f"{GROUP}:other", check=False,
                               env=published.node_env(url=f"{url}nothing/"))
        assert missing.returncode == 1
        assert "current/release.json: not found" in missing.stderr


def test_local_archive_fetches_its_requirements(shipyard: Shipyard, published: Repo,
                                                tmp_path: Path) -> None:
    """``pkg install ./x.tar.gz`` (dpkg -i) gets what it requires from the repository."""
    from pkgkit import make_source, pack

    src = make_source(tmp_path / "local", "local", "1.0", requires=[f"{GROUP}:lib:<2"])
    archive = pack(shipyard, src, tmp_path / "out")
    env = published.node_env()
    refused = shipyard.run("pkg", "install", str(archive), check=False, env=env)
    assert refused.returncode == 1 and "--unsigned" in refused.stderr
    result = shipyard.run("pkg", "install", str(archive), "--unsigned", env=env)
    assert result.stdout.splitlines()[0].startswith(f"installed {GROUP}:lib:1.10 in ")
    assert _installed(shipyard) == [f"{GROUP}:lib:1.10", f"{GROUP}:local:1.0"]


# ---------------------------------------------------------------------------------------
# Issue 14: no key means no trust; all members checked first; a publication meanwhile


UNSIGNED_WARNING = "is read WITHOUT signature verification"


def test_unverifiable_repository_is_refused_unless_opted_in(shipyard: Shipyard,
                                                             published: Repo) -> None:
    """Like apt: without repo.key nothing verifies the repository, so it is refused unless
    the operator opted in, and then every command that reads it says so."""
    env = published.node_env(key=False)
    line = _refused(shipyard, env, f"{GROUP}:lib", "no repo.key is configured to verify")
    assert "repo.trust = unsigned or --allow-unsigned" in line
    info = shipyard.run("pkg", "info", f"{GROUP}:lib", check=False, env=env)
    assert info.returncode == 1 and "no repo.key is configured" in info.stderr

    flag = shipyard.run("pkg", "install", f"{GROUP}:lib:1.9", "--allow-unsigned", env=env)
    assert [line for line in flag.stderr.splitlines() if UNSIGNED_WARNING in line] == [
        f"shipyard: warning: {published.url}/ {UNSIGNED_WARNING} (repo.trust = unsigned or "
        "--allow-unsigned): whoever can change it or the connection to it chooses what is "
        "installed"]
    opted = {**env, "SHIPYARD_REPO_TRUST": "unsigned"}
    for _time in range(2):  # each time, not once
        shown = shipyard.run("pkg", "info", f"{GROUP}:lib:2.0", env=opted)
        assert UNSIGNED_WARNING in shown.stderr and "NOT verified" in shown.stdout
    again = shipyard.run("pkg", "install", f"{GROUP}:lib:1.10", env=opted)
    assert UNSIGNED_WARNING in again.stderr
    assert _installed(shipyard) == [f"{GROUP}:lib:1.9", f"{GROUP}:lib:1.10"]
    record = json.loads((shipyard.home / "software/org/test/lib/1.9/.shipyard/installed.json")
                        .read_text())
    assert record["signed_by"] is None
    # Nothing read unverified is remembered as a serial.
    assert not (shipyard.home / "state" / "pkg" / "serials.json").exists()
    wrong = shipyard.run("pkg", "install", f"{GROUP}:lib", check=False,
                         env={**env, "SHIPYARD_REPO_TRUST": "maybe"})
    assert wrong.returncode != 0 and "repo.trust = 'maybe': expected signed or unsigned" \
        in wrong.stderr


def test_an_unsigned_serial_is_never_pinned(shipyard: Shipyard, repo: Repo) -> None:
    """An unsigned release claiming serial 10^12, read with the opt-in, must not lock the
    URL out of its real, signed releases."""
    from shipyard.formats.index import dump_json
    from shipyard.fsutil import atomic_symlink

    signed = repo.generation()
    huge = 10**12
    fake = repo.root / "generations" / str(huge)
    shutil.copytree(signed, fake)
    release = json.loads((fake / "release.json").read_bytes())
    release["serial"] = huge
    (fake / "release.json").write_bytes(dump_json(release))
    (fake / "release.json.sig").unlink()
    atomic_symlink(f"generations/{huge}", repo.root / "current")

    result = shipyard.run("pkg", "install", f"{GROUP}:lib:1.9",
                          env={**repo.node_env(key=False), "SHIPYARD_REPO_TRUST": "unsigned"})
    assert UNSIGNED_WARNING in result.stderr
    serials = shipyard.home / "state" / "pkg" / "serials.json"
    assert not serials.exists() or str(huge) not in serials.read_text()

    atomic_symlink(f"generations/{signed.name}", repo.root / "current")
    shipyard.run("pkg", "install", f"{GROUP}:app", env=repo.node_env())
    assert f"{GROUP}:app:1.0" in _installed(shipyard)
    assert json.loads(serials.read_text()) == {f"{repo.url}/": int(signed.name)}


def _inotify_creations(path: Path) -> Callable[[], list[str]]:
    """Watch ``path`` for entries created in it (Linux inotify through the C library);
    returns a function that reads the names created since."""
    import ctypes
    import os
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    in_create, in_moved_to = 0x100, 0x80
    assert libc.inotify_add_watch(fd, str(path).encode(), in_create | in_moved_to) >= 0

    def created() -> list[str]:
        names = []
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            data = b""
        finally:
            os.close(fd)
        offset = 0
        while offset < len(data):
            _wd, _mask, _cookie, size = struct.unpack_from("iIII", data, offset)
            names.append(data[offset + 16: offset + 16 + size].rstrip(b"\0").decode())
            offset += 16 + size
        return names

    return created


def test_repository_archive_is_checked_in_full_before_anything_is_written(
        shipyard: Shipyard, repo: Repo) -> None:
    """An archive over the node's member cap (a 100,001-member archive against the default
    100,000, here 61 against 50) is refused before a single file or directory is created
    in the software root: its members are all checked first, as for a local archive."""
    repo.add("many", "1.0", files={f"many/f{i:02}": b"x" for i in range(55)})
    repo.publish()
    software = shipyard.home / "software"
    software.mkdir()
    created = _inotify_creations(software)
    env = {**repo.node_env(), "SHIPYARD_PKG_MAX_MEMBERS": "50"}
    result = shipyard.run("pkg", "install", f"{GROUP}:many", check=False, env=env)
    names = created()
    assert result.returncode == 1, result.output
    assert "more than 50 members (pkg.max_members)" in result.stderr
    assert names == []
    assert tree_entries(software) == []


def _serve_flipping(root: Path, trigger: str, flip: Callable[[], None]) -> Any:
    """Serves a repository and runs ``flip`` (a publication that prunes the generation
    being read) right after opening ``trigger`` for the first time: the race of a
    publisher run between a node's two reads, made to happen every time."""
    import functools
    import http.server
    import threading

    state = {"flipped": False}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def send_head(self) -> Any:  # the file is opened here, before the flip
            head = super().send_head()
            if self.path.lstrip("/") == trigger and not state["flipped"]:
                state["flipped"] = True
                flip()
            return head

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("trigger", ["current/release.json", "release.json.sig"])
def test_a_generation_pruned_between_two_reads(shipyard: Shipyard, repo: Repo,
                                               trigger: str) -> None:
    """A publication that flips ``current`` and prunes the generation being read between
    two requests is "changed while reading" (retried once), not "repository is unsigned"
    nor a missing index."""
    from shipyard.fsutil import atomic_symlink

    old = repo.generation()
    repo.add("late", "1.0")
    repo.publish()
    new = repo.generation()
    atomic_symlink(f"generations/{old.name}", repo.root / "current")
    path = (f"generations/{old.name}/{trigger}" if trigger.endswith(".sig") else trigger)

    def flip() -> None:
        atomic_symlink(f"generations/{new.name}", repo.root / "current")
        shutil.rmtree(old)

    server = _serve_flipping(repo.root, path, flip)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        result = shipyard.run("pkg", "install", f"{GROUP}:late", "--repo-url", url,
                              env=repo.node_env(), check=False)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.output
    assert f"installed {GROUP}:late:1.0" in result.stdout
    assert not old.exists()
