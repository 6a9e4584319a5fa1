"""The coordinator's log: one line per event, on the ``shipyard.farm`` loggers.

The routes and background tasks call these after the change is committed, so a line
says what happened, not what was attempted. Each line carries its fields as ``extra``
(``event``, ``build``, ``worker``, ...) for ``--log-format json``. Nothing here is given
a token, a password or a build's output: only ids, names, states and reasons.
"""

from __future__ import annotations

import logging

from shipyard.formats.farm import BuildView, Job, PublishRound

log = logging.getLogger("shipyard.farm.events")


def _short(text: str | None, limit: int = 200) -> str:
    first = (text or "").strip().splitlines()
    return first[0][:limit] if first else ""


def requested(build: BuildView, created: bool, by: str) -> None:
    if created:
        log.info("build %s requested by %s: %s %s at %s (%s)", build.id, by,
                 build.package, build.version or "", build.commit[:12],
                 build.state, extra={"event": "request", "build": build.id,
                                     "package": build.package, "by": by,
                                     "state": build.state})


def claimed(job: Job | None, worker: str) -> None:
    if not job:
        return
    build = job.build
    log.info("build %s attempt %s claimed by %s: %s %s", build.id, job.attempt, worker,
             build.package, build.version or "",
             extra={"event": "claim", "build": build.id, "attempt": job.attempt,
                    "worker": worker, "package": build.package})


def finished(build: BuildView, worker: str, attempt: int, result: str) -> None:
    state = build.state
    level = logging.INFO if state in ("succeeded", "queued") else logging.WARNING
    why = _short(build.reason)
    log.log(level, "build %s attempt %s on %s: %s -> %s%s", build.id, attempt, worker,
            result, state, f" ({why})" if why and state != "succeeded" else "",
            extra={"event": "finish", "build": build.id, "attempt": attempt,
                   "worker": worker, "result": result, "state": state})


def reaped(changed: list[tuple[int, str]]) -> None:
    """Builds whose lease ran out: queued again, or failed after their last attempt."""
    for build_id, state in changed:
        log.warning("build %s: lease lost -> %s", build_id, state,
                    extra={"event": "lease-lost", "build": build_id, "state": state})


def aborted(build: BuildView, by: str) -> None:
    log.info("build %s: abort by %s (%s)", build.id, by, build.state,
             extra={"event": "abort", "build": build.id, "by": by, "state": build.state})


def requeued(build: BuildView, by: str) -> None:
    log.info("build %s requeued by %s (%s)", build.id, by, build.state,
             extra={"event": "requeue", "build": build.id, "by": by})


def worker_registered(name: str, requeued_builds: list[int]) -> None:
    log.info("worker %s registered%s", name,
             f"; its builds queued again: {requeued_builds}" if requeued_builds else "",
             extra={"event": "register", "worker": name})


def worker_paused(name: str, paused: bool) -> None:
    log.info("worker %s %s", name, "paused" if paused else "resumed",
             extra={"event": "pause" if paused else "resume", "worker": name})


def publish_round(report: PublishRound) -> None:
    """One round of the farm's publisher (see :func:`shipyard.farm.publisher.publish_pending`)."""
    for build_id, why in sorted(report.errors.items()):
        log.warning("build %s: not published: %s", build_id, _short(why),
                    extra={"event": "publish-failed", "build": build_id})
    if report.publish_error:
        log.warning("publisher run failed: %s", _short(report.publish_error),
                    extra={"event": "publish-failed"})
    if report.published:
        log.info("published builds %s: %s", ", ".join(map(str, report.published)),
                 _short(report.publication),
                 extra={"event": "publish", "builds": report.published})


def mail_sent(row_id: int, build_id: int | None, recipient: str) -> None:
    log.info("mail %s (build %s) sent to %s", row_id, build_id, recipient,
             extra={"event": "mail", "mail": row_id, "build": build_id})


def mail_failed(row_id: int, build_id: int | None, error: str, retry_in: float) -> None:
    log.warning("mail %s (build %s) not sent, retry in %.0f s: %s", row_id, build_id,
                retry_in, _short(error),
                extra={"event": "mail-failed", "mail": row_id, "build": build_id})
