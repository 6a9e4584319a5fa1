"""Trees too deep for recursion and names too long for the file system (issue 14, items 9
and 10): the archive reader refuses them (see the hostile corpus); trees that exist anyway
(left by older versions, or made by hand) never stop the package manager."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from pkgkit import (
    GROUP,
    deep_tree,
    file_member,
    good_manifest,
    gz,
    make_source,
    removing_deep_trees,
    tree_entries,
)

from conftest import Shipyard


def _archive(base: Path, ident: str = "hello", version: str = "1.0") -> Path:
    from shipyard.pkg.pack import pack_directory

    src = make_source(base / "src", ident, version)
    return pack_directory(src, base / "out")


def _installed(shipyard: Shipyard) -> list[str]:
    import json

    return [p["coordinate"] for p in json.loads(shipyard.run("pkg", "list", "--json").stdout)]


def test_a_deep_leftover_is_swept(shipyard: Shipyard, tmp_path: Path) -> None:
    """A tombstone 1,100 levels deep (an uninstall that died in shutil.rmtree) is removed by
    the next install's sweep instead of failing every install with RecursionError."""
    leftover = shipyard.home / "software" / "org" / "test" / "old" / ".1.0.tombstone-dead"
    with removing_deep_trees(leftover):
        deep_tree(leftover, 1100)
        result = shipyard.run("pkg", "install", str(_archive(tmp_path)))
        assert "Traceback" not in result.output and "warning" not in result.stderr
        assert not leftover.exists()
        assert _installed(shipyard) == [f"{GROUP}:hello:1.0"]


def test_verify_and_uninstall_a_deep_package(shipyard: Shipyard, tmp_path: Path) -> None:
    """A package dir holding a tree 1,100 levels deep (installed before the depth cap):
    verify reports it, uninstall removes it."""
    shipyard.run("pkg", "install", str(_archive(tmp_path)))
    software = shipyard.home / "software"
    pkg_dir = software / "org" / "test" / "hello" / "1.0"
    with removing_deep_trees(software):
        deep_tree(pkg_dir / "deep", 1100)
        verify = shipyard.run("pkg", "verify", "--json", check=False)
        assert verify.returncode == 1, verify.output
        assert "internal error" not in verify.stderr and "Traceback" not in verify.output
        assert '"deep/"' in verify.stdout
        assert f'"deep/{"d/" * 1100}f"' in verify.stdout
        shipyard.run("pkg", "uninstall", f"{GROUP}:hello:1.0")
        assert tree_entries(software) == []


def test_a_leftover_that_cannot_be_removed_is_reported(shipyard: Shipyard,
                                                       tmp_path: Path) -> None:
    """An immutable file in a leftover staging dir (even root cannot delete it): one warning
    line names it, and the install of another package goes on."""
    leftover = shipyard.home / "software" / "org" / "test" / "stuck" / ".1.0.staging-stuck1"
    leftover.mkdir(parents=True)
    stuck = leftover / "stuck.bin"
    stuck.write_bytes(b"x")
    subprocess.run(["chattr", "+i", str(stuck)], check=True)
    try:
        archive = _archive(tmp_path)
        for _attempt in range(2):  # every install reports it again, none fails on it
            result = shipyard.run("pkg", "install", str(archive))
            warnings = [line for line in result.stderr.splitlines() if "warning" in line]
            assert len(warnings) == 1, result.stderr
            assert warnings[0].startswith(f"shipyard: warning: cannot remove the leftover "
                                          f"{leftover}: "), warnings[0]
            assert _installed(shipyard) == [f"{GROUP}:hello:1.0"]
            shipyard.run("pkg", "uninstall", f"{GROUP}:hello:1.0")
        assert stuck.exists()
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)


def test_a_path_too_long_for_this_software_root(shipyard: Shipyard, tmp_path: Path) -> None:
    """A member path within the archive caps (2,813 bytes) below a software root 1,300
    bytes long would exceed PATH_MAX: refused before anything is written, in one line,
    instead of ``OSError: [Errno 36]`` half-way."""
    software = tmp_path.joinpath(*["s" * 250] * 5)
    member = "/".join(["m" * 200] * 14)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, body in (good_manifest("long"), file_member(member, b"x")):
            tar.addfile(info, io.BytesIO(body or b""))
    archive = tmp_path / "long-1.0.tar.gz"
    archive.write_bytes(gz(raw.getvalue()))
    result = shipyard.run("pkg", "install", str(archive), check=False,
                          env={"SHIPYARD_PATHS_SOFTWARE": str(software)})
    assert result.returncode == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shipyard: error: long-1.0.tar.gz: a member path of 2813 bytes "
                               "does not fit below "), lines[0]
    assert "paths are limited to 4095 bytes" in lines[0]
    assert tree_entries(software) == []
