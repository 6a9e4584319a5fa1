"""Shared pieces of the repository tests: package archives, a repository driven through the
real CLI, and a verifier that checks a generation the way a node would."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from conftest import Result, Shipyard
from kit.manifest import write_manifest
from kit.wait import wait_until  # noqa: F401  (re-exported to the tests)
from shipyard.formats.index import RELEASE_NAME, SIGNATURE_NAME, ChannelIndex, Release
from shipyard.formats.signing import load_public_key, verify_detached
from shipyard.pkg.pack import pack_directory


def make_archive(workdir: Path, ident: str, version: str, *, group: str = "org.example",
                 summary: str = "", payload: str = "", compression: str = "gz",
                 requires: tuple[str, ...] = ()) -> Path:
    """A valid package archive built by the package stage's own packer (reproducible, so
    the same arguments give the same bytes and another ``payload`` gives other bytes)."""
    tag = hashlib.sha256(f"{summary}\0{payload}\0{compression}".encode()).hexdigest()[:10]
    src = workdir / f"src-{group}-{ident}-{version}-{tag}"
    src.mkdir(parents=True, exist_ok=True)
    write_manifest(src, group, ident, version, summary=summary or f"{ident} {version}",
                   requires=list(requires) or None)
    (src / "README").write_text(payload or f"{ident} {version}\n")
    out = workdir / f"out-{src.name}"
    return pack_directory(src, out, compression=compression)


@dataclass
class RepoUnderTest:
    shipyard: Shipyard
    root: Path
    db_url: str
    workdir: Path

    def run(self, verb: str, *args: str, check: bool = True, **kwargs) -> Result:
        return self.shipyard.run("repo", verb, *args, "--repo", str(self.root),
                                 check=check, **kwargs)

    @property
    def public_key(self) -> Path:
        return self.shipyard.home / "state" / "keys" / "repository.key.pub"

    def archive(self, ident: str, version: str, **kwargs) -> Path:
        return make_archive(self.workdir, ident, version, **kwargs)

    def upload(self, archive: Path, channel: str | None = None) -> Result:
        extra = ("--channel", channel) if channel else ()
        return self.run("upload", str(archive), *extra)

    def publish(self, *args: str, check: bool = True) -> Result:
        return self.run("publish", *args, check=check)

    def publish_json(self, *args: str) -> dict:
        return json.loads(self.run("publish", "--json", *args).stdout)

    def current_serial(self) -> int | None:
        try:
            return int(Path(os.readlink(self.root / "current")).name)
        except FileNotFoundError:
            return None

    def hook(self, kind: str, name: str, script: str) -> Path:
        """Install an executable hook in hooks/<kind>-publication.d/."""
        path = self.root / "hooks" / f"{kind}-publication.d" / name
        path.write_text(script)
        path.chmod(0o755)
        return path

    def verify_current(self) -> tuple[Release, dict[str, ChannelIndex]]:
        serial = self.current_serial()
        assert serial is not None, "nothing published"
        return verify_generation(self.root, serial, self.public_key)


def make_repo(shipyard: Shipyard, tmp_path: Path, db_url: str, *channels: str,
              keygen: bool = True) -> RepoUnderTest:
    root = tmp_path / "repo"
    args = ["repo", "init", str(root), "--db", db_url]
    for spec in channels:
        args += ["--channel", spec]
    shipyard.run(*args)
    repo = RepoUnderTest(shipyard, root, db_url, tmp_path / "work")
    repo.workdir.mkdir(exist_ok=True)
    if keygen:
        repo.run("keygen")
    return repo


def verify_generation(root: Path, serial: int, public_key: Path,
                      check_pool: bool = True) -> tuple[Release, dict[str, ChannelIndex]]:
    """Everything a node checks: signature, then every index against the release, then
    every archive's size against its index entry."""
    base = root / "generations" / str(serial)
    data = (base / RELEASE_NAME).read_bytes()
    verify_detached(data, (base / SIGNATURE_NAME).read_bytes(), [load_public_key(public_key)],
                    str(base / RELEASE_NAME))
    release = Release.from_bytes(data, str(base))
    assert release.serial == serial
    indexes = {}
    for name, ref in release.channels.items():
        index = release.check_index(name, (base / ref.path).read_bytes(), f"{base}:{name}")
        assert len(index.packages) == ref.count
        if check_pool:
            for entry in index.packages:
                assert (root / entry.filename).stat().st_size == entry.size, entry.filename
        indexes[name] = index
    return release, indexes


def coords(index: ChannelIndex) -> set[str]:
    return {str(entry.coord) for entry in index.packages}
