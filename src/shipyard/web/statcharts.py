"""The statistics page's charts, drawn from :class:`shipyard.farm.stats.PeriodStats`."""

from __future__ import annotations

from typing import Any

from shipyard.farm.stats import Group, PeriodStats
from shipyard.web import charts
from shipyard.web import format as fmt


def chart_set(data: PeriodStats) -> dict[str, Any]:
    labels = [b.label for b in data.buckets]
    per = "week" if data.step == "week" else "day"
    top_packages = data.packages[:15]
    top_workers = data.workers[:15]

    def rate_rows(groups: list[Group]) -> list[charts.Row]:
        rows = []
        for g in groups:
            rate = g.success_rate
            text = "no result" if rate is None else f"{rate * 100:.0f}% of {g.finished}"
            css = "s-ok" if rate is not None and rate >= 0.9 else (
                "s-warn" if rate is not None and rate >= 0.5 else "s-fail")
            rows.append(charts.Row(g.name, (rate or 0) * 100, text, css))
        return rows

    def duration_rows(groups: list[Group]) -> list[charts.Row]:
        return [charts.Row(g.name, g.median_duration,
                           fmt.duration(g.median_duration) if g.durations else "no result",
                           "s-time") for g in groups]

    return {
        "per_day": charts.columns(
            f"Builds per {per}", f"Builds requested per {per} over {data.period.label}, "
            "stacked by result.", labels,
            [charts.Series("succeeded", [b.counts["succeeded"] for b in data.buckets], "s-ok"),
             charts.Series("failed", [b.counts["failed"] for b in data.buckets], "s-fail"),
             charts.Series("aborted or cancelled", [b.counts["stopped"] for b in data.buckets],
                           "s-stop"),
             charts.Series("queued or running", [b.counts["live"] for b in data.buckets],
                           "s-live")],
            fmt=lambda v: f"{v:g}", integers=True, empty="No builds in this period"),
        "waits": charts.columns(
            f"Queue wait per {per}", f"Median and 90th percentile of the time from request "
            f"to first start, per {per}.", labels,
            [charts.Series("median", [b.median_wait for b in data.buckets], "s-time"),
             charts.Series("90th percentile", [b.p90_wait for b in data.buckets], "s-time2")],
            stacked=False, fmt=fmt.duration_axis, empty="No build started in this period"),
        "package_rate": charts.bars(
            "Success rate per package", "Share of finished builds that succeeded, per "
            "package (the 15 most built).", rate_rows(top_packages), max_value=100,
            empty="No builds in this period"),
        "package_time": charts.bars(
            "Build duration per package", "Median duration of finished builds, per package.",
            duration_rows(top_packages), empty="No builds in this period"),
        "worker_rate": charts.bars(
            "Success rate per worker", "Share of finished builds that succeeded, per worker.",
            rate_rows(top_workers), max_value=100, empty="No builds ran in this period"),
        "worker_time": charts.bars(
            "Build duration per worker", "Median duration of finished builds, per worker.",
            duration_rows(top_workers), empty="No builds ran in this period"),
    }
