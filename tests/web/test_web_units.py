"""The web interface's small parts on their own: charts, periods, percentiles, time
formatting, cookie signatures and password hashes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.farm.stats import percentile
from shipyard.web import charts, stats
from shipyard.web import format as fmt
from shipyard.web.passwords import hash_password, verify_password
from shipyard.web.sessions import Signer

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    root = ET.fromstring(str(markup))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    labelled = root.get("aria-labelledby", "").split()
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    assert labelled and set(labelled) <= ids, "the chart's title and description are missing"
    return root


def test_column_chart_stacks_series_and_escapes_labels() -> None:
    svg = charts.columns("Builds <per> day", "desc & more", ["11-20", "11-21", "11-22"],
                         [charts.Series("ok", [1, 0, 3], "s-ok"),
                          charts.Series("failed", [2, 0, 1], "s-fail")])
    root = _parse(svg)
    bars = [r for r in root.iter(f"{SVG}rect")]
    assert len(bars) == 4  # the zero values draw nothing
    assert {r.get("class") for r in bars} == {"s-ok", "s-fail"}
    # The tallest stack (4) reaches the top tick; ticks are round numbers.
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "axis"]
    assert ticks[:5] == ["0", "1", "2", "3", "4"] and "11-21" in ticks
    assert root.find(f"{SVG}title").text == "Builds <per> day"
    assert "Builds &lt;per&gt; day" in str(svg)


def test_empty_charts_say_so() -> None:
    root = _parse(charts.columns("t", "d", [], [], empty="No builds in this period"))
    assert "No builds in this period" in "".join(root.itertext())
    root = _parse(charts.bars("t", "d", []))
    assert "Nothing in this period" in "".join(root.itertext())


def test_bar_chart_scales_to_the_maximum_and_keeps_long_names() -> None:
    name = "org.example.a-very-long-group-name:with-an-even-longer-package-identifier"
    root = _parse(charts.bars("rate", "d", [charts.Row(name, 100, "100%"),
                                            charts.Row("b", 50, "50%", "s-warn"),
                                            charts.Row("c", None, "no result", "s-fail")],
                              max_value=100))
    fills = {r.get("class"): float(r.get("width")) for r in root.iter(f"{SVG}rect")
             if r.get("class") != "track"}
    assert fills["s-ok"] == pytest.approx(2 * fills["s-warn"])
    assert "s-fail" not in fills
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert any(name in (t or "") for t in titles), "the full name is kept in a tooltip"


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_nice_max_is_a_round_ceiling(value: float) -> None:
    top = charts.nice_max(value)
    assert top >= value
    assert top <= max(1.0, value * 2.5 + 1e-9)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.9) is None
    assert percentile([5.0], 0.9) == 5.0
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 0.9) == 9.0
    assert percentile(values, 0.5) == 5.0
    assert percentile(values, 1.0) == 10.0


def test_periods() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    week = stats.parse_period(None, None, None, now)
    assert week.days == 7 and week.until == now and week.since == now - timedelta(days=7)
    assert stats.parse_period("30", None, None, now).label == "the last 30 days"
    custom = stats.parse_period(None, "2026-11-01", "2026-11-03", now)
    assert custom.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert custom.until == datetime(2026, 11, 4, tzinfo=UTC)
    assert custom.days is None and custom.label == "2026-11-01 to 2026-11-03"
    for days, start, end, message in (("13", None, None, "unknown period '13'"),
                                      ("x", None, None, "unknown period 'x'"),
                                      (None, "2026-11-05", "2026-11-01", "before its start"),
                                      (None, "2025-01-01", "2026-11-01", "at most 366 days"),
                                      (None, "yesterday", None, "must look like")):
        with pytest.raises(stats.PeriodError, match=message):
            stats.parse_period(days, start, end, now)


def test_durations_and_ages_read_well() -> None:
    assert fmt.duration(None) == "—"
    assert fmt.duration(0.25) == "250 ms"
    assert fmt.duration(4.25) == "4.2 s"
    assert fmt.duration(42) == "42 s"
    assert fmt.duration(185) == "3 min 5 s"
    assert fmt.duration(7800) == "2 h 10 min"
    assert fmt.duration(3 * 86400 + 4 * 3600) == "3 d 4 h"
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert fmt.ago(None) == "never"
    assert fmt.ago(now - timedelta(seconds=2), now) == "just now"
    assert fmt.ago(now - timedelta(seconds=30), now) == "30 s ago"
    assert fmt.ago((now - timedelta(minutes=90)).isoformat(), now) == "1 h 30 min ago"
    assert fmt.when("2026-11-22T12:00:00+00:00") == "2026-11-22 12:00:00 UTC"
    assert fmt.when("2026-11-22T12:00:00") == "2026-11-22 12:00:00 UTC"  # naive = UTC
    assert fmt.state_label("busy") == "building"
    assert str(fmt.time_tag(now)).startswith('<time datetime="2026-11-22T12:00:00+00:00"')


def test_signatures_bind_value_and_purpose() -> None:
    signer = Signer(b"k" * 32)
    token = signer.sign("session", "abc")
    assert signer.unsign("session", token) == "abc"
    assert signer.unsign("flash", token) is None  # another purpose
    assert Signer(b"x" * 32).unsign("session", token) is None  # another key
    assert signer.unsign("session", "abd." + token.split(".", 1)[1]) is None
    assert signer.unsign("session", None) is None
    assert signer.unsign("session", "no-dot") is None
    assert signer.check_csrf("sid", signer.csrf("sid"))
    assert not signer.check_csrf("other", signer.csrf("sid"))
    assert not signer.check_csrf(None, signer.csrf("sid"))
    assert not signer.check_csrf("sid", None)


def test_password_hashes_are_salted_and_checked() -> None:
    first, second = hash_password("hunter2hunter2"), hash_password("hunter2hunter2")
    assert first != second and first.startswith("scrypt$32768$8$1$")
    assert verify_password("hunter2hunter2", first)
    assert not verify_password("hunter2hunter3", first)
    assert not verify_password("hunter2hunter2", "scrypt$1$2$3")
    assert not verify_password("hunter2hunter2", "md5$x$y$z$a$b")
