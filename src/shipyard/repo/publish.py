"""The publisher run: ``shipyard repo publish``, safe to call from cron or the farm.

One run, under an ``flock`` so runs never overlap:

1. **recover** what a run that died left behind: a temporary ``current`` link of a flip
   that did not finish, generation directories that never became current, publications the
   database still calls ``building`` (one that *did* become current is marked published,
   which also marks its channels clean: the half-done flip repaired);
2. **process the accepted queue**: check each upload again, refuse a coordinate that is
   already known with other bytes (the upload goes to ``incoming/rejected/`` with a
   ``.reason``), treat identical bytes as a no-op, link the archive into ``pool/``, make it
   durable, record it and mark its channel dirty;
3. if a **priority-0** channel is dirty, a pass with priority 0 for just those channels (the
   security fast track), then the **normal pass** with priority 1 for what is still dirty;
   with nothing dirty the run says so and still records its activity (and re-signs the
   release when half of its validity has passed, so an idle repository never expires).

A pass builds ``generations/<serial>``: unchanged channel indexes are hard-linked from the
current generation, dirty ones are rendered from the database, then ``release.json`` (sha256
and size of every index, serial, valid-until) and its signature are written and fsynced;
``pre-publication.d`` runs with the priority as argument (a failure discards the generation
and leaves ``current`` alone); ``current`` is flipped with one ``rename`` of a relative
symlink; ``post-publication.d`` runs; old generations beyond ``keep_generations`` are pruned.

Hooks get the priority as ``$1`` and ``SHIPYARD_REPO``, ``SHIPYARD_GENERATION`` (the new
tree), ``SHIPYARD_SERIAL``, ``SHIPYARD_PRIORITY`` and ``SHIPYARD_CHANNELS`` (comma-separated,
the channels this pass rewrote) in their environment; their standard output goes to our
standard error so ``--json`` stays parseable. A pre-publication hook may add files to the
new generation but must never modify one in place: unchanged indexes are hard links shared
with older generations.

Nothing a reader can reach is ever modified in place: a generation is complete before
``current`` points at it, and is only removed long after (renamed away first, so a reader
sees a generation or a 404, never half of one). Readers fetch the indexes and the signature
by serial, so a flip between two of their requests cannot mix generations.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shipyard.config import Settings
from shipyard.coords import PackageCoord
from shipyard.errors import LockTimeout, ShipyardError
from shipyard.formats.index import (
    RELEASE_NAME,
    SIGNATURE_NAME,
    ChannelIndex,
    ChannelRef,
    PackageEntry,
    Release,
    index_path,
    iso,
    parse_iso,
    pool_path,
    sha256_bytes,
)
from shipyard.formats.signing import PrivateKey, sign_detached
from shipyard.fsutil import (
    atomic_symlink,
    atomic_write,
    file_lock,
    fsync_dir,
    remove_tree,
    sha256_file,
)
from shipyard.repo import activity
from shipyard.repo.keys import load_signing_key
from shipyard.repo.layout import Repository, open_repository
from shipyard.repo.runparts import RunPartsError, run_parts
from shipyard.repo.store import Key, RepoStore
from shipyard.repo.upload import QueuedUpload, queued, validate_archive

ACTIVITY_NAME = "publish"
BATCH = 200
STALE_STAGING_SECONDS = 24 * 3600


@dataclass
class PassResult:
    priority: int
    serial: int
    channels: list[str]
    pre_hooks: list[str] = field(default_factory=list)
    post_hooks: list[str] = field(default_factory=list)


@dataclass
class PublishResult:
    accepted: list[dict[str, str]] = field(default_factory=list)
    unchanged: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    passes: list[PassResult] = field(default_factory=list)
    pruned: list[int] = field(default_factory=list)
    serial: int | None = None
    seconds: float = 0.0

    @property
    def message(self) -> str:
        parts = []
        if self.accepted or self.unchanged or self.rejected:
            parts.append(f"accepted {len(self.accepted)}, unchanged {len(self.unchanged)}, "
                         f"rejected {len(self.rejected)}")
        for p in self.passes:
            what = ", ".join(p.channels) if p.channels else "re-signed"
            parts.append(f"generation {p.serial} (priority {p.priority}: {what})")
        if not self.passes:
            parts.append("nothing to publish"
                         + (f" (current: generation {self.serial})" if self.serial else ""))
        return "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["message"] = self.message
        return data


def publish(settings: Settings | None, repo_dir: str | os.PathLike[str], *,
            unsigned: bool = False, all_channels: bool = False, db_url: str | None = None,
            lock_timeout: float | None = 600.0) -> PublishResult:
    """One publisher run (see the module docstring). Raises :class:`ShipyardError` after
    recording the failure in script activity."""
    started = time.monotonic()
    repo = open_repository(repo_dir, db_url=db_url)
    store = RepoStore(repo.db_url)
    begun = datetime.now(UTC)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(repo.publish_lock, timeout=lock_timeout,
                                          what=f"the publisher of {repo.root}"))
        except LockTimeout as exc:
            activity.record_failure(repo.db_url, ACTIVITY_NAME, exc.message, started=begun)
            raise
        # We hold the lock: a "running" row of an earlier run belongs to a dead process.
        activity.mark_interrupted(repo.db_url, ACTIVITY_NAME)
        with activity.record(repo.db_url, ACTIVITY_NAME) as run:
            result = PublishResult()
            try:
                _Run(settings, repo, store, result, unsigned, all_channels).run()
            except OSError as exc:  # a full disk, a permission: say where, in one line
                where = f" ({exc.filename})" if exc.filename else ""
                raise ShipyardError(f"publisher run of {repo.root} failed: "
                                    f"{exc.strerror or exc}{where}") from None
            result.seconds = round(time.monotonic() - started, 4)
            run.message = result.message
    return result


class _Run:
    def __init__(self, settings: Settings | None, repo: Repository, store: RepoStore,
                 result: PublishResult, unsigned: bool, all_channels: bool) -> None:
        self.settings = settings
        self.repo = repo
        self.store = store
        self.result = result
        self.unsigned = unsigned
        self.all_channels = all_channels
        self.channels = repo.config.channels
        self.key: PrivateKey | None = None

    def run(self) -> None:
        if not self.unsigned:
            self.key = load_signing_key(self.repo.config.signing_key)
        self.result.recovered = recover(self.repo, self.store)
        self.store.ensure_channels(self.channels)
        if self.all_channels:
            self.store.mark_dirty(self.channels)
        self.process_queue()

        dirty = self.dirty_channels()
        fast = [name for name in dirty if self.channels[name] == 0]
        if fast:
            self.publication_pass(0, fast)
            dirty = self.dirty_channels()
        if dirty or self.needs_resign():
            self.publication_pass(1, dirty)
        self.result.serial = self.repo.current_serial()
        if self.result.serial is not None:
            self.result.pruned = prune(self.repo, self.repo.config.keep_generations,
                                       self.result.serial)

    def dirty_channels(self) -> list[str]:
        states = self.store.channel_states()
        return [name for name in self.channels if name in states and states[name].dirty]

    def needs_resign(self) -> bool:
        """Re-sign before readers would see the release expire (at half its validity)."""
        serial = self.repo.current_serial()
        if serial is None:
            return True
        try:
            release = Release.from_bytes(
                (self.repo.generations / str(serial) / RELEASE_NAME).read_bytes(), "current")
        except (OSError, ShipyardError):
            return True
        signed = (self.repo.generations / str(serial) / SIGNATURE_NAME).exists()
        if self.key is not None and not signed:
            return True  # published with --unsigned before a key existed: sign it now
        if set(release.channels) != set(self.channels) or any(
                release.channels[n].priority != p for n, p in self.channels.items()):
            return True  # repo.ini changed: the release must say so
        remaining = parse_iso(release.valid_until) - datetime.now(UTC)
        return remaining < timedelta(days=self.repo.config.valid_days) / 2

    # -- the accepted queue --------------------------------------------------------------

    def process_queue(self) -> None:
        sweep_staging(self.repo)
        items = queued(self.repo)
        seen: dict[Key, str] = {}
        for start in range(0, len(items), BATCH):
            self.process_batch(items[start:start + BATCH], seen)

    def process_batch(self, batch: list[QueuedUpload], seen: dict[Key, str]) -> None:
        checked: list[tuple[QueuedUpload, PackageEntry]] = []
        for item in batch:
            try:
                checked.append((item, self.check_upload(item)))
            except ShipyardError as exc:
                self.reject(item, exc.message)
        known = self.store.lookup((e.group, e.id, e.version) for _, e in checked)
        new: list[tuple[PackageEntry, str]] = []
        members: list[tuple[Key, str]] = []
        done: list[QueuedUpload] = []
        dirs: set[Path] = set()
        for item, entry in checked:
            key = (entry.group, entry.id, entry.version)
            previous = seen.get(key) or (known[key].entry.sha256 if key in known else None)
            channel = item.channel or ""
            info = {"coordinate": str(entry.coord), "channel": channel, "upload": item.name}
            if previous is not None and previous != entry.sha256:
                self.reject(item, f"{entry.coord} is already in the repository with other "
                                  f"content (sha256 {previous[:16]}..., this upload "
                                  f"{entry.sha256[:16]}...); a published coordinate never "
                                  "changes: give the package a new version")
                continue
            if previous is not None:
                members.append((key, channel))
                self.result.unchanged.append(info)
            else:
                dirs |= place_in_pool(item.archive, self.repo.root / entry.filename,
                                      entry.sha256)
                new.append((entry, channel))
                seen[key] = entry.sha256
                self.result.accepted.append(info)
            done.append(item)
        make_durable(self.repo.root, dirs)
        if new or members:
            self.store.accept(new, members)
        for item in done:
            remove_tree(item.dir, ignore_errors=True)
        if done:
            fsync_dir(self.repo.incoming)

    def check_upload(self, item: QueuedUpload) -> PackageEntry:
        if item.channel is None:
            raise ShipyardError(f"upload {item.name} has no readable upload.json naming its "
                                "channel")
        if item.channel not in self.channels:
            raise ShipyardError(f"upload {item.name} is for unknown channel {item.channel!r}")
        if not item.archive.is_file():
            raise ShipyardError(f"upload {item.name} does not hold exactly one archive")
        manifest = validate_archive(self.settings, item.archive)
        from shipyard.formats.archive import compression_of

        digest = sha256_file(item.archive)
        if item.sha256 is not None and item.sha256 != digest:
            raise ShipyardError(f"upload {item.name}: archive changed after it was uploaded "
                                f"(sha256 {digest[:16]}..., upload.json says "
                                f"{item.sha256[:16]}...)")
        coord = manifest.coord
        return PackageEntry(
            group=coord.group, id=coord.id, version=manifest.version,
            filename=pool_path(coord, compression_of(item.archive)),
            size=item.archive.stat().st_size, sha256=digest, summary=manifest.summary,
            maintainer=manifest.maintainer,
            requires=tuple(str(r) for r in manifest.requires),
            service=manifest.service is not None,
        )

    def reject(self, item: QueuedUpload, reason: str) -> None:
        """Keep the upload aside with the reason, for the operator (never deleted)."""
        name = item.archive.name if item.archive.name != "(no single archive)" else "upload"
        atomic_write(item.dir / f"{name}.reason", reason + "\n")
        self.repo.rejected.mkdir(parents=True, exist_ok=True)
        target = self.repo.rejected / item.name
        suffix = 1
        while target.exists():
            suffix += 1
            target = self.repo.rejected / f"{item.name}.{suffix}"
        os.rename(item.dir, target)
        fsync_dir(self.repo.rejected)
        fsync_dir(self.repo.incoming)
        self.result.rejected.append({"upload": item.name, "reason": reason,
                                     "kept": str(target)})

    # -- a publication pass ----------------------------------------------------------------

    def publication_pass(self, priority: int, channels: list[str]) -> None:
        repo, store = self.repo, self.store
        states = store.channel_states()
        seqs = {name: states[name].dirty_seq for name in channels}  # read before rendering
        current = repo.current_serial()
        serial = store.begin_publication(priority, current or 0, seqs)
        generation = repo.generations / str(serial)
        outcome = PassResult(priority, serial, list(channels))
        env = {**os.environ, "SHIPYARD_REPO": str(repo.root),
               "SHIPYARD_GENERATION": str(generation), "SHIPYARD_SERIAL": str(serial),
               "SHIPYARD_PRIORITY": str(priority), "SHIPYARD_CHANNELS": ",".join(channels)}
        try:
            self.build_generation(generation, serial, channels, current)
            try:
                outcome.pre_hooks = [str(p) for p in run_parts(repo.pre_hooks, [str(priority)],
                                                               env)]
            except RunPartsError as exc:
                raise ShipyardError(
                    f"{exc.message} (pre-publication, priority {priority}); generation "
                    f"{serial} discarded, current still "
                    f"{'generation ' + str(current) if current else 'unpublished'}") from None
            fsync_dir(generation)
        except BaseException as exc:
            discard(repo, generation)
            store.finish_publication(serial, "discarded", activity._one_line(exc))
            raise
        atomic_symlink(f"generations/{serial}", repo.current)
        store.finish_publication(serial, "published")
        self.result.passes.append(outcome)
        try:
            outcome.post_hooks = [str(p) for p in run_parts(repo.post_hooks, [str(priority)],
                                                            env)]
        except RunPartsError as exc:
            raise ShipyardError(f"{exc.message} (post-publication, priority {priority}); "
                                f"generation {serial} is published") from None

    def build_generation(self, generation: Path, serial: int, channels: list[str],
                         current: int | None) -> None:
        repo = self.repo
        if generation.exists():  # a database reset can reuse a serial of an old tree
            discard(repo, generation)
        previous: Release | None = None
        previous_dir = repo.generations / str(current) if current is not None else None
        if previous_dir is not None:
            try:
                previous = Release.from_bytes((previous_dir / RELEASE_NAME).read_bytes(),
                                              str(previous_dir / RELEASE_NAME))
            except (OSError, ShipyardError):
                previous = None  # unreadable (edited by hand?): render every channel afresh
        refs: dict[str, ChannelRef] = {}
        dirs: list[Path] = []
        for name, priority in self.channels.items():
            target = generation / index_path(name)
            target.parent.mkdir(parents=True)
            dirs.append(target.parent)
            old = previous.channels.get(name) if previous is not None else None
            if old is not None and name not in channels and previous_dir is not None:
                source = previous_dir / old.path
                if source.stat().st_size == old.size:
                    _link_or_copy(source, target)
                    refs[name] = ChannelRef(priority, old.path, old.size, old.sha256, old.count)
                    continue
            # A channel outside this pass keeps what it last published; with no earlier
            # publication that is nothing, so a fast-track pass never leaks its packages.
            entries = self.store.channel_entries(name) if name in channels or old else []
            data = ChannelIndex(name, serial, entries).to_bytes()
            _write_durable(target, data)
            refs[name] = ChannelRef(priority, index_path(name), len(data), sha256_bytes(data),
                                    len(entries))
        now = datetime.now(UTC).replace(microsecond=0)
        release = Release(serial, iso(now),
                          iso(now + timedelta(days=repo.config.valid_days)), refs)
        data = release.to_bytes()
        _write_durable(generation / RELEASE_NAME, data)
        if self.key is not None:
            _write_durable(generation / SIGNATURE_NAME, sign_detached(data, [self.key]))
        for directory in [*dirs, generation / "dists", generation, repo.generations]:
            fsync_dir(directory)


# -- helpers (also used by recovery and tests) ----------------------------------------------


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o644)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem or too many links: a copy is as good
        shutil.copyfile(source, target)
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())


def place_in_pool(archive: Path, target: Path, sha256: str) -> set[Path]:
    """Hard-link an accepted archive into the pool; returns the directories to fsync.

    A file already at ``target`` was left by a run that died before it recorded the
    package: the same bytes are kept, other bytes are replaced (nothing published names a
    pool file the database does not know).
    """
    dirs: set[Path] = {target.parent}
    missing = target.parent
    while not missing.exists():
        dirs.add(missing.parent)
        missing = missing.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and sha256_file(target) == sha256:
        return dirs
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if temp.exists():
        temp.unlink()
    _link_or_copy(archive, temp)
    os.chmod(temp, 0o644)
    os.replace(temp, target)
    return dirs


_libc: ctypes.CDLL | None = None


def make_durable(root: Path, dirs: set[Path]) -> None:
    """fsync a few directories, or ``syncfs`` the repository's filesystem for many (one
    journal commit instead of one per directory when thousands of uploads arrive)."""
    if not dirs:
        return
    if len(dirs) <= 16:
        for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(directory)
        return
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _libc.syncfs(fd) != 0:
                raise OSError(ctypes.get_errno(), "syncfs failed")
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        os.sync()


def discard(repo: Repository, generation: Path) -> None:
    """Remove a generation that is not current: renamed away first, so nobody ever finds a
    half-deleted tree under its serial."""
    if not generation.exists():
        return
    trash = repo.generations / f".discard-{generation.name}-{os.getpid()}"
    os.rename(generation, trash)
    fsync_dir(repo.generations)
    remove_tree(trash, ignore_errors=True)


def prune(repo: Repository, keep: int, current: int) -> list[int]:
    """Remove generations older than the ``keep`` newest before ``current``."""
    older = sorted(int(n) for n in os.listdir(repo.generations)
                   if n.isdigit() and int(n) < current)
    doomed = older[:-keep] if keep else older
    for serial in doomed:
        discard(repo, repo.generations / str(serial))
    return doomed


def sweep_staging(repo: Repository) -> None:
    """Remove upload staging dirs of uploaders that died a day ago (never a live one)."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for path in repo.incoming.glob(".tmp-*"):
        try:
            if path.stat().st_mtime < cutoff:
                remove_tree(path, ignore_errors=True)
        except FileNotFoundError:
            pass


def recover(repo: Repository, store: RepoStore) -> list[str]:
    """Repair what a publisher run that died left behind (call under the publish lock)."""
    notes: list[str] = []
    for temp in repo.root.glob(".current.*.tmp"):
        temp.unlink(missing_ok=True)
        notes.append(f"removed the temporary link {temp.name} of an unfinished flip")
    current = repo.current_serial()
    if current is not None and not (repo.generations / str(current) / RELEASE_NAME).is_file():
        current = _repoint(repo, store, current, notes)
    repo.generations.mkdir(parents=True, exist_ok=True)
    for name in sorted(os.listdir(repo.generations)):
        path = repo.generations / name
        if name.startswith("."):
            remove_tree(path, ignore_errors=True)
            notes.append(f"removed leftover {name}")
        elif name.isdigit() and (current is None or int(name) > current):
            discard(repo, path)
            notes.append(f"removed unfinished generation {name}")
    for publication in store.publications(status="building"):
        if publication.serial == current:
            store.finish_publication(publication.serial, "published",
                                     "recovered: the run died after the flip")
            notes.append(f"generation {current} was published by a run that died; "
                         "recorded it")
        else:
            store.finish_publication(publication.serial, "abandoned",
                                     "the run died before the flip")
    return notes


def _repoint(repo: Repository, store: RepoStore, missing: int, notes: list[str]) -> int | None:
    """``current`` names a generation that is gone (removed by hand): point it at the newest
    published one still on disk, or remove it when there is none."""
    for publication in store.publications(status="published"):
        path = repo.generations / str(publication.serial)
        if publication.serial != missing and (path / RELEASE_NAME).is_file():
            atomic_symlink(f"generations/{publication.serial}", repo.current)
            notes.append(f"current pointed at missing generation {missing}; now "
                         f"{publication.serial}")
            return publication.serial
    repo.current.unlink()
    notes.append(f"current pointed at missing generation {missing}; removed it")
    return None


# -- reading what is published (repo list, tests) -----------------------------------------


def read_published(repo: Repository, channel: str | None = None
                   ) -> tuple[Release | None, dict[str, ChannelIndex]]:
    """The current release and the indexes it names, checked against its hashes."""
    serial = repo.current_serial()
    if serial is None:
        return None, {}
    base = repo.generations / str(serial)
    release = Release.from_bytes((base / RELEASE_NAME).read_bytes(), str(base / RELEASE_NAME))
    names = [channel] if channel else sorted(release.channels)
    indexes: dict[str, ChannelIndex] = {}
    for name in names:
        ref = release.channels.get(name)
        if ref is None:
            known = ", ".join(sorted(release.channels))
            raise ShipyardError(f"channel {name!r} is not published (channels: {known})")
        indexes[name] = release.check_index(name, (base / ref.path).read_bytes(),
                                            str(base / ref.path))
    return release, indexes


def promote(repo: Repository, coord_text: str, channel: str) -> tuple[PackageCoord, bool]:
    """List a known package in ``channel`` too (published by the next run). ``group:id``
    means its newest version. Returns the coordinate and whether anything changed."""
    coord = PackageCoord.parse(coord_text)
    repo.channel_or_default(channel)
    store = RepoStore(repo.db_url)
    store.ensure_channels(repo.config.channels)
    if coord.version is None:
        version = store.newest_version(coord.group, coord.id)
        if version is None:
            raise ShipyardError(f"{coord} is not in the repository {repo.root}")
        coord = coord.with_version(version)
    stored = store.find(coord)
    if stored is None:
        raise ShipyardError(f"{coord} is not in the repository {repo.root} (upload and "
                            "publish it first)")
    changed = store.accept([], [((coord.group, coord.id, coord.version or ""), channel)])
    return coord, bool(changed)
