"""``link reconcile``: "make everything good" for every (announcer, acceptor) pair.

The seed's dispatcher runs every server adapter with every transport's data; taken
literally that is N x M processes on every install, and rewriting unchanged data is what
makes peers loop (canonical/operator #578). So, per pair of one interface:

* the announcer's data comes from its announce adapter, asked at most once per run and
  not at all when its inputs did not change since the last good answer (the *announce
  cache*: package coordinate, user, adapter path/size/mtime, and the name/size/mtime of
  every file in the instance's runtime ``etc/``);
* the accept adapter runs only when that data differs from what the pair last applied,
  when an earlier run may have left the acceptor half done (``maybe`` not empty), or with
  ``--force`` (a periodic re-sync repairs drift made by hand);
* a pair whose announcer is gone, no longer announces, or is disabled gets ``--remove``
  with every entry the acceptor may hold for it;
* when the announced host or port changes, the old entry is removed before the new one
  is applied (an acceptor keys its entries by host and port; a new password alone is an
  in-place update).

Pairs are independent: one failing adapter is recorded with its reason and the others go
on (juju #21690). Adapters of different acceptors run in parallel (``link.jobs``); those of
one acceptor run one at a time because they edit the same config file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.fsutil import file_lock
from shipyard.link import adapters, generate
from shipyard.link.inventory import Instance, Inventory, load_inventory
from shipyard.link.running import Running, kill_leftovers
from shipyard.link.state import (
    DISABLED,
    FAILED,
    LINKED,
    PENDING,
    CachedAnnounce,
    LinkData,
    LinkState,
    Pair,
    PairKey,
    load_state,
    lock_path,
    save_state,
)
from shipyard.manifest import LinkAccept, LinkAnnounce

SAVE_EVERY = 2.0  # seconds between state saves while adapters run (intents cover the rest)


@dataclass
class Outcome:
    """What this run did to one pair; ``action`` is what an operator wants to read first."""

    interface: str
    announcer: str
    acceptor: str
    action: str  # applied | removed | unchanged | disabled | failed | pending | dropped
    state: str | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"interface": self.interface, "announcer": self.announcer,
                "acceptor": self.acceptor or None, "action": self.action,
                "state": self.state, "error": self.error}


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # not tied to one pair
    warnings: list[str] = field(default_factory=list)  # worth saying, not a failure
    announce_runs: int = 0
    accept_runs: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for outcome in self.outcomes:
            out[outcome.action] = out.get(outcome.action, 0) + 1
        return out

    def problem_lines(self) -> list[str]:
        lines = list(self.problems)
        for o in self.failed:
            lines.append(f"{o.interface} {o.announcer} -> {o.acceptor}: {o.error}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "announce_runs": self.announce_runs,
            "accept_runs": self.accept_runs,
            "seconds": round(self.seconds, 3),
            "problems": self.problems,
            "warnings": self.warnings,
            "pairs": [o.to_json() for o in self.outcomes],
        }


@contextlib.contextmanager
def locked_state(settings: Settings, timeout: float = 300.0) -> Iterator[LinkState]:
    """The link state under the link lock: one reconcile or admin change at a time."""
    with file_lock(lock_path(settings), timeout=timeout, what="link state"):
        yield load_state(settings)


def reconcile(settings: Settings, *, force: bool = False, lock_timeout: float = 300.0,
              progress: Callable[[str], None] | None = None) -> Report:
    """Run "make everything good" under the link lock."""
    with locked_state(settings, lock_timeout) as state:
        return reconcile_locked(settings, state, force=force, progress=progress)


def reconcile_locked(settings: Settings, state: LinkState, *, force: bool = False,
                     progress: Callable[[str], None] | None = None) -> Report:
    """Reconcile with the lock already held and ``state`` freshly loaded under it."""
    return _Run(settings, state, force, progress).run()


# ---------------------------------------------------------------------------------------


def _fingerprint(instance: Instance, announce: LinkAnnounce) -> str:
    """Inputs an announce answer depends on (see the module doc); cheap: stats only."""
    digest = hashlib.sha256()
    assert instance.registration is not None and instance.package_dir is not None
    digest.update(f"{instance.registration.package}\0{instance.user}\0"
                  f"{announce.interface}\0{announce.adapter}\0".encode())
    try:
        info = (instance.package_dir / announce.adapter).stat()
        digest.update(f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}:{info.st_mode}\0"
                      .encode())
    except OSError:
        digest.update(b"missing\0")
    if instance.runtime_dir is not None:
        try:
            entries = sorted(os.scandir(instance.runtime_dir / "etc"), key=lambda e: e.name)
        except OSError:
            entries = []
        for entry in entries:
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=True)
                digest.update(f"{entry.name}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}\0"
                              .encode())
    return digest.hexdigest()


def _needs_generation(announce: LinkAnnounce) -> bool:
    return any(v is not None for v in (announce.port, announce.hostname_prefix,
                                       announce.password, announce.port_param))


def _env(instance: Instance, **extra: str) -> dict[str, str]:
    env = {
        "SHIPYARD_RUNTIME_DIR": str(instance.runtime_dir or ""),
        "SHIPYARD_COORDINATE": instance.coordinate,
        "SHIPYARD_PACKAGE_DIR": str(instance.package_dir or ""),
    }
    env.update(param_env(instance))
    env.update({f"SHIPYARD_LINK_{k.upper()}": v for k, v in extra.items()})
    return env


def param_env(instance: Instance) -> dict[str, str]:
    """The instance's parameters (with ``[service.params]`` defaults), as start gets them:
    ``SHIPYARD_PARAMS`` holds the ``--name=value`` list (shell-quoted, for ``eval set --``
    or ``shlex.split``), and ``SHIPYARD_PARAM_<NAME>`` each value (name upper-cased, other
    characters as ``_``), so an adapter can write a full server config (port, domain)
    before the server's first start. They are not on the adapter's command line, whose
    options are the link protocol."""
    import re
    import shlex

    from shipyard.svc.params import parse_params, with_defaults

    if instance.registration is None:
        return {}
    specs = instance.manifest.service.params if (
        instance.manifest is not None and instance.manifest.service is not None) else ()
    try:
        params = with_defaults(specs, instance.registration.params)
        parsed = parse_params(params)
    except ShipyardError:
        return {}
    env = {"SHIPYARD_PARAMS": shlex.join(params)}
    for name, value in parsed.items():
        env[f"SHIPYARD_PARAM_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}"] = value or ""
    return env


@dataclass
class _Job:
    """The adapter work of one pair: remove some entries, then maybe apply one."""

    pair: Pair
    acceptor: Instance
    accept: LinkAccept
    apply: LinkData | None  # None: remove everything held (gone or disabled announcer)
    final: str | None  # state after a full removal: DISABLED, or None to drop the pair
    changed: bool = False  # an adapter run succeeded and did not say "unchanged"


class _Run:
    def __init__(self, settings: Settings, state: LinkState, force: bool,
                 progress: Callable[[str], None] | None) -> None:
        self.settings = settings
        self.state = state
        self.force = force
        self.progress = progress or (lambda _message: None)
        self.timeout = float(settings.get("link.adapter_timeout"))
        self.jobs = max(1, int(settings.get("link.jobs")))
        self.report = Report()
        self.running = Running(settings)
        self.mutex = threading.Lock()
        self.last_save = time.monotonic()
        self.before = self._snapshot()
        # acceptor -> (pair or None when dropped, "reload" | "restart") owed after adapters
        self._owed: dict[str, list[tuple[Pair | None, str]]] = {}

    # -- helpers --------------------------------------------------------------------------

    def _snapshot(self) -> str:
        data = self.state.to_json()
        data.pop("updated", None)
        return json.dumps(data, sort_keys=True)

    def _save(self, *, final: bool = False) -> None:
        """Persist the state (caller holds ``self.mutex`` or runs single-threaded)."""
        if final and self._snapshot() == self.before:
            return  # nothing changed: a no-op reconcile writes nothing
        save_state(self.settings, self.state)
        self.last_save = time.monotonic()

    def _outcome(self, pair: Pair, action: str) -> None:
        self.report.outcomes.append(Outcome(pair.interface, pair.announcer, pair.acceptor,
                                            action, pair.state, pair.error))

    def _run_as(self, instance: Instance) -> adapters.RunAs | None:
        return adapters.resolve_user(instance.user)

    # -- the run --------------------------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        killed = kill_leftovers(self.settings)
        if killed:
            self.progress(f"killed {len(killed)} adapter(s) left by an interrupted reconcile")
        _sweep_temporaries(self.settings)
        inventory = load_inventory(self.settings)
        for coordinate, problem in sorted(inventory.broken().items()):
            if inventory.instances[coordinate].registration is None:
                self.report.problems.append(problem)
        config_problems = self._ensure_configs(inventory)
        desired = self._desired(inventory)
        data = self._announce_all(inventory, desired, config_problems)
        jobs = self._plan(inventory, desired, data)
        if jobs:
            self._save()  # the intents: every entry an adapter may be about to write
            try:
                self._execute(jobs)
            finally:
                self.running.close()
        self._apply_changes(inventory)
        self._save(final=True)
        self.report.outcomes.sort(key=lambda o: (o.interface, o.announcer, o.acceptor))
        self.report.seconds = time.monotonic() - started
        return self.report

    def _ensure_configs(self, inventory: Inventory) -> dict[tuple[str, str], str]:
        """Create missing generated configs; a failure fails that announcer's pairs."""
        problems: dict[tuple[str, str], str] = {}
        for interface, entries in inventory.announcers.items():
            for instance, announce in entries:
                if not _needs_generation(announce) or instance.runtime_dir is None:
                    continue
                try:
                    generate.generate(self.settings, announce, instance.runtime_dir,
                                      coordinate=instance.coordinate, user=instance.user,
                                      only_if_missing=True, params=instance.params(),
                                      warnings=self.report.warnings)
                except (ShipyardError, OSError) as exc:
                    message = exc.message if isinstance(exc, ShipyardError) else str(exc)
                    problems[(instance.coordinate, interface)] = (
                        f"cannot generate link config: {message}")
        return problems

    def _desired(self, inventory: Inventory) -> dict[PairKey, tuple[Instance, LinkAnnounce,
                                                                    Instance, LinkAccept]]:
        desired = {}
        for interface in inventory.interfaces():
            for announcer, announce in inventory.announcers.get(interface, []):
                for acceptor, accept in inventory.acceptors.get(interface, []):
                    if announcer.coordinate == acceptor.coordinate:
                        continue
                    key = (interface, announcer.coordinate, acceptor.coordinate)
                    desired[key] = (announcer, announce, acceptor, accept)
        return desired

    def _announce_all(self, inventory: Inventory, desired: dict[PairKey, Any],
                      config_problems: dict[tuple[str, str], str],
                      ) -> dict[tuple[str, str], LinkData | str]:
        """Announce data per (announcer, interface): from the cache or one adapter run."""
        wanted: dict[tuple[str, str], tuple[Instance, LinkAnnounce]] = {}
        for (interface, a_coord, b_coord), (announcer, announce, _b, _acc) in desired.items():
            if not self.state.is_disabled(a_coord, b_coord):
                wanted[(a_coord, interface)] = (announcer, announce)
        results: dict[tuple[str, str], LinkData | str] = {}
        to_run: list[tuple[tuple[str, str], Instance, LinkAnnounce, str]] = []
        for key, (instance, announce) in sorted(wanted.items()):
            if key in config_problems:
                results[key] = config_problems[key]
                continue
            fingerprint = _fingerprint(instance, announce)
            cached = self.state.announce_cache.get(f"{key[0]} {key[1]}")
            if not self.force and cached is not None and cached.fingerprint == fingerprint:
                results[key] = cached.data
            else:
                to_run.append((key, instance, announce, fingerprint))
        if to_run:
            self.progress(f"asking {len(to_run)} announce adapter(s)")
            try:
                with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                    answers = list(pool.map(lambda job: self._announce(job[1], job[2]),
                                            to_run))
            finally:
                self.running.close()
            for (key, _instance, _announce, fingerprint), answer in zip(to_run, answers,
                                                                        strict=True):
                results[key] = answer
                cache_key = f"{key[0]} {key[1]}"
                if isinstance(answer, LinkData):
                    self.state.announce_cache[cache_key] = CachedAnnounce(fingerprint, answer)
                else:
                    self.state.announce_cache.pop(cache_key, None)
        live = {f"{a.coordinate} {interface}"
                for interface, entries in inventory.announcers.items() for a, _ann in entries}
        for cache_key in list(self.state.announce_cache):
            if cache_key not in live:
                del self.state.announce_cache[cache_key]
        self._refuse_duplicates(results)
        return results

    def _refuse_duplicates(self, results: dict[tuple[str, str], LinkData | str]) -> None:
        """Two announcers of one interface with the same host and port would overwrite
        each other's entry in every acceptor (which keys entries by host and port), so
        only one may have it: the one an acceptor already holds it for, else the first
        by coordinate. The others' pairs fail with the reason and the way out."""
        owners: dict[tuple[str, str, int], list[str]] = {}
        for (a_coord, interface), answer in sorted(results.items()):
            if isinstance(answer, LinkData):
                owners.setdefault((interface, answer.host, answer.port), []).append(a_coord)
        for (interface, host, port), coords in owners.items():
            if len(coords) < 2:
                continue
            holding = [c for c in coords if any(
                p.announcer == c and p.interface == interface and p.applied is not None
                and p.applied.identity == (host, port) for p in self.state.pairs.values())]
            keeper = (holding or coords)[0]
            for other in coords:
                if other != keeper:
                    results[(other, interface)] = (
                        f"announces {host}:{port} for {interface}, as {keeper} does already; "
                        f"an acceptor keeps one entry per host and port, so give {other} "
                        "its own port (generate.port = \"{param.NAME}\" and -- --NAME=PORT "
                        "at register) or host ('shipyard link hostname')")

    def _prepare(self, instance: Instance) -> str | None:
        """Make sure the instance's runtime dir exists before its adapter runs in it."""
        if instance.runtime_dir is None:
            return None
        try:
            generate.ensure_runtime(self.settings, instance.runtime_dir, instance.coordinate,
                                    instance.user)
        except ShipyardError as exc:
            return exc.message
        except OSError as exc:
            return f"cannot create runtime dir {instance.runtime_dir}: {exc.strerror}"
        return None

    def _announce(self, instance: Instance, announce: LinkAnnounce) -> LinkData | str:
        assert instance.package_dir is not None
        adapter = instance.package_dir / announce.adapter
        try:
            run_as = self._run_as(instance)
        except LookupError as exc:
            return f"announce adapter: {exc}"
        problem = self._prepare(instance)
        if problem:
            return f"announce adapter: {problem}"
        extra = {"interface": announce.interface}
        if instance.runtime_dir is not None:
            extra["config"] = str(generate.config_path(instance.runtime_dir,
                                                       announce.interface))
        run = adapters.run_adapter([str(adapter), *adapters.ANNOUNCE_FLAGS],
                                   env=adapters.adapter_env(_env(instance, **extra), run_as),
                                   cwd=instance.package_dir, run_as=run_as,
                                   timeout=self.timeout, running=self.running)
        with self.mutex:
            self.report.announce_runs += 1
        if not run.ok:
            return adapters.describe_failure("announce", run)
        try:
            data = adapters.parse_announce(run.stdout)
        except ValueError as exc:
            return f"announce adapter {adapter} {exc}"
        return data

    def _plan(self, inventory: Inventory, desired: dict[PairKey, Any],
              data: dict[tuple[str, str], LinkData | str]) -> list[_Job]:
        jobs: list[_Job] = []
        pairs = self.state.pairs
        for key, (_announcer, _announce, acceptor, accept) in sorted(desired.items()):
            interface, a_coord, b_coord = key
            pair = pairs.get(key)
            if pair is None:
                pair = pairs[key] = Pair(interface, a_coord, b_coord)
            if self.state.is_disabled(a_coord, b_coord):
                if pair.held():
                    _removal_intent(pair)
                    jobs.append(_Job(pair, acceptor, accept, None, DISABLED))
                else:
                    pair.set_state(DISABLED)
                    self._outcome(pair, "disabled")
                continue
            answer = data[(a_coord, interface)]
            if isinstance(answer, str):
                pair.set_state(FAILED, answer)
                self._outcome(pair, "failed")
                continue
            if self.force or pair.maybe or pair.applied != answer:
                if answer not in pair.held():
                    pair.maybe.append(answer)  # intent, saved before the adapter runs
                jobs.append(_Job(pair, acceptor, accept, answer, None))
            else:
                pair.set_state(LINKED)
                self._outcome(pair, "unchanged")

        pending = {
            (interface, a.coordinate, "")
            for interface, entries in inventory.announcers.items()
            if not inventory.acceptors.get(interface)
            for a, _ann in entries
        }
        for key in sorted(set(pairs) - set(desired)):
            pair = pairs[key]
            interface, a_coord, b_coord = key
            if not b_coord:
                if key not in pending:
                    del pairs[key]
                continue
            acceptor = inventory.instances.get(b_coord)
            accept = next((acc for inst, acc in inventory.acceptors.get(interface, [])
                           if inst.coordinate == b_coord), None)
            announcer = inventory.instances.get(a_coord)
            if acceptor is not None and acceptor.problem:
                pair.set_state(FAILED, f"acceptor {b_coord}: {acceptor.problem}")
                self._outcome(pair, "failed")
            elif acceptor is None or accept is None:
                del pairs[key]  # the acceptor is gone: nobody left to undo anything at
                self.report.outcomes.append(Outcome(interface, a_coord, b_coord, "dropped",
                                                    None))
            elif announcer is not None and announcer.problem:
                pair.set_state(FAILED, f"announcer {a_coord}: {announcer.problem}; "
                               "its link is kept")
                self._outcome(pair, "failed")
            elif pair.held():
                final = DISABLED if self.state.is_disabled(a_coord, b_coord) else None
                _removal_intent(pair)
                jobs.append(_Job(pair, acceptor, accept, None, final))
            else:
                del pairs[key]
                self.report.outcomes.append(Outcome(interface, a_coord, b_coord, "dropped",
                                                    None))
        for key in sorted(pending):
            pair = pairs.get(key)
            if pair is None:
                pair = pairs[key] = Pair(*key)
            pair.set_state(PENDING, None)
            self._outcome(pair, "pending")
        return jobs

    # -- running accept adapters ----------------------------------------------------------

    def _execute(self, jobs: list[_Job]) -> None:
        by_acceptor: dict[str, list[_Job]] = {}
        for job in jobs:
            by_acceptor.setdefault(job.acceptor.coordinate, []).append(job)
        self.progress(f"running accept adapters for {len(jobs)} pair(s)")
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(self._run_group, group) for group in by_acceptor.values()]
            for future in futures:
                future.result()

    def _run_group(self, jobs: list[_Job]) -> None:
        problem = self._prepare(jobs[0].acceptor)
        for job in jobs:
            if problem:
                with self.mutex:
                    job.pair.set_state(FAILED, f"accept adapter: {problem}")
                    self._outcome(job.pair, "failed")
                continue
            self._run_job(job)
            with self.mutex:
                if time.monotonic() - self.last_save >= SAVE_EVERY:
                    self._save()

    def _accept(self, job: _Job, data: LinkData, *,
                remove: bool) -> tuple[str | None, int | None]:
        """Run the accept adapter once: (failure reason or ``None``, its exit code)."""
        acceptor = job.acceptor
        assert acceptor.package_dir is not None
        adapter = acceptor.package_dir / job.accept.adapter
        try:
            run_as = self._run_as(acceptor)
        except LookupError as exc:
            return f"accept adapter: {exc}", None
        # The password travels in the environment (readable by the adapter's user and
        # root only), on the command line only when the package asks for it.
        env = _env(acceptor, interface=job.pair.interface, announcer=job.pair.announcer,
                   action="remove" if remove else "apply", host=data.host,
                   port=str(data.port), password=data.password,
                   on_change=job.accept.on_change)
        argv = adapters.accept_argv(adapter, data, remove=remove,
                                    password_argv=job.accept.password_via == "argv")
        run = adapters.run_adapter(argv, env=adapters.adapter_env(env, run_as),
                                   cwd=acceptor.package_dir, run_as=run_as,
                                   timeout=self.timeout, running=self.running)
        with self.mutex:
            self.report.accept_runs += 1
            said = adapters.said(run.stdout, [data.password])
            if said:
                job.pair.said = said
        if run.ok:
            if not adapters.reports_unchanged(run.stdout):
                job.changed = True
            return None, 0
        kind = "accept --remove" if remove else "accept"
        return adapters.describe_failure(kind, run, [data.password]), run.returncode

    def _run_job(self, job: _Job) -> None:
        pair = job.pair
        errors: list[str] = []
        exit_code: int | None = None
        target = job.apply
        for old in pair.held():
            if target is not None and old.identity == target.identity:
                continue  # the apply below updates this entry in place
            if self._held_by_another(pair, old):
                with self.mutex:
                    _forget(pair, old)  # another announcer's entry now: not ours to remove
                continue
            error, code = self._accept(job, old, remove=True)
            with self.mutex:
                if error is None:
                    _forget(pair, old)
                else:
                    errors.append(error)
                    exit_code = code
        if target is not None:
            error, code = self._accept(job, target, remove=False)
            with self.mutex:
                if error is None:
                    _confirm(pair, target)
                else:
                    errors.append(error)
                    exit_code = code
        with self.mutex:
            if errors:
                pair.set_state(FAILED, "; ".join(errors), exit_code)
                self._outcome(pair, "failed")
            elif target is not None:
                pair.set_state(LINKED)
                self._outcome(pair, "applied")
            elif job.final == DISABLED:
                pair.set_state(DISABLED)
                self._outcome(pair, "removed")
            else:
                self.state.pairs.pop(pair.key, None)
                self.report.outcomes.append(Outcome(pair.interface, pair.announcer,
                                                    pair.acceptor, "removed", None))
            if job.changed and job.accept.on_change != "none":
                # Owed from now on, saved with the state: a reconcile killed before the
                # reload leaves it for the next one.
                if pair.key in self.state.pairs:
                    if pair.pending_change != "restart":
                        pair.pending_change = job.accept.on_change
                else:
                    self._owed.setdefault(pair.acceptor, []).append(
                        (None, job.accept.on_change))

    def _held_by_another(self, pair: Pair, data: LinkData) -> bool:
        """Whether another announcer's pair has this entry applied at the same acceptor."""
        with self.mutex:
            return any(
                other is not pair and other.acceptor == pair.acceptor
                and other.interface == pair.interface and other.announcer != pair.announcer
                and other.applied is not None and other.applied.identity == data.identity
                for other in self.state.pairs.values())

    # -- applying a change to the acceptor -------------------------------------------------

    def _apply_changes(self, inventory: Inventory) -> None:
        """Reload or restart each acceptor whose adapter changed something, once.

        The adapter cannot do it (it runs as the service user with a clean environment);
        Shipyard can, through svc. A failed reload stays owed in the pair's state
        (``pending_change``) and is tried again by the next reconcile.
        """
        for pair in self.state.pairs.values():
            if pair.pending_change and pair.acceptor:
                self._owed.setdefault(pair.acceptor, []).append((pair, pair.pending_change))
        for acceptor in sorted(self._owed):
            entries = self._owed[acceptor]
            action = "restart" if any(a == "restart" for _p, a in entries) else "reload"
            pairs = [p for p, _a in entries if p is not None]
            instance = inventory.instances.get(acceptor)
            if instance is None or instance.registration is None:
                for pair in pairs:
                    pair.pending_change = None
                continue
            message, error = _change(self.settings, instance, action)
            for pair in pairs:
                pair.change = message if error is None else f"{action} failed: {error}"
                pair.pending_change = None if error is None else action
                if error is not None:
                    pair.set_state(FAILED, f"applied, but the {action} failed: {error}")
            if error is not None:
                self.report.problems.append(f"{acceptor}: {action} after a link change "
                                            f"failed: {error}")
            else:
                self.progress(message)


def _change(settings: Settings, instance: Instance,
            action: str) -> tuple[str, str | None]:
    """Reload or restart a running acceptor: (what happened, error or None)."""
    from shipyard.svc import control
    from shipyard.svc import reload as svc_reload

    assert instance.registration is not None
    coordinate = instance.registration.coordinate
    ctx = control.Context(settings)
    try:
        if action == "reload":
            return svc_reload.reload(ctx, coordinate).message, None
        if not control.is_active(ctx, instance.registration):
            return f"{coordinate} is not running; it reads its config when it starts", None
        control.stop(ctx, coordinate)
        started = control.start(ctx, coordinate)
        return f"restarted {coordinate} (pid {started.pid})", None
    except ShipyardError as exc:
        return "", exc.message


def _sweep_temporaries(settings: Settings) -> None:
    """Temporary files of state writes that a ``kill -9`` interrupted (we hold the lock)."""
    from shipyard.link.state import STATE_NAME

    directory = settings.state_dir
    if not directory.is_dir():
        return
    for path in directory.glob(f".{STATE_NAME}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _removal_intent(pair: Pair) -> None:
    """Before a removal, nothing held is known to be applied any more: a run killed after
    the adapter removed an entry must not find it recorded as applied, or wanting the same
    data again later would find it "unchanged" and never write it back."""
    pair.maybe = pair.held()
    pair.applied = None


def _forget(pair: Pair, data: LinkData) -> None:
    """The acceptor no longer holds ``data``."""
    if pair.applied == data:
        pair.applied = None
    pair.maybe = [d for d in pair.maybe if d != data]


def _confirm(pair: Pair, data: LinkData) -> None:
    """``data`` was applied: it replaced entries of the same identity; others stay held."""
    keep = [d for d in pair.held() if d.identity != data.identity]
    pair.applied = data
    pair.maybe = keep
