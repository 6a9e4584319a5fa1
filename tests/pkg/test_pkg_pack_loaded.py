"""``pack_directory`` given the manifest its caller has loaded already (the farm worker's
case) packs exactly what ``pkg pack`` packs from the same directory."""

from __future__ import annotations

from pathlib import Path

from pkgkit import make_source, manifest_text

from conftest import Shipyard
from shipyard.manifest import load_manifest
from shipyard.pkg.pack import pack_directory


def test_a_loaded_manifest_packs_the_same_bytes(shipyard: Shipyard, tmp_path: Path) -> None:
    src = make_source(tmp_path, "loaded", "1.0", files={"lib/a.txt": b"a\n"})
    (src / "shipyard.toml").write_text(manifest_text(
        "loaded", "1.0",
        build="cp -r . $SHIPYARD_DESTDIR && echo built > $SHIPYARD_DESTDIR/built.txt"))
    cli = Path(shipyard.run("pkg", "pack", str(src), "--out", str(tmp_path / "cli"))
               .stdout.strip())
    given = pack_directory(src, tmp_path / "given", manifest=load_manifest(src),
                           durable=False)
    assert given.name == cli.name == "loaded-1.0.tar.gz"
    assert given.read_bytes() == cli.read_bytes()
