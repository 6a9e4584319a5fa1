"""Statistics over a period: builds per day, success rate and duration per package and per
worker, queue wait times. Computed in Python from one query over the period's builds:
simple, portable between SQLite and PostgreSQL, and fast enough for a year of a busy farm
(the query is capped at :data:`MAX_ROWS`). The pages choose the period
(:mod:`shipyard.web.stats`) and draw what :func:`compute` returns."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from shipyard.db.farm_models import (
    ABORTED,
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    FarmBuild,
)
from shipyard.farm.db import FarmDB
from shipyard.timeutil import aware, utcnow

MAX_ROWS = 200_000
WEEKLY_AFTER_DAYS = 62
GROUPS = ("succeeded", "failed", "stopped", "live")
_GROUP_OF = {SUCCEEDED: "succeeded", FAILED: "failed", ABORTED: "stopped",
             CANCELLED: "stopped", QUEUED: "live", RUNNING: "live"}


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime
    days: int | None  # the preset, or None for a custom range
    label: str

    @property
    def span_days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400


@dataclass
class Group:
    """Counts and durations of one package or one worker."""

    name: str
    builds: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    durations: list[float] = field(default_factory=list)
    busy: float = 0.0

    @property
    def finished(self) -> int:
        return self.counts["succeeded"] + self.counts["failed"]

    @property
    def success_rate(self) -> float | None:
        return self.counts["succeeded"] / self.finished if self.finished else None

    @property
    def median_duration(self) -> float | None:
        return statistics.median(self.durations) if self.durations else None

    @property
    def max_duration(self) -> float | None:
        return max(self.durations) if self.durations else None


class _Waits:
    """How long builds waited for a worker, for a bucket or the whole period."""

    waits: list[float]

    @property
    def median_wait(self) -> float | None:
        return statistics.median(self.waits) if self.waits else None

    @property
    def p90_wait(self) -> float | None:
        return percentile(self.waits, 0.9)


@dataclass
class Bucket(_Waits):
    start: datetime
    label: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    waits: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class PeriodStats(_Waits):
    period: Period
    step: str  # "day" or "week"
    buckets: list[Bucket]
    packages: list[Group]
    workers: list[Group]
    totals: Group
    waits: list[float]
    truncated: bool

    @property
    def max_wait(self) -> float | None:
        return max(self.waits) if self.waits else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every value shown was measured)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def _buckets(period: Period) -> tuple[str, list[Bucket]]:
    step = "week" if period.span_days > WEEKLY_AFTER_DAYS else "day"
    first = period.since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if step == "week":
        first -= timedelta(days=first.weekday())
    size = timedelta(days=7 if step == "week" else 1)
    buckets = []
    moment = first
    while moment < period.until:
        buckets.append(Bucket(moment, moment.strftime("%m-%d")))
        moment += size
    return step, buckets


def compute(db: FarmDB, period: Period, now: datetime | None = None) -> PeriodStats:
    now = now or utcnow()
    step, buckets = _buckets(period)
    size = 7 * 86400 if step == "week" else 86400
    origin = buckets[0].start if buckets else period.since
    with db.read() as session:
        rows = session.execute(
            select(FarmBuild.package, FarmBuild.worker, FarmBuild.state,
                   FarmBuild.requested_at, FarmBuild.first_claimed_at, FarmBuild.claimed_at,
                   FarmBuild.finished_at)
            .where(FarmBuild.requested_at >= period.since,
                   FarmBuild.requested_at < period.until)
            .order_by(FarmBuild.id.desc()).limit(MAX_ROWS + 1)).all()
    truncated = len(rows) > MAX_ROWS
    packages: dict[str, Group] = {}
    workers: dict[str, Group] = {}
    totals = Group("all")
    waits: list[float] = []
    for package, worker, state, requested, first_claimed, claimed, finished in rows[:MAX_ROWS]:
        requested, first_claimed = aware(requested), aware(first_claimed)
        claimed, finished = aware(claimed), aware(finished)
        group = _GROUP_OF.get(state, "stopped")
        index = int((requested - origin).total_seconds() // size)
        bucket = buckets[index] if 0 <= index < len(buckets) else None
        if bucket is not None:
            bucket.counts[group] += 1
        duration = None
        if claimed and finished and state in (SUCCEEDED, FAILED):
            duration = max(0.0, (finished - claimed).total_seconds())
        busy = 0.0
        if claimed:
            busy = max(0.0, ((finished or now) - claimed).total_seconds())
        targets = [totals, packages.setdefault(package, Group(package))]
        if worker:
            targets.append(workers.setdefault(worker, Group(worker)))
        for target in targets:
            target.builds += 1
            target.counts[group] += 1
            target.busy += busy
            if duration is not None:
                target.durations.append(duration)
        if first_claimed:
            wait = max(0.0, (first_claimed - requested).total_seconds())
            waits.append(wait)
            if bucket is not None:
                bucket.waits.append(wait)
    order = lambda g: (-g.builds, g.name)  # noqa: E731
    return PeriodStats(period, step, buckets, sorted(packages.values(), key=order),
                 sorted(workers.values(), key=order), totals, waits, truncated)


@dataclass(frozen=True)
class WorkerSummary:
    """What the worker page shows over ``period``; ``busy_share`` is of one slot."""

    group: Group
    busy_share: float
    period: Period


def worker_summary(db: FarmDB, name: str, period: Period,
                   now: datetime | None = None) -> WorkerSummary:
    """What the worker page shows: builds, success rate, time busy over ``period``."""
    now = now or utcnow()
    with db.read() as session:
        rows = session.execute(
            select(FarmBuild.state, FarmBuild.claimed_at, FarmBuild.finished_at)
            .where(FarmBuild.worker == name, FarmBuild.claimed_at >= period.since)
            .limit(MAX_ROWS)).all()
    group = Group(name)
    for state, claimed, finished in rows:
        claimed, finished = aware(claimed), aware(finished)
        group.builds += 1
        group.counts[_GROUP_OF.get(state, "stopped")] += 1
        if claimed:
            group.busy += max(0.0, ((finished or now) - claimed).total_seconds())
            if finished and state in (SUCCEEDED, FAILED):
                group.durations.append(max(0.0, (finished - claimed).total_seconds()))
    span = max(1.0, (now - period.since).total_seconds())
    return WorkerSummary(group, min(1.0, group.busy / span), period)
