"""Installing local archives (``pkg install ./x-1.0.tar.gz``), uninstall, list, info,
verify, requirements, concurrency and the sweep of leftovers."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from pkgkit import GROUP, make_source, pack, tree_entries

from conftest import Shipyard
from shipyard.config import load_settings
from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.svc import registry


def _pkg_dir(shipyard: Shipyard, ident: str, version: str) -> Path:
    return shipyard.home / "software" / "org" / "test" / ident / version


def _archive(shipyard: Shipyard, tmp_path: Path, ident: str, version: str, **kwargs) -> Path:
    src = make_source(tmp_path / "src", ident, version, **kwargs)
    return pack(shipyard, src, tmp_path / "out")


def test_install_list_info_uninstall(shipyard: Shipyard, tmp_path: Path) -> None:
    archive = _archive(shipyard, tmp_path, "tool", "1.0", files={"lib/x.bin": bytes(range(256))})
    result = shipyard.run("pkg", "install", str(archive))
    target = _pkg_dir(shipyard, "tool", "1.0")
    assert f"installed {GROUP}:tool:1.0 in {target}" in result.stdout
    run = target / "bin" / "run"
    assert run.stat().st_mode & 0o777 == 0o755
    assert (target / "share" / "data.txt").stat().st_mode & 0o777 == 0o644
    assert subprocess.run([str(run)], capture_output=True, text=True).stdout == "tool 1.0\n"

    record = json.loads((target / ".shipyard" / "installed.json").read_text())
    assert record["coordinate"] == f"{GROUP}:tool:1.0"
    assert record["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert set(record["files"]) == {"shipyard.toml", "bin/run", "share/data.txt", "lib/x.bin"}
    for name, entry in record["files"].items():
        assert entry["sha256"] == hashlib.sha256((target / name).read_bytes()).hexdigest()
    assert record["files"]["bin/run"]["executable"] is True

    listed = json.loads(shipyard.run("pkg", "list", "--json").stdout)
    assert [(p["coordinate"], p["file_count"]) for p in listed] == [(f"{GROUP}:tool:1.0", 4)]
    table = shipyard.run("pkg", "list").stdout
    assert f"{GROUP}:tool" in table and "1.0" in table

    info = json.loads(shipyard.run("pkg", "info", f"{GROUP}:tool", "--json").stdout)
    assert info["status"] == "installed" and info["path"] == str(target)

    again = shipyard.run("pkg", "install", str(archive))
    assert "already installed" in again.stdout

    gone = shipyard.run("pkg", "uninstall", f"{GROUP}:tool:1.0")
    assert f"uninstalled {GROUP}:tool:1.0" in gone.stdout
    assert tree_entries(shipyard.home / "software") == []
    assert json.loads(shipyard.run("pkg", "list", "--json").stdout) == []


def test_requirements_must_be_met(shipyard: Shipyard, tmp_path: Path) -> None:
    lib2 = _archive(shipyard, tmp_path, "lib", "2.0")
    lib1 = _archive(shipyard, tmp_path, "lib", "1.5")
    app = _archive(shipyard, tmp_path, "app", "1.0", requires=[f"{GROUP}:lib:>=1.0,<2"])

    refused = shipyard.run("pkg", "install", str(app), check=False)
    assert refused.returncode == 1
    assert f"requires {GROUP}:lib:>=1.0,<2, which is not installed" in refused.stderr
    shipyard.run("pkg", "install", str(lib2))
    refused = shipyard.run("pkg", "install", str(app), check=False)
    assert refused.returncode == 1, "lib 2.0 does not satisfy <2"
    shipyard.run("pkg", "install", str(lib1))
    shipyard.run("pkg", "install", str(app))
    assert (_pkg_dir(shipyard, "app", "1.0") / ".shipyard" / "installed.json").exists()

    # Uninstalling what app needs warns, and names the dependent.
    result = shipyard.run("pkg", "uninstall", f"{GROUP}:lib:1.5")
    assert f"{GROUP}:app:1.0 requires {GROUP}:lib:>=1.0,<2" in result.stderr
    # group:id with two versions left would be ambiguous; one left is fine.
    shipyard.run("pkg", "uninstall", f"{GROUP}:lib")


def test_ambiguous_and_unknown_uninstall(shipyard: Shipyard, tmp_path: Path) -> None:
    for version in ("1.0", "1.1"):
        shipyard.run("pkg", "install", str(_archive(shipyard, tmp_path, "twin", version)))
    result = shipyard.run("pkg", "uninstall", f"{GROUP}:twin", check=False)
    assert result.returncode == 2
    assert "several installed versions (1.0, 1.1)" in result.stderr
    result = shipyard.run("pkg", "uninstall", f"{GROUP}:nope:1.0", check=False)
    assert result.returncode == 1
    assert "is not installed" in result.stderr
    result = shipyard.run("pkg", "uninstall", "../etc:x:1", check=False)
    assert result.returncode == 2
    assert "invalid group" in result.stderr


def test_verify_reports_changes(shipyard: Shipyard, tmp_path: Path) -> None:
    shipyard.run("pkg", "install", str(_archive(shipyard, tmp_path, "ver", "1.0")))
    target = _pkg_dir(shipyard, "ver", "1.0")
    assert shipyard.run("pkg", "verify").stdout.strip() == f"{GROUP}:ver:1.0: ok"

    (target / "share" / "data.txt").write_text("tampered\n")
    (target / "bin" / "run").unlink()
    (target / "share" / "extra").write_text("dropped in\n")
    result = shipyard.run("pkg", "verify", check=False)
    assert result.returncode == 1
    assert "modified share/data.txt" in " ".join(result.stdout.split())
    assert "missing bin/run" in " ".join(result.stdout.split())
    assert "added share/extra" in " ".join(result.stdout.split())
    data = json.loads(shipyard.run("pkg", "verify", f"{GROUP}:ver:1.0", "--json",
                                   check=False).stdout)
    assert data == [{"coordinate": f"{GROUP}:ver:1.0", "path": str(target), "ok": False,
                     "modified": ["share/data.txt"], "missing": ["bin/run"],
                     "added": ["share/extra"]}]


def test_verify_notices_a_lost_exec_bit(shipyard: Shipyard, tmp_path: Path) -> None:
    shipyard.run("pkg", "install", str(_archive(shipyard, tmp_path, "mode", "1.0")))
    (_pkg_dir(shipyard, "mode", "1.0") / "bin" / "run").chmod(0o644)
    result = shipyard.run("pkg", "verify", f"{GROUP}:mode", check=False)
    assert result.returncode == 1
    assert "modified bin/run" in " ".join(result.stdout.split())


def test_uninstall_refused_while_an_instance_uses_it(shipyard: Shipyard, tmp_path: Path) -> None:
    shipyard.run("pkg", "install", str(_archive(shipyard, tmp_path, "svc", "1.0")))
    settings = load_settings(home=shipyard.home, env={})
    registry.save(settings, registry.Registration(
        coordinate=ServiceCoord.parse("1.svc.prod.trd"),
        package=PackageCoord.parse(f"{GROUP}:svc:1.0"), user="nobody"))
    result = shipyard.run("pkg", "uninstall", f"{GROUP}:svc:1.0", check=False)
    assert result.returncode == 1
    assert "used by registered instance(s) 1.svc.prod.trd" in result.stderr
    assert "--force" in result.stderr
    assert (_pkg_dir(shipyard, "svc", "1.0") / "bin" / "run").exists()

    forced = shipyard.run("pkg", "uninstall", f"{GROUP}:svc:1.0", "--force")
    assert "1.svc.prod.trd" in forced.stderr  # a warning that says what was overridden
    assert not _pkg_dir(shipyard, "svc", "1.0").exists()


def test_local_archive_needs_unsigned_when_a_key_is_configured(shipyard: Shipyard,
                                                               tmp_path: Path) -> None:
    archive = _archive(shipyard, tmp_path, "loc", "1.0")
    key = tmp_path / "repo.pub"
    from shipyard.formats.signing import generate_key

    key.write_text(generate_key().public.to_text())
    env = {"SHIPYARD_REPO_KEY": str(key)}
    result = shipyard.run("pkg", "install", str(archive), check=False, env=env)
    assert result.returncode == 1
    assert "repo.key is configured; pass --unsigned" in result.stderr
    assert tree_entries(shipyard.home / "software") == []
    shipyard.run("pkg", "install", str(archive), "--unsigned", env=env)
    assert _pkg_dir(shipyard, "loc", "1.0").is_dir()


def test_concurrent_installs_of_one_coordinate(shipyard: Shipyard, tmp_path: Path) -> None:
    files = {f"data/f{i}.bin": bytes([i % 256]) * 20_000 for i in range(300)}
    archive = _archive(shipyard, tmp_path, "race", "1.0", files=files)
    procs = [shipyard.popen("pkg", "install", str(archive), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    joined = "".join(out for out, _err in outputs)
    assert joined.count("installed org.test:race:1.0 in") == 1
    assert joined.count("is already installed") == 2
    parent = _pkg_dir(shipyard, "race", "1.0").parent
    assert sorted(p.name for p in parent.iterdir()) == ["1.0"]
    assert shipyard.run("pkg", "verify").returncode == 0


def test_leftovers_are_swept(shipyard: Shipyard, tmp_path: Path) -> None:
    shipyard.run("pkg", "install", str(_archive(shipyard, tmp_path, "one", "1.0")))
    parent = _pkg_dir(shipyard, "one", "1.0").parent
    staging = parent / ".2.0.staging-abc123"
    tomb = parent / ".1.0.tombstone-0badf00d"
    for leftover in (staging, tomb):
        (leftover / "deep").mkdir(parents=True)
        (leftover / "deep" / "file").write_text("half")
    downloads = shipyard.home / "state" / "pkg" / "downloads" / "fetch-xyz"
    downloads.mkdir(parents=True)
    shipyard.run("pkg", "install", str(_archive(shipyard, tmp_path, "two", "1.0")))
    assert not staging.exists() and not tomb.exists() and not downloads.exists()
    assert (parent / "1.0").is_dir()


def test_no_package_inside_another(shipyard: Shipyard, tmp_path: Path) -> None:
    """org.test:foo:1.0 and org.test.foo:1.0:2 map to nested dirs; the second is refused."""
    shipyard.run("pkg", "install", str(_archive(shipyard, tmp_path, "foo", "1.0")))
    src = make_source(tmp_path / "nested", "1.0", "2", group="org.test.foo")
    nested = pack(shipyard, src, tmp_path / "nested-out")
    result = shipyard.run("pkg", "install", str(nested), check=False)
    assert result.returncode == 1
    assert "inside the installed package" in result.stderr
    assert shipyard.run("pkg", "verify").returncode == 0


def test_examples_install_with_requires(shipyard: Shipyard, tmp_path: Path) -> None:
    from conftest import EXAMPLES

    out = tmp_path / "out"
    hello = pack(shipyard, EXAMPLES / "hello", out)
    lib = pack(shipyard, EXAMPLES / "hello-lib", out)
    shipyard.run("pkg", "install", str(lib))
    shipyard.run("pkg", "install", str(hello))
    binary = shipyard.home / "software" / "org" / "example" / "hello" / "1.0.0" / "bin" / "hello"
    done = subprocess.run([str(binary), "shipyard"], capture_output=True, text=True)
    assert done.stdout == "hello, shipyard\n", done.stderr


def test_large_archive_through_the_writer_process(shipyard: Shipyard, tmp_path: Path) -> None:
    import os

    from shipyard.pkg.extract import CHILD_MIN

    files = {f"big/f{i}.bin": os.urandom(300_000) for i in range(32)}
    files["huge/one.bin"] = os.urandom(5 << 20)  # streamed in chunks (above SMALL_MAX)
    archive = _archive(shipyard, tmp_path, "large", "1.0", files=files)
    assert archive.stat().st_size >= CHILD_MIN
    shipyard.run("pkg", "install", str(archive))
    target = _pkg_dir(shipyard, "large", "1.0")
    record = json.loads((target / ".shipyard" / "installed.json").read_text())
    for name, body in files.items():
        assert record["files"][name]["sha256"] == hashlib.sha256(body).hexdigest()
        assert (target / name).read_bytes() == body
    assert record["files"]["bin/run"]["executable"] is True
    assert (target / "bin" / "run").stat().st_mode & 0o777 == 0o755
    assert shipyard.run("pkg", "verify").returncode == 0


def test_zstd_archive_installs(shipyard: Shipyard, tmp_path: Path) -> None:
    src = make_source(tmp_path / "src", "zed", "1.0", files={"lib/z.txt": b"z" * 10_000})
    result = shipyard.run("pkg", "pack", str(src), "--out", str(tmp_path / "out"), "--zstd")
    archive = Path(result.stdout.strip())
    assert archive.name == "zed-1.0.tar.zst"
    shipyard.run("pkg", "install", str(archive))
    assert (_pkg_dir(shipyard, "zed", "1.0") / "lib" / "z.txt").read_bytes() == b"z" * 10_000
    assert shipyard.run("pkg", "verify", f"{GROUP}:zed:1.0").returncode == 0
