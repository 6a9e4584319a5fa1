"""The repository through the real CLI: init, keygen, upload, publish, promote, list,
activity, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from repo_helpers import coords, make_repo

from conftest import Shipyard
from kit.manifest import manifest_text
from shipyard.errors import VerificationError
from shipyard.formats.signing import load_public_key, verify_detached


def test_init_keygen_upload_publish_list(shipyard: Shipyard, tmp_path: Path,
                                         db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url, keygen=False)
    ini = (repo.root / "repo.ini").read_text()
    assert "stable = 1" in ini and "security = 0" in ini
    assert db_url in ini
    for sub in ("pool", "generations", "incoming", "hooks/pre-publication.d",
                "hooks/post-publication.d"):
        assert (repo.root / sub).is_dir(), sub

    result = repo.run("keygen")
    private = shipyard.home / "state" / "keys" / "repository.key"
    assert f"public key: {private}.pub" in result.stdout
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key_id = load_public_key(f"{private}.pub").key_id
    assert f"key id: {key_id}" in result.stdout
    again = repo.run("keygen", check=False)
    assert again.returncode == 1
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert load_public_key(f"{private}.pub").key_id == key_id  # untouched
    forced = repo.run("keygen", "--force", "--json")
    new_id = json.loads(forced.stdout)["key_id"]
    assert new_id != key_id

    archive = repo.archive("hello", "1.0", summary="Hello")
    result = repo.upload(archive)
    assert "queued org.example:hello:1.0 for stable" in result.stdout
    assert not (repo.root / "current").exists()

    result = repo.publish_json()
    assert [a["coordinate"] for a in result["accepted"]] == ["org.example:hello:1.0"]
    assert result["rejected"] == []
    pool_file = repo.root / "pool/org/example/hello/1.0/hello-1.0.tar.gz"
    assert pool_file.read_bytes() == archive.read_bytes()
    assert os.readlink(repo.root / "current") == f"generations/{result['serial']}"
    release, indexes = repo.verify_current()
    assert coords(indexes["stable"]) == {"org.example:hello:1.0"}
    assert coords(indexes["security"]) == set()
    assert list(repo.root.glob("incoming/2*")) == []

    listed = json.loads(repo.run("list", "--json").stdout)
    assert listed["serial"] == release.serial
    assert [(p["channel"], p["coordinate"]) for p in listed["packages"]] == [
        ("stable", "org.example:hello:1.0")]
    table = repo.run("list").stdout
    assert "org.example:hello:1.0" in table

    # Nothing changed: the run says so, publishes nothing, and is still recorded.
    quiet = repo.publish()
    assert "nothing to publish" in quiet.stdout
    assert repo.current_serial() == release.serial
    rows = json.loads(repo.run("activity", "--json").stdout)
    assert [r["status"] for r in rows[:2]] == ["success", "success"]
    assert "nothing to publish" in rows[0]["message"]
    assert rows[0]["hostname"] and rows[0]["completed"]


def test_init_channels_and_bad_input(shipyard: Shipyard, tmp_path: Path) -> None:
    root = tmp_path / "r"
    shipyard.run("repo", "init", str(root), "--channel", "stable=1", "--channel",
                 "security=0", "--channel", "testing=2")
    ini = (root / "repo.ini").read_text()
    assert "testing = 2" in ini
    again = shipyard.run("repo", "init", str(root), check=False)
    assert again.returncode == 1
    assert again.stderr == f"shipyard: error: {root} is already a repository (repo.ini exists)\n"
    bad = shipyard.run("repo", "init", str(tmp_path / "x"), "--channel", "stable", check=False)
    assert bad.returncode == 2
    assert "expected NAME=PRIORITY" in bad.stderr
    bad = shipyard.run("repo", "init", str(tmp_path / "y"), "--channel", "../x=1", check=False)
    assert bad.returncode == 2
    assert "invalid channel name" in bad.stderr
    nodb = shipyard.run("repo", "init", str(tmp_path / "z"), "--db",
                        "postgresql://postgres@127.0.0.1:5432/shipyard_no_such_db",
                        check=False)
    assert nodb.returncode == 1
    assert nodb.stderr.startswith("shipyard: error: cannot open repository database ")
    assert nodb.stderr.count("\n") == 1
    assert not (tmp_path / "z").exists()
    missing = shipyard.run("repo", "publish", "--repo", str(tmp_path / "none"), check=False)
    # A --repo that does not exist is a command-line mistake (docs/reference/exit-codes.md).
    assert missing.returncode == 2
    assert "no such directory" in missing.stderr
    assert "Traceback" not in missing.output


def test_publish_needs_a_key_unless_unsigned(shipyard: Shipyard, tmp_path: Path,
                                             db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url, keygen=False)
    repo.upload(repo.archive("hello", "1.0"))
    result = repo.publish(check=False)
    assert result.returncode == 1
    assert "no signing key" in result.stderr and "shipyard repo keygen" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (repo.root / "current").exists()
    rows = json.loads(repo.run("activity", "--json").stdout)
    assert rows[0]["status"] == "failure" and "no signing key" in rows[0]["message"]

    published = repo.publish_json("--unsigned")
    base = repo.root / "generations" / str(published["serial"])
    assert (base / "release.json").is_file()
    assert not (base / "release.json.sig").exists()
    # Once a key exists, the next run signs the release even with nothing else to do.
    repo.run("keygen")
    signed = repo.publish_json()
    assert [p["channels"] for p in signed["passes"]] == [[]]
    release, indexes = repo.verify_current()
    assert release.serial == published["serial"] + 1
    assert coords(indexes["stable"]) == {"org.example:hello:1.0"}


def test_upload_refuses_bad_archives(shipyard: Shipyard, tmp_path: Path, db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    junk = tmp_path / "junk-1.0.tar.gz"
    junk.write_bytes(b"not a tarball")
    result = repo.run("upload", str(junk), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("shipyard: error: junk-1.0.tar.gz: ")
    assert result.stderr.count("\n") == 1
    good = repo.archive("hello", "1.0")
    renamed = tmp_path / "other-1.0.tar.gz"
    renamed.write_bytes(good.read_bytes())
    result = repo.run("upload", str(renamed), check=False)
    assert result.returncode == 1 and "does not match its manifest" in result.stderr
    result = repo.run("upload", str(good), "--channel", "nightly", check=False)
    assert result.returncode == 1
    assert "unknown channel 'nightly'" in result.stderr
    assert [p for p in (repo.root / "incoming").iterdir() if p.name != "rejected"] == []


def _hostile_archive(path: Path, member: str, *, appended: bytes = b"") -> Path:
    """``hello-1.0`` with one extra member named ``member`` (gzip, then ``appended``)."""
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    manifest = manifest_text("org.example", "hello", "1.0").encode()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in (("shipyard.toml", manifest), (member, b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    path.mkdir()
    archive = path / "hello-1.0.tar.gz"
    archive.write_bytes(gzip.compress(raw.getvalue(), mtime=0) + appended)
    return archive


@pytest.mark.parametrize(("case", "member", "appended", "expect"), [
    ("deep", "d/" * 1100 + "f", b"",
     "member 'd/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/...(2201 characters)' "
     "is 1101 levels deep (at most 128 allowed)"),
    ("long-component", "x" * 300, b"", "has a name component of 300 bytes (at most 255 allowed)"),
    ("long-path", "/".join(["p" * 250] * 16), b"",
     "has a path of 4015 bytes (at most 3072 allowed)"),
    ("second-gzip-member", "ok.txt", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
     b"\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00", "data after the end of the gzip member"),
], ids=["deep", "long-component", "long-path", "second-gzip-member"])
def test_upload_refuses_what_a_node_could_not_install(shipyard: Shipyard, tmp_path: Path,
                                                       case: str, member: str,
                                                       appended: bytes, expect: str) -> None:
    """Issue 14: such archives used to pass upload and publish, and then broke the node
    (RecursionError, ENAMETOOLONG) or hid data; refused at upload, in one line that names
    the member and the limit."""
    repo = make_repo(shipyard, tmp_path, f"sqlite:///{tmp_path / 'repo.db'}")
    archive = _hostile_archive(tmp_path / case, member, appended=appended)
    result = repo.run("upload", str(archive), check=False)
    assert result.returncode == 1, result.output
    assert result.stderr.startswith("shipyard: error: hello-1.0.tar.gz: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert expect in result.stderr
    assert [p for p in (repo.root / "incoming").iterdir() if p.name != "rejected"] == []


def test_promote(shipyard: Shipyard, tmp_path: Path, db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url, "stable=1", "security=0", "testing=1")
    repo.upload(repo.archive("hello", "1.0"), channel="testing")
    repo.upload(repo.archive("hello", "1.1"), channel="testing")
    repo.publish()
    _release, indexes = repo.verify_current()
    assert coords(indexes["testing"]) == {"org.example:hello:1.0", "org.example:hello:1.1"}
    assert coords(indexes["stable"]) == set()

    result = repo.run("promote", "org.example:hello", "--to", "stable")
    assert "promoted org.example:hello:1.1 to stable" in result.stdout  # newest version
    again = repo.run("promote", "org.example:hello:1.1", "--to", "stable")
    assert "already in stable" in again.stdout
    missing = repo.run("promote", "org.example:nope:1.0", "--to", "stable", check=False)
    assert missing.returncode == 1 and "is not in the repository" in missing.stderr
    bad = repo.run("promote", "org.example:hello:1.0", "--to", "nightly", check=False)
    assert bad.returncode == 1 and "unknown channel 'nightly'" in bad.stderr

    before = repo.current_serial()
    out = repo.publish_json()
    assert [p["channels"] for p in out["passes"]] == [["stable"]]
    release, indexes = repo.verify_current()
    assert release.serial == before + 1
    assert coords(indexes["stable"]) == {"org.example:hello:1.1"}
    # The unchanged channels are the very same files (hard links), not rewritten copies.
    old = repo.root / "generations" / str(before) / "dists/testing/index.json"
    new = repo.root / "generations" / str(release.serial) / "dists/testing/index.json"
    assert old.stat().st_ino == new.stat().st_ino


def test_activity_check(shipyard: Shipyard, tmp_path: Path, db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    none = repo.run("activity", "--check", "publish", "--max-age", "1h", check=False)
    assert none.returncode == 1
    assert none.stderr == "shipyard: error: publish: no successful run recorded\n"
    repo.publish()
    fine = repo.run("activity", "--check", "publish", "--max-age", "1h")
    assert fine.stdout.startswith("publish: last success at ")
    stale = repo.run("activity", "--check", "publish", "--max-age", "0s", check=False)
    assert stale.returncode == 1
    assert "older than 0s" in stale.stderr
    as_json = repo.run("activity", "--check", "publish", "--max-age", "0s", "--json",
                       check=False)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["ok"] is False
    bad = repo.run("activity", "--check", "publish", "--max-age", "soon", check=False)
    assert bad.returncode == 2 and "invalid age" in bad.stderr
    table = repo.run("activity").stdout
    assert "publish" in table and "success" in table


def test_release_is_signed_and_fresh(shipyard: Shipyard, tmp_path: Path, db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    repo.upload(repo.archive("hello", "1.0"))
    repo.publish()
    release, _ = repo.verify_current()
    base = repo.root / "current"
    data = (base / "release.json").read_bytes()
    tampered = data.replace(b'"serial"', b'"serial" ', 1)
    with pytest.raises(VerificationError):
        verify_detached(tampered, (base / "release.json.sig").read_bytes(),
                        [load_public_key(repo.public_key)], "release")
    release.check_fresh("release")
    created, valid_until = release.created, release.valid_until
    assert valid_until > created
