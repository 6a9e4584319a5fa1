"""The announcers' side of a reconcile: their generated config, then their data.

Each announcer's adapter is asked at most once per run, and not at all when its inputs
did not change since its last good answer (the *announce cache*, keyed by a fingerprint:
package coordinate, user, adapter path/size/mtime, and the name/size/mtime of every file in
the instance's runtime ``etc/``). A missing generated config is created first; one that
cannot be fails that announcer's pairs with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

from shipyard.errors import ShipyardError
from shipyard.link import adapters, generate
from shipyard.link.instance_env import instance_env
from shipyard.link.inventory import Instance, Inventory
from shipyard.link.plan import Answers, Wanted
from shipyard.link.session import Session
from shipyard.link.state import CachedAnnounce, LinkData, PairKey
from shipyard.manifest import LinkAnnounce


def ensure_configs(session: Session, inventory: Inventory) -> dict[tuple[str, str], str]:
    """Create missing generated configs; a failure fails that announcer's pairs."""
    problems: dict[tuple[str, str], str] = {}
    for interface, entries in inventory.announcers.items():
        for instance, announce in entries:
            if not _needs_generation(announce) or instance.runtime_dir is None:
                continue
            try:
                generate.generate(session.settings, announce, instance.runtime_dir,
                                  coordinate=instance.coordinate, user=instance.user,
                                  only_if_missing=True, params=instance.params(),
                                  warnings=session.report.warnings)
            except (ShipyardError, OSError) as exc:
                message = exc.message if isinstance(exc, ShipyardError) else str(exc)
                problems[(instance.coordinate, interface)] = (
                    f"cannot generate link config: {message}")
    return problems


def announce_all(session: Session, inventory: Inventory, desired: dict[PairKey, Wanted],
                 config_problems: dict[tuple[str, str], str]) -> Answers:
    """Announce data per (announcer, interface): from the cache or one adapter run."""
    state = session.state
    wanted: dict[tuple[str, str], tuple[Instance, LinkAnnounce]] = {}
    for (interface, a_coord, b_coord), (announcer, announce, _b, _acc) in desired.items():
        if not state.is_disabled(a_coord, b_coord):
            wanted[(a_coord, interface)] = (announcer, announce)
    results: Answers = {}
    to_run: list[tuple[tuple[str, str], Instance, LinkAnnounce, str]] = []
    for key, (instance, announce) in sorted(wanted.items()):
        if key in config_problems:
            results[key] = config_problems[key]
            continue
        fingerprint = _fingerprint(instance, announce)
        cached = state.announce_cache.get(f"{key[0]} {key[1]}")
        if not session.force and cached is not None and cached.fingerprint == fingerprint:
            results[key] = cached.data
        else:
            to_run.append((key, instance, announce, fingerprint))
    if to_run:
        session.progress(f"asking {len(to_run)} announce adapter(s)")
        try:
            with ThreadPoolExecutor(max_workers=session.jobs) as pool:
                answers = list(pool.map(lambda job: _ask(session, job[1], job[2]),
                                        to_run))
        finally:
            session.running.close()
        for (key, _instance, _announce, fingerprint), answer in zip(to_run, answers,
                                                                    strict=True):
            results[key] = answer
            cache_key = f"{key[0]} {key[1]}"
            if isinstance(answer, LinkData):
                state.announce_cache[cache_key] = CachedAnnounce(fingerprint, answer)
            else:
                state.announce_cache.pop(cache_key, None)
    live = {f"{a.coordinate} {interface}"
            for interface, entries in inventory.announcers.items() for a, _ann in entries}
    for cache_key in list(state.announce_cache):
        if cache_key not in live:
            del state.announce_cache[cache_key]
    return results


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


def _ask(session: Session, instance: Instance, announce: LinkAnnounce) -> LinkData | str:
    """Run the announce adapter once: its data, or why there is none."""
    assert instance.package_dir is not None
    adapter = instance.package_dir / announce.adapter
    try:
        run_as = session.run_as(instance)
    except LookupError as exc:
        return f"announce adapter: {exc}"
    problem = session.prepare(instance)
    if problem:
        return f"announce adapter: {problem}"
    extra = {"interface": announce.interface}
    if instance.runtime_dir is not None:
        extra["config"] = str(generate.config_path(instance.runtime_dir, announce.interface))
    run = adapters.run_adapter([str(adapter), *adapters.ANNOUNCE_FLAGS],
                               env=adapters.adapter_env(instance_env(instance, **extra), run_as),
                               cwd=instance.package_dir, run_as=run_as,
                               timeout=session.timeout, running=session.running)
    with session.mutex:
        session.report.announce_runs += 1
    if not run.ok:
        return adapters.describe_failure("announce", run)
    try:
        data = adapters.parse_announce(run.stdout)
    except ValueError as exc:
        return f"announce adapter {adapter} {exc}"
    return data
