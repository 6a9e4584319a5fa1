"""The acceptors' side of a reconcile: running their adapters for the planned pairs.

Adapters of different acceptors run in parallel (``link.jobs``); those of one acceptor
run one at a time because they edit the same config file. A pair first gets ``--remove``
for every entry it may hold that the new data does not replace (an acceptor keys its
entries by host and port; a new password alone is an in-place update), then the apply.
One failing pair is recorded with its reason and the others go on (juju #21690).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shipyard.link import adapters
from shipyard.link.instance_env import instance_env
from shipyard.link.inventory import Instance
from shipyard.link.session import Session
from shipyard.link.state import DISABLED, FAILED, LINKED, LinkData, Pair
from shipyard.manifest import LinkAccept


@dataclass
class Job:
    """The adapter work of one pair: remove some entries, then maybe apply one."""

    pair: Pair
    acceptor: Instance
    accept: LinkAccept
    apply: LinkData | None  # None: remove everything held (gone or disabled announcer)
    final: str | None  # state after a full removal: DISABLED, or None to drop the pair
    changed: bool = False  # an adapter run succeeded and did not say "unchanged"


def execute(session: Session, jobs: list[Job]) -> None:
    by_acceptor: dict[str, list[Job]] = {}
    for job in jobs:
        by_acceptor.setdefault(job.acceptor.coordinate, []).append(job)
    session.progress(f"running accept adapters for {len(jobs)} pair(s)")
    with ThreadPoolExecutor(max_workers=session.jobs) as pool:
        futures = [pool.submit(_run_group, session, group) for group in by_acceptor.values()]
        for future in futures:
            future.result()


def _run_group(session: Session, jobs: list[Job]) -> None:
    problem = session.prepare(jobs[0].acceptor)
    for job in jobs:
        if problem:
            with session.mutex:
                job.pair.set_state(FAILED, f"accept adapter: {problem}")
                session.outcome(job.pair, "failed")
            continue
        _run_job(session, job)
        session.save_now_and_then()


def _accept(session: Session, job: Job, data: LinkData, *,
            remove: bool) -> tuple[str | None, int | None]:
    """Run the accept adapter once: (failure reason or ``None``, its exit code)."""
    acceptor = job.acceptor
    assert acceptor.package_dir is not None
    adapter = acceptor.package_dir / job.accept.adapter
    try:
        run_as = session.run_as(acceptor)
    except LookupError as exc:
        return f"accept adapter: {exc}", None
    # The password travels in the environment (readable by the adapter's user and
    # root only), on the command line only when the package asks for it.
    env = instance_env(acceptor, interface=job.pair.interface, announcer=job.pair.announcer,
                       action="remove" if remove else "apply", host=data.host,
                       port=str(data.port), password=data.password,
                       on_change=job.accept.on_change)
    argv = adapters.accept_argv(adapter, data, remove=remove,
                                password_argv=job.accept.password_via == "argv")
    run = adapters.run_adapter(argv, env=adapters.adapter_env(env, run_as),
                               cwd=acceptor.package_dir, run_as=run_as,
                               timeout=session.timeout, running=session.running)
    with session.mutex:
        session.report.accept_runs += 1
        said = adapters.said(run.stdout, [data.password])
        if said:
            job.pair.said = said
    if run.ok:
        if not adapters.reports_unchanged(run.stdout):
            job.changed = True
        return None, 0
    kind = "accept --remove" if remove else "accept"
    return adapters.describe_failure(kind, run, [data.password]), run.returncode


def _run_job(session: Session, job: Job) -> None:
    pair = job.pair
    errors: list[str] = []
    exit_code: int | None = None
    target = job.apply
    for old in pair.held():
        if target is not None and old.identity == target.identity:
            continue  # the apply below updates this entry in place
        if _held_by_another(session, pair, old):
            with session.mutex:
                pair.forget(old)  # another announcer's entry now: not ours to remove
            continue
        error, code = _accept(session, job, old, remove=True)
        with session.mutex:
            if error is None:
                pair.forget(old)
            else:
                errors.append(error)
                exit_code = code
    if target is not None:
        error, code = _accept(session, job, target, remove=False)
        with session.mutex:
            if error is None:
                pair.confirm(target)
            else:
                errors.append(error)
                exit_code = code
    with session.mutex:
        if errors:
            pair.set_state(FAILED, "; ".join(errors), exit_code)
            session.outcome(pair, "failed")
        elif target is not None:
            pair.set_state(LINKED)
            session.outcome(pair, "applied")
        elif job.final == DISABLED:
            pair.set_state(DISABLED)
            session.outcome(pair, "removed")
        else:
            session.state.pairs.pop(pair.key, None)
            session.gone(pair, "removed")
        if job.changed and job.accept.on_change != "none":
            # Owed from now on, saved with the state: a reconcile killed before the
            # reload leaves it for the next one.
            if pair.key in session.state.pairs:
                if pair.pending_change != "restart":
                    pair.pending_change = job.accept.on_change
            else:
                session.owed.setdefault(pair.acceptor, []).append(
                    (None, job.accept.on_change))


def _held_by_another(session: Session, pair: Pair, data: LinkData) -> bool:
    """Whether another announcer's pair has this entry applied at the same acceptor."""
    with session.mutex:
        return any(
            other is not pair and other.acceptor == pair.acceptor
            and other.interface == pair.interface and other.announcer != pair.announcer
            and other.applied is not None and other.applied.identity == data.identity
            for other in session.state.pairs.values())
