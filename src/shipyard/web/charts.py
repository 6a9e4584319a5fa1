"""Server-side SVG charts: no JavaScript, no front-end build, readable at a glance.

Two shapes cover the statistics page: columns over time (stacked, like builds per day, or
side by side, like median and p90 queue wait) and labelled horizontal bars (one row per
package or worker, the label on its own line so long names fit on a phone). Colours come
from CSS classes (``s-ok``, ``s-fail``...), so the page's stylesheet decides them and the
Content-Security-Policy can forbid inline styles. Every chart is an ``img`` with a title and
a description; the page puts the numbers in a table next to it for screen readers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

_ids = itertools.count(1)
FONT = 14
WIDTH = 420.0  # user units; drawn at most 30rem wide, so text stays 12-16 px on any screen


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    css: str


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5, 5 times a power of ten)."""
    if value <= 1e-9:  # nothing (or too little to draw): any scale will do
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _label(value: float) -> str:
    return f"{value:.6g}"


def _open(width: float, height: float, title: str, desc: str) -> tuple[str, list[str]]:
    ident = f"chart{next(_ids)}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'class="chart" role="img" aria-labelledby="{ident}-t {ident}-d" '
        f'font-size="{FONT}">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(desc)}</desc>',
    ]
    return ident, parts


def _empty(width: float, height: float, title: str, message: str) -> Markup:
    _ident, parts = _open(width, height, title, message)
    parts.append(f'<text x="{_num(width / 2)}" y="{_num(height / 2)}" text-anchor="middle" '
                 f'class="muted">{escape(message)}</text></svg>')
    return Markup("".join(parts))


def columns(title: str, desc: str, labels: Sequence[str], series: Sequence[Series], *,
            stacked: bool = True, fmt: Callable[[float], str] = _label, integers: bool = False,
            empty: str = "Nothing in this period") -> Markup:
    """Columns per label; ``stacked`` piles the series, else they stand side by side.
    ``integers``: the values are counts, so the axis ticks are whole numbers."""
    width, height = WIDTH, 240.0
    left, right, top, bottom = 46.0, 8.0, 10.0, 34.0
    count = len(labels)
    if count == 0 or not any((v or 0) > 0 for s in series for v in s.values):
        return _empty(width, height, title, empty)
    if stacked:
        peak = max(sum((s.values[i] or 0) for s in series) for i in range(count))
    else:
        peak = max((v or 0) for s in series for v in s.values)
    step = nice_max(peak / 4)
    if integers:
        step = max(1.0, math.ceil(step))
    ticks = max(1, math.ceil(peak / step - 1e-9))
    top_value = step * ticks
    plot_w, plot_h = width - left - right, height - top - bottom
    _ident, parts = _open(width, height, title, desc)
    for tick in range(ticks + 1):
        value = step * tick
        y = top + plot_h - plot_h * tick / ticks
        parts.append(f'<line x1="{_num(left)}" x2="{_num(width - right)}" y1="{_num(y)}" '
                     f'y2="{_num(y)}" class="grid"/>')
        parts.append(f'<text x="{_num(left - 6)}" y="{_num(y + 5)}" text-anchor="end" '
                     f'class="axis">{escape(fmt(value))}</text>')
    slot = plot_w / count
    bar = slot * (0.72 if count > 1 else 0.4)
    every = max(1, math.ceil(count / 8))
    for i, label in enumerate(labels):
        x0 = left + slot * i + (slot - bar) / 2
        base = top + plot_h
        for j, one in enumerate(series):
            value = one.values[i] or 0
            if value <= 0:
                continue
            h = plot_h * value / top_value
            if stacked:
                x, w = x0, bar
                base -= h
                y = base
            else:
                w = bar / len(series)
                x, y = x0 + w * j, top + plot_h - h
            parts.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0.8))}" '
                         f'height="{_num(max(h, 0.8))}" class="{one.css}">'
                         f'<title>{escape(label)}: {escape(fmt(value))} '
                         f'{escape(one.name)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{_num(left + slot * i + slot / 2)}" '
                         f'y="{_num(height - bottom + 20)}" text-anchor="middle" '
                         f'class="axis">{escape(label)}</text>')
    parts.append(f'<line x1="{_num(left)}" x2="{_num(width - right)}" '
                 f'y1="{_num(top + plot_h)}" y2="{_num(top + plot_h)}" class="baseline"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Row:
    label: str
    value: float | None
    text: str
    css: str = "s-ok"


def bars(title: str, desc: str, rows: Sequence[Row], *, max_value: float | None = None,
         empty: str = "Nothing in this period") -> Markup:
    """One labelled horizontal bar per row; ``text`` is printed after the bar."""
    width, row_h, label_h = WIDTH, 46.0, 17.0
    if not rows:
        return _empty(width, 80.0, title, empty)
    peak = max_value or max((r.value or 0) for r in rows) or 1.0
    height = row_h * len(rows) + 4
    text_room = 100.0
    _ident, parts = _open(width, height, title, desc)
    for i, row in enumerate(rows):
        y = row_h * i + 2
        label = row.label if len(row.label) <= 52 else row.label[:51] + "…"
        parts.append(f'<text x="0" y="{_num(y + label_h - 3)}" class="label">'
                     f'{escape(label)}</text>')
        span = (width - text_room) * max(0.0, row.value or 0) / peak
        parts.append(f'<rect x="0" y="{_num(y + label_h + 2)}" width="{_num(width - text_room)}" '
                     f'height="18" class="track"/>')
        if span > 0:
            parts.append(f'<rect x="0" y="{_num(y + label_h + 2)}" width="{_num(max(span, 1))}" '
                         f'height="18" class="{row.css}"><title>{escape(row.label)}: '
                         f'{escape(row.text)}</title></rect>')
        parts.append(f'<text x="{_num(width - text_room + 8)}" y="{_num(y + label_h + 16)}" '
                     f'class="value">{escape(row.text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
