"""``pkg info``: one package described from wherever it is known.

An installed coordinate is described from its install record; anything else from the
configured repository's verified channel index (saying whether the index was signed by a
trusted key or read unsigned); a local archive path from its checked manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.config import Settings
from shipyard.coords import PackageCoord, version_key
from shipyard.pkg import store


def describe(settings: Settings, target: str) -> dict[str, Any]:
    from shipyard.pkg.install import is_archive_path

    if is_archive_path(target):
        return _describe_archive(settings, Path(target))
    coord = PackageCoord.parse(target)
    if coord.version is not None:
        record = store.installed_record(settings, coord)
        records = [record] if record is not None else []
    else:
        records = store.installed_versions(settings, coord.group, coord.id)
    if records:
        record = records[-1]
        data = {"coordinate": str(record.coord), "status": "installed"}
        data.update(record.summary_dict())
        data["coordinate"] = str(record.coord)
        if len(records) > 1:
            data["installed_versions"] = [r.coord.version for r in records]
        return data
    return _describe_entry(settings, coord)


def _describe_entry(settings: Settings, coord: PackageCoord) -> dict[str, Any]:
    from shipyard.pkg.install import repository_client
    from shipyard.pkg.resolve import pick

    client = repository_client(settings)
    with client:
        index = client.index()
        entry = pick(index, coord)
        versions = sorted(index.versions_of(coord.group, coord.id), key=version_key)
        signature = (f"verified (key {client.signed_by})" if client.signed_by
                     else "NOT verified (no repo.key; repo.trust = unsigned)")
        return {
            "coordinate": str(entry.coord),
            "status": "not installed",
            "summary": entry.summary,
            "maintainer": entry.maintainer,
            "requires": list(entry.requires),
            "service": entry.service,
            "size": entry.size,
            "sha256": entry.sha256,
            "url": client.location(entry.filename),
            "channel": client.channel,
            "serial": index.serial,
            "signature": signature,
            "versions": versions,
            **({"warnings": list(client.warnings)} if client.warnings else {}),
        }


def _describe_archive(settings: Settings, archive: Path) -> dict[str, Any]:
    from shipyard.errors import UsageError
    from shipyard.formats.archive import ArchiveReader, Limits

    if not archive.is_file():
        raise UsageError(f"{archive}: no such archive file")
    with ArchiveReader(archive, Limits.from_settings(settings)) as reader:
        files = 0
        for _member, _info, data in reader.members():
            if data is not None:
                files += 1
                while data.read(1 << 20):
                    pass
        manifest = reader.finish()
    return {
        "coordinate": str(manifest.coord),
        "status": "archive",
        "summary": manifest.summary,
        "maintainer": manifest.maintainer,
        "requires": [str(r) for r in manifest.requires],
        "service": manifest.service is not None,
        "size": reader.total_bytes,
        "files": files,
        "sha256": reader.archive_sha256,
        "path": str(archive.absolute()),
        "signature": "none (local archive)",
    }
