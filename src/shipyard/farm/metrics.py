"""``/metrics``: the coordinator's state in Prometheus' text format (``prometheus-client``).

Most figures are read from the database at scrape time, so every coordinator sharing a
database reports the same farm and a restart loses nothing: builds by state (the queue
length is ``state="queued"``), seconds since each worker was last heard from, seconds
since the repository's last successful publication. The build-duration histogram is this
process's own (observed when a worker's finish reaches it), as Prometheus expects of a
histogram: sum it over the coordinators.

Each app has its own registry (tests run several apps in one process); the fleet adds its
collectors (nodes, link pairs, rollouts) with :meth:`FarmMetrics.add_collector`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from shipyard.db.farm_models import BUILD_STATES, FarmBuild, FarmWorker
from shipyard.farm.db import FarmDB
from shipyard.formats.farm import BuildView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))
RESULTS = ("succeeded", "failed", "aborted")


class FarmMetrics:
    """One coordinator's registry: the farm's collector and the duration histogram."""

    def __init__(self, db: FarmDB, repo_dir: Path | None) -> None:
        self.registry = CollectorRegistry()
        self.build_seconds = Histogram(
            "shipyard_farm_build_duration_seconds",
            "Seconds from a build's claim to its result, by result (this coordinator).",
            ["result"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.add_collector(FarmCollector(db, repo_dir))

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def build_finished(self, build: BuildView) -> None:
        """Observe a build that reached a result (a finish answer's ``build``)."""
        if build.state not in RESULTS or not build.claimed_at or not build.finished_at:
            return
        try:
            started = datetime.fromisoformat(build.claimed_at)
            ended = datetime.fromisoformat(build.finished_at)
        except ValueError:
            return
        self.build_seconds.labels(build.state).observe(
            max(0.0, (ended - started).total_seconds()))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class FarmCollector(Collector):
    """The gauges read from the farm's database (and the repository's) at each scrape."""

    def __init__(self, db: FarmDB, repo_dir: Path | None) -> None:
        self.db = db
        self.repo_dir = repo_dir

    def describe(self) -> Iterable[Metric]:
        return []  # no scrape at registration: the database may not be up yet

    def collect(self) -> Iterable[Metric]:
        now = time.time()
        with self.db.read() as session:
            counts = dict(session.execute(
                select(FarmBuild.state, func.count()).group_by(FarmBuild.state)).all())
            workers = session.execute(
                select(FarmWorker.name, FarmWorker.last_seen_at, FarmWorker.paused)).all()
        queued = GaugeMetricFamily("shipyard_farm_queue_length",
                                   "Builds waiting for a worker.")
        queued.add_metric([], int(counts.get("queued", 0)))
        yield queued
        states = GaugeMetricFamily("shipyard_farm_builds", "Builds by state.",
                                   labels=["state"])
        for state in BUILD_STATES:
            states.add_metric([state], int(counts.get(state, 0)))
        yield states
        seen = GaugeMetricFamily("shipyard_farm_worker_last_seen_seconds",
                                 "Seconds since each worker was last heard from (claim or "
                                 "heartbeat).", labels=["worker"])
        paused = GaugeMetricFamily("shipyard_farm_worker_paused",
                                   "1 when the worker is paused.", labels=["worker"])
        for name, last_seen, is_paused in workers:
            seen.add_metric([name], max(0.0, now - _epoch(last_seen)))
            paused.add_metric([name], 1 if is_paused else 0)
        yield seen
        yield paused
        last = self._last_publication()
        if last is not None:
            publish = GaugeMetricFamily(
                "shipyard_repo_last_publish_seconds",
                "Seconds since the repository's last successful publication.")
            publish.add_metric([], max(0.0, now - last))
            yield publish

    def _last_publication(self) -> float | None:
        if self.repo_dir is None:
            return None
        from shipyard.repo.layout import open_repository
        from shipyard.repo.store import RepoStore

        repo = open_repository(self.repo_dir, migrate=False)
        done = RepoStore(repo.db_url).publications("published", 1)
        if not done or done[0].finished is None:
            return None
        return done[0].finished.timestamp()


def _epoch(moment: datetime) -> float:
    from shipyard.timeutil import aware

    stamped = aware(moment)
    return stamped.timestamp() if stamped is not None else 0.0


def install(app: FastAPI, db: FarmDB, repo_dir: Path | None) -> FarmMetrics:
    """``GET /metrics`` (anonymous, like the pages; read-only) and ``app.state.metrics``."""
    metrics = FarmMetrics(db, repo_dir)
    app.state.metrics = metrics

    @app.get("/metrics", include_in_schema=False)
    def scrape() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return metrics
