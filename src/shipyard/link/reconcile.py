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

This module runs the steps in order under the link lock; each lives in its own module:
:mod:`.announce` (configs and announce data), :mod:`.plan` (the decisions, a pure
function), :mod:`.accept` (the accept adapters), :mod:`.changes` (reloads and restarts).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from shipyard.config import Settings
from shipyard.fsutil import file_lock
from shipyard.link import accept, announce, changes, plan
from shipyard.link.accept import Job
from shipyard.link.inventory import load_inventory
from shipyard.link.report import Report
from shipyard.link.running import kill_leftovers
from shipyard.link.session import Session
from shipyard.link.state import STATE_NAME, LinkState, Pair, load_state, lock_path


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
    session = Session(settings, state, force, progress)
    started = time.monotonic()
    report = session.report
    killed = kill_leftovers(settings)
    if killed:
        session.progress(f"killed {len(killed)} adapter(s) left by an interrupted reconcile")
    _sweep_temporaries(settings)
    inventory = load_inventory(settings)
    for coordinate, problem in sorted(inventory.broken().items()):
        if inventory.instances[coordinate].registration is None:
            report.problems.append(problem)
    config_problems = announce.ensure_configs(session, inventory)
    desired = plan.desired_pairs(inventory)
    answers = announce.announce_all(session, inventory, desired, config_problems)
    answers = plan.refuse_duplicates(state, answers)
    actions = plan.plan(inventory, state, desired, answers, force=force)
    jobs = _record(session, actions)
    if jobs:
        session.save()  # the intents: every entry an adapter may be about to write
        try:
            accept.execute(session, jobs)
        finally:
            session.running.close()
    changes.apply_changes(session, inventory)
    session.save(final=True)
    report.outcomes.sort(key=lambda o: (o.interface, o.announcer, o.acceptor))
    report.seconds = time.monotonic() - started
    return report


def _record(session: Session, actions: list[plan.Action]) -> list[Job]:
    """Carry the plan into the state: settled pairs and the adapters' intents; the jobs
    for the adapters, in the plan's order."""
    pairs = session.state.pairs
    jobs: list[Job] = []
    for action in actions:
        if isinstance(action, plan.Drop):
            dropped = pairs.pop(action.key)
            if not action.quiet:
                session.gone(dropped, "dropped")
            continue
        pair = pairs.get(action.key)
        if pair is None:
            pair = pairs[action.key] = Pair(*action.key)
        if isinstance(action, plan.Settle):
            pair.set_state(action.state, action.error)
            session.outcome(pair, action.outcome)
        elif isinstance(action, plan.Apply):
            pair.intend(action.data)  # saved before the adapter runs
            jobs.append(Job(pair, action.acceptor, action.accept, action.data, None))
        else:
            pair.intend_removal()
            jobs.append(Job(pair, action.acceptor, action.accept, None, action.final))
    return jobs


def _sweep_temporaries(settings: Settings) -> None:
    """Temporary files of state writes that a ``kill -9`` interrupted (we hold the lock)."""
    directory = settings.state_dir
    if not directory.is_dir():
        return
    for path in directory.glob(f".{STATE_NAME}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

