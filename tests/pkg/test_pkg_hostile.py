"""A corpus of hostile archives: every one is refused with one clear line, and nothing is
left in the software root (nor outside it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pkgkit import Hostile, hostile_corpus, tree_entries

from conftest import Shipyard
from shipyard.errors import ArchiveError
from shipyard.formats.archive import inspect_archive

CORPUS = hostile_corpus()


def _write(case: Hostile, base: Path) -> Path:
    directory = base / case.name
    directory.mkdir()
    path = directory / case.filename
    path.write_bytes(case.build())
    return path


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 15
    assert len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_install_refuses_hostile_archive(shipyard: Shipyard, tmp_path: Path,
                                         case: Hostile) -> None:
    archive = _write(case, tmp_path)
    result = shipyard.run("pkg", "install", str(archive), check=False, env=case.env)
    assert result.returncode == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shipyard: error: "), lines[0]
    assert case.expect in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert tree_entries(shipyard.home / "software") == []
    assert not Path("/tmp/shipyard-evil").exists()


def test_inspect_archive_refuses_the_corpus_in_process(tmp_path: Path) -> None:
    """The library entry point the repository's upload uses gives the same verdicts."""
    for case in CORPUS:
        archive = _write(case, tmp_path)
        limits = {"max_members": int(case.env.get("SHIPYARD_PKG_MAX_MEMBERS", "100000"))}
        with pytest.raises(ArchiveError) as info:
            inspect_archive(archive, **limits)
        assert case.expect in info.value.message, (case.name, info.value.message)
        assert "\n" not in info.value.message


def test_info_refuses_hostile_archive(shipyard: Shipyard, tmp_path: Path) -> None:
    case = next(c for c in CORPUS if c.name == "symlink-escape")
    archive = _write(case, tmp_path)
    result = shipyard.run("pkg", "info", str(archive), check=False)
    assert result.returncode == 1
    assert "is a symlink" in result.stderr


def test_large_archive_refused_midway(shipyard: Shipyard, tmp_path: Path) -> None:
    """A large archive is written by the helper process; a bad member late in it still
    leaves nothing behind, and no helper process keeps running."""
    import os

    import psutil
    from pkgkit import file_member, good_manifest, gz, tar_bytes

    from shipyard.pkg.extract import CHILD_MIN

    blobs = [file_member(f"blob{i}.bin", os.urandom(1 << 20)) for i in range(10)]
    data = gz(tar_bytes([good_manifest(), *blobs, file_member("../evil", b"x")]), level=1)
    assert len(data) >= CHILD_MIN
    directory = tmp_path / "large"
    directory.mkdir()
    archive = directory / "evil-1.0.tar.gz"
    archive.write_bytes(data)
    result = shipyard.run("pkg", "install", str(archive), check=False)
    assert result.returncode == 1
    assert "'..' path component" in result.stderr
    assert tree_entries(shipyard.home / "software") == []
    writers = [p for p in psutil.process_iter(["cmdline"])
               if any("_writer_child.py" in part for part in (p.info["cmdline"] or []))
               and str(shipyard.home) in " ".join(p.info["cmdline"] or [])]
    assert writers == []
