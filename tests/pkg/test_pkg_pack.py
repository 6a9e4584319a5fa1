"""``pkg pack``: reproducible archives, the [build] step, and what cannot be packed."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest
from pkgkit import make_source, manifest_text

from conftest import EXAMPLES, Shipyard, copy_example


def _pack(shipyard: Shipyard, src: Path, out: Path, *extra: str,
          env: dict[str, str] | None = None) -> Path:
    result = shipyard.run("pkg", "pack", str(src), "--out", str(out), *extra, env=env)
    return Path(result.stdout.strip())


@pytest.mark.parametrize("flag", [(), ("--zstd",)], ids=["gzip", "zstd"])
def test_pack_twice_gives_the_same_bytes(shipyard: Shipyard, tmp_path: Path,
                                         flag: tuple[str, ...]) -> None:
    src = make_source(tmp_path, "repro", "1.0", files={"lib/a.py": b"A = 1\n",
                                                        "lib/b/c.txt": b"c" * 5000})
    first = _pack(shipyard, src, tmp_path / "one", *flag)
    second = _pack(shipyard, src, tmp_path / "two", *flag)
    assert first.name == ("repro-1.0.tar.zst" if flag else "repro-1.0.tar.gz")
    assert first.read_bytes() == second.read_bytes()

    # Touch every mtime and loosen group bits: neither may change a byte.
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            os.utime(path, (1_234_567_890, 1_234_567_890))
            path.chmod(path.stat().st_mode | 0o020)
    third = _pack(shipyard, src, tmp_path / "three", *flag)
    assert third.read_bytes() == first.read_bytes()


def test_archive_members_are_normalised(shipyard: Shipyard, tmp_path: Path) -> None:
    src = make_source(tmp_path, "norm", "2.0", files={"z/last.txt": b"z", "a/first.txt": b"a"})
    (src / "a" / "first.txt").chmod(0o600)
    archive = _pack(shipyard, src, tmp_path / "out")
    raw = archive.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert raw[3] & 0x08 == 0, "gzip header must not carry a file name"
    assert raw[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "shipyard.toml"
    assert names[1:] == sorted(names[1:], key=lambda n: n.split("/"))
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == 0
        assert member.mode in (0o755, 0o644), (member.name, oct(member.mode))
    modes = {m.name: m.mode for m in members}
    assert modes["bin/run"] == 0o755
    assert modes["a/first.txt"] == 0o644
    assert modes["a"] == 0o755


def test_source_date_epoch_sets_member_mtimes(shipyard: Shipyard, tmp_path: Path) -> None:
    src = make_source(tmp_path, "epoch", "1.0")
    archive = _pack(shipyard, src, tmp_path / "out", env={"SOURCE_DATE_EPOCH": "1700000000"})
    with tarfile.open(archive) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1_700_000_000}


def test_pack_skips_vcs_and_bytecode(shipyard: Shipyard, tmp_path: Path) -> None:
    src = make_source(tmp_path, "skip", "1.0", files={
        ".git/HEAD": b"ref: refs/heads/main\n", "lib/__pycache__/m.cpython-311.pyc": b"x",
        "lib/m.py": b"pass\n", "lib/old.pyc": b"x"})
    archive = _pack(shipyard, src, tmp_path / "out")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "lib/m.py" in names
    assert not any(".git" in n or "__pycache__" in n or n.endswith(".pyc") for n in names)


def test_pack_json_reports_sha256(shipyard: Shipyard, tmp_path: Path) -> None:
    src = make_source(tmp_path, "js", "1.0")
    result = shipyard.run("pkg", "pack", str(src), "--out", str(tmp_path / "out"), "--json")
    data = json.loads(result.stdout)
    path = Path(data["path"])
    assert data["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert data["size"] == path.stat().st_size


def test_build_command_fills_destdir(shipyard: Shipyard, tmp_path: Path) -> None:
    src = copy_example("hello", tmp_path)
    result = shipyard.run("pkg", "pack", str(src), "--out", str(tmp_path / "out"))
    archive = Path(result.stdout.strip())
    assert archive.name == "hello-1.0.0.tar.gz"
    assert "building hello into" in result.stderr  # the build's output is streamed
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"shipyard.toml", "bin", "bin/hello", "share", "share/doc",
                            "share/doc/hello", "share/doc/hello/README.md"}
    assert members["bin/hello"].mode == 0o755
    again = _pack(shipyard, src, tmp_path / "again")
    assert again.read_bytes() == archive.read_bytes()


def test_build_failure_names_the_exit_code(shipyard: Shipyard, tmp_path: Path) -> None:
    src = tmp_path / "broken"
    src.mkdir()
    (src / "shipyard.toml").write_text(manifest_text(
        "broken", "1.0", build="echo compiling; echo the compiler broke >&2; exit 3"))
    result = shipyard.run("pkg", "pack", str(src), "--out", str(tmp_path / "out"), check=False)
    assert result.returncode == 1
    assert "exited with code 3" in result.stderr
    assert "the compiler broke" in result.stderr
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def test_build_may_not_rename_the_package(shipyard: Shipyard, tmp_path: Path) -> None:
    src = tmp_path / "renamer"
    src.mkdir()
    (src / "other.toml").write_text(manifest_text("someone-else", "1.0"))
    (src / "shipyard.toml").write_text(manifest_text(
        "renamer", "1.0", build="cp other.toml $SHIPYARD_DESTDIR/shipyard.toml"))
    result = shipyard.run("pkg", "pack", str(src), "--out", str(tmp_path / "out"), check=False)
    assert result.returncode == 1, result.output
    assert "names org.test:someone-else:1.0" in result.stderr


def test_symlinks_are_refused(shipyard: Shipyard, tmp_path: Path) -> None:
    src = make_source(tmp_path, "links", "1.0")
    (src / "share" / "alias").symlink_to("data.txt")
    result = shipyard.run("pkg", "pack", str(src), "--out", str(tmp_path / "out"), check=False)
    assert result.returncode == 1
    assert "alias: symlinks cannot be packed" in result.stderr


def test_bad_manifest_names_file_and_key(shipyard: Shipyard, tmp_path: Path) -> None:
    src = make_source(tmp_path, "bad", "1.0")
    text = (src / "shipyard.toml").read_text().replace("[package]", "[package]\nversoin = 1")
    (src / "shipyard.toml").write_text(text)
    result = shipyard.run("pkg", "pack", str(src), check=False)
    assert result.returncode == 1
    assert f"{src / 'shipyard.toml'}: package.versoin: unknown key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_examples_pack(shipyard: Shipyard, tmp_path: Path) -> None:
    for name in ("hello", "hello-lib"):
        archive = _pack(shipyard, EXAMPLES / name, tmp_path / "out")
        assert archive.exists()


def test_pack_refuses_names_no_node_could_install(shipyard: Shipyard, tmp_path: Path) -> None:
    """The name limits of the archive reader (issue 14) hold at pack time too, in one line,
    also for a tree deeper than a recursive walk could go."""
    from pkgkit import deep_tree, removing_deep_trees

    long_path = make_source(tmp_path / "a", "longpath", "1.0",
                            files={"/".join(["p" * 250] * 13): b"x"})
    deep = make_source(tmp_path / "b", "deep", "1.0")
    with removing_deep_trees(deep):
        deep_tree(deep / "share", 1100)
        _refuse_both(shipyard, tmp_path, long_path, deep)


def _refuse_both(shipyard: Shipyard, tmp_path: Path, long_path: Path, deep: Path) -> None:
    for src, expect in ((long_path, "has a path of 3262 bytes (at most 3072 allowed)"),
                        (deep, "levels deep (at most 128 allowed)")):
        result = shipyard.run("pkg", "pack", str(src), "--out", str(tmp_path / "out"),
                              check=False)
        assert result.returncode == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"shipyard: error: {src}: member "), \
            result.stderr
        assert expect in lines[0]
