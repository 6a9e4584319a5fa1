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

The steps live in their own modules: :mod:`.recovery`, :mod:`.intake` (the accepted
queue), :mod:`.generation` (building, discarding and pruning generations) and
:mod:`.channels` (``read_published``, ``promote``, re-exported here for callers of old).
This one runs them in order and owns the pass: hooks, the flip, the record.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from shipyard.config import Settings
from shipyard.errors import LockTimeout, ShipyardError
from shipyard.formats.index import RELEASE_NAME, SIGNATURE_NAME, Release, parse_iso
from shipyard.formats.signing import PrivateKey
from shipyard.fsutil import atomic_symlink, file_lock, fsync_dir
from shipyard.repo import activity
from shipyard.repo.channels import promote, read_published
from shipyard.repo.generation import build_generation, discard, prune
from shipyard.repo.intake import process_queue
from shipyard.repo.keys import load_signing_key
from shipyard.repo.layout import Repository, open_repository
from shipyard.repo.recovery import recover
from shipyard.repo.runparts import RunPartsError, run_parts
from shipyard.repo.store import Publication, RepoStore

__all__ = ["PassResult", "PublishResult", "promote", "publish", "read_published"]

ACTIVITY_NAME = "publish"


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


def publications(repo_dir: str | os.PathLike[str]) -> list[Publication]:
    """Every publication (run pass) the repository's database remembers, newest first."""
    return RepoStore(open_repository(repo_dir, migrate=False).db_url).publications()


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
        intake = process_queue(self.settings, self.repo, self.store)
        self.result.accepted = intake.accepted
        self.result.unchanged = intake.unchanged
        self.result.rejected = intake.rejected

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
            build_generation(repo, store, self.key, generation, serial, channels, current)
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
