"""The period the statistics and worker pages show: a preset number of days or a range
the visitor typed. The farm computes the figures (:mod:`shipyard.farm.stats`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shipyard.farm.stats import Period
from shipyard.timeutil import utcnow

PRESETS = (1, 7, 30, 90, 365)
DEFAULT_DAYS = 7
MAX_DAYS = 366


class PeriodError(ValueError):
    """A period the statistics page cannot show; the message says why."""


def preset(days: int, now: datetime | None = None) -> Period:
    now = now or utcnow()
    label = "the last 24 hours" if days == 1 else f"the last {days} days"
    return Period(now - timedelta(days=days), now, days, label)


def parse_period(days: str | None, start: str | None, end: str | None,
                 now: datetime | None = None) -> Period:
    """``days`` (a preset) or ``start``/``end`` (YYYY-MM-DD, both inclusive, UTC)."""
    now = now or utcnow()
    if start or end:
        try:
            first = date.fromisoformat(start) if start else None
            last = date.fromisoformat(end) if end else now.date()
        except ValueError:
            raise PeriodError("dates must look like 2026-01-31") from None
        if first is None:
            first = last - timedelta(days=DEFAULT_DAYS - 1)
        if last < first:
            raise PeriodError("the end of the period is before its start")
        if (last - first).days + 1 > MAX_DAYS:
            raise PeriodError(f"a period is at most {MAX_DAYS} days")
        since = datetime(first.year, first.month, first.day, tzinfo=UTC)
        until = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        return Period(since, until, None, f"{first.isoformat()} to {last.isoformat()}")
    if days in (None, ""):
        return preset(DEFAULT_DAYS, now)
    try:
        value = int(days)
    except ValueError:
        raise PeriodError(f"unknown period {days!r}") from None
    if value not in PRESETS:
        raise PeriodError(f"unknown period {days!r} (choose one of "
                          f"{', '.join(str(p) for p in PRESETS)} days)")
    return preset(value, now)
