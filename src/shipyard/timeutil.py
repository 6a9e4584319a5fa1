"""Time as Shipyard stores and shows it: aware UTC moments, and durations in two units.

One place so that every table, page and alert agrees on what "now" is (always aware UTC:
a naive datetime compared with a stored aware one raises) and on how long "1h05m" is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

# Largest first; the names are the compact ones ("1h05m"), ``spoken`` swaps in its own.
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_SPOKEN = {"d": "d", "h": "h", "m": "min", "s": "s"}


def utcnow() -> datetime:
    """Now, aware and in UTC (what every stored timestamp is)."""
    return datetime.now(UTC)


def parts(seconds: float) -> tuple[tuple[int, str], tuple[int, str] | None]:
    """The largest unit of a whole-second duration and the next one down (None below 1m).

    ``3725`` -> ``((1, "h"), (2, "m"))``: the rest past the second unit is dropped, since a
    reader of "1h02m" does not want the seconds.
    """
    total = max(0, int(seconds))
    for index, (name, size) in enumerate(_UNITS[:-1]):
        if total >= size:
            below, below_size = _UNITS[index + 1]
            return (total // size, name), ((total % size) // below_size, below)
    return (total, "s"), None


def compact(seconds: float, *, padded: bool = False) -> str:
    """``42s``, ``5m``, ``1h30m``, ``2d3h``; ``padded`` always shows the second unit
    (``1h00m``, ``5m03s``) so a column of uptimes lines up."""
    (value, unit), below = parts(seconds)
    if below is None:
        return f"{value}{unit}"
    rest, rest_unit = below
    if padded:
        return f"{value}{unit}{rest}{rest_unit}" if unit == "d" else \
            f"{value}{unit}{rest:02d}{rest_unit}"
    return f"{value}{unit}{rest}{rest_unit}" if rest else f"{value}{unit}"


def spoken(seconds: float, *, seconds_shown: bool = True) -> str:
    """``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h`` (for pages); ``seconds_shown=False``
    gives ``3 min`` for relative ages, which need no seconds past the first minute."""
    (value, unit), below = parts(seconds)
    text = f"{value} {_SPOKEN[unit]}"
    if below is not None and below[0] and (seconds_shown or below[1] != "s"):
        text += f" {below[0]} {_SPOKEN[below[1]]}"
    return text


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
@overload
def aware(moment: datetime | None) -> datetime | None: ...
def aware(moment: datetime | None) -> datetime | None:
    """A stored moment as aware UTC: SQLite hands back naive datetimes, and every time we
    store is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
