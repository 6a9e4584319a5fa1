"""How the pages write times, durations and states: UTC, exact, and short."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape

from shipyard import timeutil

STATE_LABELS = {"busy": "building", "publish-failed": "failed to publish"}


def now() -> datetime:
    return timeutil.utcnow()


def moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: Any) -> str:
    found = moment(value)
    return found.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if found else "—"


def duration(seconds: float | None) -> str:
    """``850 ms``, ``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return timeutil.spoken(round(seconds))


def duration_axis(seconds: float) -> str:
    """Axis ticks: few characters."""
    if seconds <= 0:
        return "0"
    if seconds < 60:
        return f"{seconds:g}s"
    if seconds < 3600:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"


def ago(value: Any, reference: datetime | None = None) -> str:
    found = moment(value)
    if found is None:
        return "never"
    delta = ((reference or now()) - found).total_seconds()
    if delta < 5:
        return "just now"
    if delta < 60:
        return f"{int(delta)} s ago"
    return timeutil.spoken(delta, seconds_shown=False) + " ago"


def between(start: Any, end: Any) -> str:
    first, last = moment(start), moment(end)
    if first is None:
        return "—"
    return duration(max(0.0, ((last or now()) - first).total_seconds()))


def time_tag(value: Any) -> Markup:
    """``<time>`` with the exact UTC moment, showing how long ago it was."""
    found = moment(value)
    if found is None:
        return Markup("never")
    exact = when(found)
    return Markup(f'<time datetime="{escape(found.isoformat())}" title="{escape(exact)}">'
                  f"{escape(ago(found))}</time>")


def state_label(state: str | None) -> str:
    return STATE_LABELS.get(state or "", state or "unknown")


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    if 0 < value < 0.005:
        return "under 1%"
    return f"{value * 100:.0f}%"


def install_filters(env: Environment) -> None:
    env.filters.update(when=when, duration=duration, ago=ago, between=between,
                       time_tag=time_tag, state_label=state_label, percent=percent,
                       short=lambda commit: (commit or "")[:12])
