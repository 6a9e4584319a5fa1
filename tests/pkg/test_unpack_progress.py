"""The unpack bar moves by bytes (issue 13 item 7): a package whose payload is one large
file used to show the bar frozen at 0 until the end, because it advanced every 64 files."""

from __future__ import annotations

import random
from pathlib import Path

from kit.manifest import write_manifest
from shipyard.formats.archive import ArchiveReader
from shipyard.pkg.extract import extract
from shipyard.pkg.pack import pack_directory
from shipyard.pkg.progress import ByteProgress


class Watched(ByteProgress):
    """The real bar, remembering every position it showed."""

    def __init__(self, label: str, total: int) -> None:
        super().__init__(label, total)
        self.positions: list[int] = []

    def update(self, completed: int) -> None:
        super().update(completed)
        if not self.positions or self.positions[-1] != self.shown:
            self.positions.append(self.shown)


def test_one_large_file_moves_the_bar(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_manifest(src, "org.example", "big", "1.0")
    # Incompressible, so the compressed bytes the bar follows are as many as the file's.
    (src / "blob.bin").write_bytes(random.Random(13).randbytes(12 << 20))
    archive = pack_directory(src, tmp_path / "out")
    size = archive.stat().st_size
    bar = Watched("unpacking org.example:big:1.0 :six: [/etc]", size)
    staging = tmp_path / "staging"
    staging.mkdir()
    try:
        with ArchiveReader(archive) as reader:
            extract(reader, staging, progress=bar)
            reader.finish()
    finally:
        bar.close()
    assert (staging / "blob.bin").stat().st_size == 12 << 20
    inside = [p for p in bar.positions if 0 < p < size * 0.9]
    assert len(inside) >= 10, bar.positions  # it moved while the one file was written
