"""Install and uninstall packages atomically, under one lock.

Install (for each package of the plan, requirements first): fetch the archive to a
temporary file and check its size and sha256 against the signed index → create
``.<version>.staging-<random>`` beside the target → extract with every member checked
(:mod:`shipyard.pkg.extract`) → check the manifest names exactly the coordinate asked for
→ write ``.shipyard/installed.json`` inside the staging dir → make the tree durable →
``rename`` it into place → fsync the parent. A package dir is therefore complete with its
record, or absent.

Every archive of the plan is checked in full (:func:`~shipyard.formats.archive.scan_archive`)
before anything is written, for a local archive and a repository archive alike: a signed
index pins the bytes, not their safety, and checking while extracting let a 100,001-member
archive write 100,000 files before its refusal (issue 14). The extraction then runs the
same checks again as a second wall; it costs a second inflating pass, the price of writing
nothing for a refused archive.

Uninstall refuses while a registered instance uses the package (unless forced), renames
the dir to ``.<version>.tombstone-<random>``, fsyncs, then deletes it. Leftovers of killed
runs are swept on entry, under the install lock, by :func:`shipyard.pkg.store.install_lock`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.config import Settings
from shipyard.coords import PackageCoord, Requirement
from shipyard.errors import ArchiveError, ConfigError, ShipyardError, UsageError
from shipyard.formats.archive import ArchiveReader, Limits, Scan, scan_archive
from shipyard.formats.index import PackageEntry
from shipyard.fsutil import fsync_dir
from shipyard.manifest import Manifest
from shipyard.pkg import store
from shipyard.pkg.extract import extract, make_durable
from shipyard.pkg.progress import ByteProgress
from shipyard.pkg.store import InstalledRecord, list_installed
from shipyard.pkg.verify import verify

if TYPE_CHECKING:
    from shipyard.pkg.client import RepositoryClient

__all__ = ["InstallResult", "UninstallResult", "install", "list_installed", "uninstall",
           "verify"]

Echo = Callable[[str], None]
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.zst")


@dataclass
class InstallResult:
    coord: PackageCoord
    path: Path
    status: str  # "installed" | "already installed"
    source: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"coordinate": str(self.coord), "path": str(self.path), "status": self.status,
                "source": self.source, "warnings": self.warnings}


@dataclass
class UninstallResult:
    coord: PackageCoord
    path: Path
    forced_over: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"coordinate": str(self.coord), "path": str(self.path), "status": "uninstalled",
                "forced_over": self.forced_over, "warnings": self.warnings}


def is_archive_path(target: str) -> bool:
    """A local archive, not a coordinate: coordinates never contain ``/``."""
    return "/" in target or target.endswith(ARCHIVE_SUFFIXES)


def repository_client(settings: Settings) -> RepositoryClient:
    """A :class:`RepositoryClient` for the configured repository and channel."""
    from shipyard.formats.signing import load_public_keys
    from shipyard.pkg.client import RepositoryClient

    url = str(settings.get("repo.url") or "")
    keys = load_public_keys(list(settings.get("repo.key") or []))
    trust = str(settings.get("repo.trust"))
    if trust not in ("signed", "unsigned"):
        raise ConfigError(f"repo.trust = {trust!r}: expected signed or unsigned")
    return RepositoryClient(url, keys=keys, channel=str(settings.get("repo.channel")),
                            state_dir=store.state_dir(settings),
                            allow_unsigned=trust == "unsigned")


def install(settings: Settings, target: str, *, unsigned: bool = False,
            progress: bool = False, echo: Echo | None = None) -> list[InstallResult]:
    """Install ``target`` (``group:id[:version]`` or a local archive path) and what it
    requires; returns one result per package touched, the target last."""
    say = echo or (lambda _line: None)
    if is_archive_path(target):
        results = _install_local(settings, Path(target), unsigned=unsigned, progress=progress,
                                 say=say)
    else:
        coord = PackageCoord.parse(target)
        results = _install_from_repository(settings, coord, progress=progress, say=say)
    return results


def _install_from_repository(settings: Settings, coord: PackageCoord, *, progress: bool,
                             say: Echo) -> list[InstallResult]:
    client = repository_client(settings)
    with client, store.install_lock(settings) as swept:
        results = _from_repository_locked(settings, client, coord, progress=progress, say=say)
    results[-1].warnings[:0] = [*swept, *client.warnings]
    return results


def _from_repository_locked(settings: Settings, client: RepositoryClient, coord: PackageCoord,
                            *, progress: bool, say: Echo) -> list[InstallResult]:
    from shipyard.pkg.resolve import pick, plan

    if coord.version is not None:
        record = store.installed_record(settings, coord)
        if record is not None:
            return [_already(record)]
    index = client.index()
    root = pick(index, coord)
    record = store.installed_record(settings, root.coord)
    if record is not None:
        return [_already(record)]
    steps = plan(index, root, lambda g, i: _installed_versions(settings, g, i))
    return _install_entries(settings, client, steps, progress=progress, say=say)


def _install_entries(settings: Settings, client: RepositoryClient,
                     entries: list[PackageEntry], *, progress: bool,
                     say: Echo) -> list[InstallResult]:
    """Fetch and verify every archive of the plan first, then place them in order: a
    plan with one bad archive installs nothing."""
    downloads = store.downloads_dir(settings)
    downloads.mkdir(parents=True, exist_ok=True)
    done: dict[str, InstallResult] = {}
    fetched: list[tuple[PackageEntry, Path]] = []
    try:
        for entry in entries:
            record = store.installed_record(settings, entry.coord)
            if record is not None:
                done[str(entry.coord)] = _already(record)
                continue
            fetched.append((entry, client.fetch_archive(entry, downloads, progress=progress)))
        limits = Limits.from_settings(settings)
        scans = [_scan(archive, limits, entry.coord) for entry, archive in fetched]
        for (entry, archive), scan in zip(fetched, scans, strict=True):
            result = _place(settings, archive, entry.coord, scan,
                            source=client.location(entry.filename),
                            signed_by=client.signed_by, channel=client.channel,
                            progress=progress)
            say(f"installed {result.coord} in {result.path}")
            done[str(entry.coord)] = result
    finally:
        for _entry, archive in fetched:
            store.remove_tree(archive.parent)
    return [done[str(entry.coord)] for entry in entries]


def _install_local(settings: Settings, archive: Path, *, unsigned: bool, progress: bool,
                   say: Echo) -> list[InstallResult]:
    if not archive.is_file():
        raise UsageError(f"{archive}: no such archive file")
    if settings.get("repo.key") and not unsigned:
        raise ShipyardError(f"{archive}: a local archive carries no repository signature and "
                            "repo.key is configured; pass --unsigned to install it anyway")
    limits = Limits.from_settings(settings)
    with store.install_lock(settings) as swept:
        scan = _scan(archive, limits)
        manifest = scan.manifest
        record = store.installed_record(settings, manifest.coord)
        if record is not None:
            results = [_already(record)]
        else:
            results = _local_requirements(settings, manifest, progress=progress, say=say)
            result = _place(settings, archive, manifest.coord, scan,
                            source=str(archive.absolute()), signed_by=None, channel=None,
                            progress=progress)
            say(f"installed {result.coord} in {result.path}")
            results.append(result)
    results[-1].warnings[:0] = swept
    return results


def _scan(archive: Path, limits: Limits, coord: PackageCoord | None = None) -> Scan:
    """Check every member before anything is written (a refusal leaves no trace), and
    that a repository archive holds the coordinate its index entry names."""
    scan = scan_archive(archive, limits)
    if coord is not None and scan.manifest.coord != coord:
        raise ArchiveError(f"{archive.name}: its manifest names {scan.manifest.coord}, not "
                           f"the requested {coord}")
    return scan


def _local_requirements(settings: Settings, manifest: Manifest, *, progress: bool,
                        say: Echo) -> list[InstallResult]:
    """Requirements of a local archive: met by installed packages, else fetched from the
    configured repository (the lock is already held)."""
    from shipyard.pkg.resolve import choose, plan

    def lookup(group: str, ident: str) -> list[str]:
        return _installed_versions(settings, group, ident)

    missing = [r for r in manifest.requires if not any(r.matches(v) for v in lookup(r.group,
                                                                                      r.id))]
    if not missing:
        return []
    if not settings.get("repo.url"):
        choose(None, missing[0], lookup, [], needed_by=manifest.coord)
    client = repository_client(settings)
    results: list[InstallResult] = []
    with client:
        index = client.index()
        planned: list[PackageEntry] = []
        for requirement in missing:
            entry = choose(index, requirement, lookup, planned, needed_by=manifest.coord)
            if entry is None:
                continue
            for step in plan(index, entry, lookup):
                if all(str(p.coord) != str(step.coord) for p in planned):
                    planned.append(step)
        results.extend(_install_entries(settings, client, planned, progress=progress,
                                        say=say))
    if results:
        results[-1].warnings.extend(client.warnings)
    return results


def _installed_versions(settings: Settings, group: str, ident: str) -> list[str]:
    return [r.coord.version or "" for r in store.installed_versions(settings, group, ident)]


def _already(record: InstalledRecord) -> InstallResult:
    assert record.path is not None
    return InstallResult(record.coord, record.path, "already installed", record.source)


def _place(settings: Settings, archive: Path, coord: PackageCoord, scan: Scan, *, source: str,
           signed_by: str | None, channel: str | None, progress: bool = False
           ) -> InstallResult:
    """Extract ``archive`` (which must hold ``coord``, checked in full into ``scan``)
    beside its target and rename it in. The extraction checks every member again."""
    assert coord.version is not None
    pkg_dir = store.package_dir(settings, coord)
    owner = store.owning_package(settings, pkg_dir)
    if owner is not None:
        raise ShipyardError(f"{coord} would be installed inside the installed package at "
                            f"{owner}; refusing to mix package trees")
    if pkg_dir.exists() or pkg_dir.is_symlink():
        raise ShipyardError(f"{pkg_dir} exists but holds no install record; move it away "
                            f"before installing {coord}")
    store.makedirs_durable(pkg_dir.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{coord.version}.staging-", dir=pkg_dir.parent))
    try:
        _check_fits(archive, scan, staging, pkg_dir)
        bar = ByteProgress(f"unpacking {coord}", archive.stat().st_size) if progress else None
        try:
            with ArchiveReader(archive, Limits.from_settings(settings)) as reader:
                files, dirs = extract(reader, staging, progress=bar)
                manifest = reader.finish()
        finally:
            if bar is not None:
                bar.close()
        if manifest.coord != coord:
            raise ArchiveError(f"{archive.name}: its manifest names {manifest.coord}, not the "
                               f"requested {coord}")
        record = InstalledRecord(
            coord=coord, installed_at=store.now_iso(), source=source,
            archive_sha256=reader.archive_sha256, archive_size=archive.stat().st_size,
            files=files, dirs=dirs, summary=manifest.summary,
            requires=[str(r) for r in manifest.requires], service=manifest.service is not None,
            signed_by=signed_by, channel=channel,
        )
        store.write_record(staging, record)
        os.chmod(staging, 0o755)
        make_durable(staging)
        os.rename(staging, pkg_dir)
    except BaseException:
        with contextlib.suppress(OSError):
            store.remove_tree(staging)
            store.prune_empty_parents(settings, pkg_dir.parent)
        raise
    fsync_dir(pkg_dir.parent)
    return InstallResult(coord, pkg_dir, "installed", source)


def _check_fits(archive: Path, scan: Scan, staging: Path, pkg_dir: Path) -> None:
    """Refuse, before writing, a member path the file system could not create here."""
    try:
        path_max = os.pathconf(staging, "PC_PATH_MAX")
    except (OSError, ValueError):
        path_max = 4096
    room = path_max - 1 - len(os.fsencode(staging)) - 1
    if scan.longest_path > room:
        raise ArchiveError(f"{archive.name}: a member path of {scan.longest_path} bytes does "
                           f"not fit below {pkg_dir} (paths are limited to {path_max - 1} "
                           "bytes); use a shorter paths.software")


# ---------------------------------------------------------------------------------------
# Uninstall


def resolve_installed(settings: Settings, text: str | PackageCoord) -> InstalledRecord:
    """The installed record ``text`` names; ``group:id`` is fine when one version is in."""
    coord = text if isinstance(text, PackageCoord) else PackageCoord.parse(text)
    if coord.version is not None:
        record = store.installed_record(settings, coord)
        if record is None:
            raise ShipyardError(f"{coord} is not installed")
        return record
    records = store.installed_versions(settings, coord.group, coord.id)
    if not records:
        raise ShipyardError(f"{coord} is not installed")
    if len(records) > 1:
        versions = ", ".join(r.coord.version or "" for r in records)
        raise UsageError(f"{coord} has several installed versions ({versions}); name one")
    return records[0]


def uninstall(settings: Settings, coord: str | PackageCoord, force: bool = False, *,
              users_of: Callable[[PackageCoord], list[str]]) -> UninstallResult:
    """Remove an installed package: tombstone rename, fsync, delete.

    ``users_of`` names the registered instances that use a package (the service registry
    is a higher stage's knowledge, :mod:`shipyard.node` passes it in); it is asked under
    the install lock, so no install or uninstall can slip in between check and removal.
    """
    with store.install_lock(settings) as swept:
        record = resolve_installed(settings, coord)
        target = record.coord
        users = [str(c) for c in users_of(target)]
        if users and not force:
            raise ShipyardError(f"{target} is used by registered instance(s) "
                                f"{', '.join(users)}; unregister them first or pass --force")
        pkg_dir = store.package_dir(settings, target)
        tombstone = pkg_dir.parent / f".{target.version}.tombstone-{secrets.token_hex(4)}"
        os.rename(pkg_dir, tombstone)
        fsync_dir(pkg_dir.parent)
        # The package is gone once renamed; a tombstone that resists deletion is the
        # sweep's to retry, not a reason to report the uninstall as failed.
        warnings = list(swept)
        store.sweep_one(tombstone, warnings)
        fsync_dir(pkg_dir.parent)
        store.prune_empty_parents(settings, pkg_dir.parent)
        warnings.extend(_orphaned_dependents(settings, target))
    if users:
        warnings.insert(0, f"removed {target} although instance(s) {', '.join(users)} use it "
                           "(--force)")
    return UninstallResult(target, pkg_dir, users, warnings)


def _orphaned_dependents(settings: Settings, removed: PackageCoord) -> list[str]:
    """Installed packages whose requirement on ``removed`` is no longer met."""
    warnings = []
    remaining = _installed_versions(settings, removed.group, removed.id)
    for record in store.list_installed(settings):
        for text in record.requires:
            try:
                requirement = Requirement.parse(text)
            except ShipyardError:
                continue
            if requirement.name != removed.name or not requirement.matches(removed.version
                                                                            or ""):
                continue
            if not any(requirement.matches(v) for v in remaining):
                warnings.append(f"{record.coord} requires {requirement}, which is no longer "
                                "installed")
    return warnings

