"""The fleet's figures on the coordinator's ``/metrics`` (issue 17): nodes by lease state,
seconds since each node's last heartbeat (or report), link pairs by state and fleet
instances by actual state, read from the database at each scrape, so every coordinator
sharing a database reports the same fleet. Rollouts do not exist yet, so there is no
metric for them.

A :class:`prometheus_client` collector; :mod:`shipyard.server` registers it with the
farm's registry (the fleet does not import the farm).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import get_args

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from shipyard.db.fleet_models import FleetInstance, FleetNode
from shipyard.fleet.db import FleetDB
from shipyard.fleet.pairs import link_pairs
from shipyard.fleet.service import lease_state, revision
from shipyard.formats import fleet as wire
from shipyard.timeutil import aware, utcnow


class FleetCollector(Collector):
    def __init__(self, db: FleetDB) -> None:
        self.db = db

    def describe(self) -> Iterable[Metric]:
        return []  # no scrape at registration: the database may not be up yet

    def collect(self) -> Iterable[Metric]:
        now = utcnow()
        with self.db.rtx() as conn:
            nodes = conn.execute(select(FleetNode.name, FleetNode.last_seen_at,
                                        FleetNode.lease_expires_at, FleetNode.lost_at,
                                        FleetNode.revoked_at)).all()
            instances = dict(conn.execute(select(FleetInstance.state, func.count())
                                          .group_by(FleetInstance.state)).all())
            current = revision(conn)
        pairs = link_pairs(self.db)

        by_lease = {state: 0 for state in get_args(wire.LeaseState)}
        seen = GaugeMetricFamily(
            "shipyard_fleet_node_last_seen_seconds",
            "Seconds since each joined node's last heartbeat or report (revoked nodes "
            "are left out).", labels=["node"])
        for row in nodes:
            state = lease_state(row, now)
            by_lease[state] += 1
            if state != "revoked":
                last = aware(row.last_seen_at)
                seen.add_metric([row.name], max(0.0, time.time() - last.timestamp())
                                if last is not None else float("nan"))
        counted = GaugeMetricFamily("shipyard_fleet_nodes", "Nodes by lease state.",
                                    labels=["state"])
        for state, count in by_lease.items():
            counted.add_metric([state], count)
        yield counted
        yield seen

        by_pair = {state: 0 for state in get_args(wire.PairState)}
        for pair in pairs:
            by_pair[pair.state] = by_pair.get(pair.state, 0) + 1
        pair_family = GaugeMetricFamily(
            "shipyard_fleet_link_pairs",
            "Cross-host link pairs by state, as the acceptors' nodes last reported them "
            "(disabled: turned off by an operator).", labels=["state"])
        for state, count in by_pair.items():
            pair_family.add_metric([state], count)
        yield pair_family

        inst_family = GaugeMetricFamily(
            "shipyard_fleet_instances",
            "Fleet instances by actual state, as their nodes last reported them.",
            labels=["state"])
        for state in get_args(wire.InstanceState):
            inst_family.add_metric([state], int(instances.get(state, 0)))
        yield inst_family

        rev = GaugeMetricFamily("shipyard_fleet_revision",
                                "The fleet's global desired-state revision.")
        rev.add_metric([], current)
        yield rev
