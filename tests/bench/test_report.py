"""``bench/report.py --render``: the results table from saved raw lines, no bench run.

The raw lines below have the keys the bench scripts print (bench/*.py main()) with figures
of the order the README reports; the assertions read the rendered Markdown as an operator
would: one row per figure, its cells and whether the aim was met.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "bench" / "report.py"


def summary(median: float, low: float, high: float) -> dict[str, float]:
    return {"median": median, "min": low, "max": high}


INSTALL = {
    "bench": "install", "files": 5000, "payload_bytes": 52_428_800, "archive_bytes": 31_000_000,
    "wheel_bytes": 32_000_000, "repeats": 5, "load_average": 1.2,
    "seconds": {"shipyard": summary(2.21, 2.11, 2.33), "tar": summary(1.07, 1.0, 1.16),
                "tar_sync": summary(1.2, 1.1, 1.3), "pip": summary(2.97, 2.58, 3.22)},
    "shipyard_vs_tar": {"median_ratio": 2.07, "min": 1.82, "max": 2.33},
    "shipyard_vs_pip": {"median_ratio": 0.74, "min": 0.66, "max": 0.9},
    "aim": {"at_most_1.5x_tar": False, "faster_than_pip": True},
}


def publish_size(size: int, one: dict[str, float], peer_one: dict[str, float]
                 ) -> dict[str, Any]:
    return {
        "packages": size, "stable_packages": int(size * 0.6) + 6,
        "full": summary(12.6, 10.4, 15.0), "one_upload": one,
        "one_upload_engine": summary(0.13, 0.12, 0.14), "noop": summary(0.64, 0.62, 0.84),
        "republish_all": summary(0.88, 0.65, 0.93),
        "peer": {"tool": "apt-ftparchive (hash cache db, unsigned)",
                 "full": summary(1.23, 0.97, 1.6), "one_upload": peer_one},
        "cpu_seconds": {"full": summary(2.3, 2.2, 2.4), "one_upload": summary(0.7, 0.6, 0.8),
                        "noop": summary(0.6, 0.5, 0.7)},
        "one_upload_vs_peer": round(one["median"] / peer_one["median"], 3),
    }


PUBLISH = {
    "bench": "publish", "repeats": 5,
    "results": {"1000": publish_size(1000, summary(0.77, 0.63, 0.97),
                                     summary(0.03, 0.029, 0.04)),
                "10000": publish_size(10000, summary(0.83, 0.74, 0.96),
                                      summary(0.29, 0.2, 0.34))},
    "one_upload_ratio_large_to_small": {**summary(1.08, 0.8, 1.4), "runs": 5},
    "aim_one_upload_under_1s": True, "aim_ratio_at_most_1_5": True,
}

LINKS = {
    "bench": "links", "pairs": 900, "repeats": 5,
    "first_reconcile_s": summary(1.85, 1.55, 1.99), "first_accept_runs": 900,
    "first_announce_runs": 30, "noop_reconcile_s": summary(0.38, 0.35, 0.55),
    "noop_engine_s": summary(0.031, 0.03, 0.052), "noop_accept_runs": 0,
    "noop_announce_runs": 0, "peer_literal_dispatch_s": summary(1.97, 1.54, 2.5),
    "peer_spawns_per_run": 930, "noop_speedup_vs_peer": summary(4.5, 3.7, 5.7),
}


def farm_db(rate: dict[str, float], p95: dict[str, float]) -> dict[str, Any]:
    return {"builds_per_s": rate, "claim_latency_ms_p50": summary(4.9, 4.4, 8.6),
            "claim_latency_ms_p95": p95, "claim_latency_ms_p95_all": p95["median"],
            "farm_cpu_ms_per_build": summary(29.4, 27.3, 33.5), "cpu_bound_builds_per_s": 68.0}


FARM = {
    "bench": "farm", "builds": 500, "runs": 5, "workers": 4, "latency_samples": 100,
    "latency_rate_per_s": 10.0, "peer": None,
    "peer_note": "no peer farm runnable here; syncpkgd polls every 300 s by design",
    "machine": {"cpus": 2, "loadavg_before": 1.1, "loadavg_after": 1.9},
    "sqlite": farm_db(summary(30.2, 27.3, 36.0), summary(13.1, 10.9, 22.8)),
    "postgresql": farm_db(summary(52.0, 50.5, 55.0), summary(300.0, 240.0, 410.0)),
}


def run_record(name: str, before: float, after: float) -> dict[str, Any]:
    return {"argv": [f"bench/{name}.py"], "returncode": 0, "elapsed_s": 60.0, "ok": True,
            "load_before": [before, 1.0, 0.9], "load_after": [after, 1.1, 0.9]}


def results(farm: dict[str, Any]) -> dict[str, Any]:
    runs = {name: run_record(name, 1.2, 1.5) for name in ("install", "publish", "links",
                                                         "farm")}
    runs["boot"] = {"argv": ["bench/boot.py"], "returncode": 1, "elapsed_s": 0.4, "ok": False,
                    "load_before": [1.5, 1.0, 0.9], "load_after": [1.5, 1.0, 0.9],
                    "stderr_tail": "SystemExit: run as root: both tools start the programs "
                                   "as a service user\n"}
    return {
        "machine": {"cpu": "AMD EPYC", "cores": 2, "ram_gib": 23.5, "kernel": "6.18.44",
                    "python": "3.11.7"},
        "started_at": "2026-01-02T03:04:05+00:00", "finished_at": "2026-01-02T03:34:05+00:00",
        "benches": {"install": INSTALL, "publish": PUBLISH, "links": LINKS, "farm": farm},
        "runs": {name: runs[name] for name in ("install", "publish", "boot", "links", "farm")},
        "rows": [],
    }


Rows = dict[tuple[str, str], list[str]]


def render(tmp_path: Path, document: dict[str, Any]) -> tuple[str, Rows]:
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(document))
    before = saved.read_bytes()
    proc = subprocess.run([sys.executable, str(REPORT), "--render", str(saved)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert saved.read_bytes() == before  # rendering reads, never rewrites, the raw lines
    text = (tmp_path / "RESULTS.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0] == "| bench | figure | Shipyard | peer | ratio | aim | met |"
    rows = {}
    for line in table[1:]:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert len(cells) == 7, line
        assert (cells[0], cells[1]) not in rows, line
        rows[(cells[0], cells[1])] = cells[2:]
    return text, rows


def test_every_figure_with_an_aim_or_a_peer_is_one_row(tmp_path: Path) -> None:
    text, rows = render(tmp_path, results(FARM))

    assert rows[("install", "pkg install (5000 files, 50 MiB) vs tar -xzf")] == [
        "2.21 [2.11-2.33] s", "tar -xzf: 1.07 [1.00-1.16] s",
        "2.07x [1.82-2.33] (of medians, pairwise spread)", "<= 1.5x tar", "no"]
    assert rows[("install", "pkg install (5000 files, 50 MiB) vs pip install")][2:] == [
        "0.740x [0.660-0.900] (of medians, pairwise spread)", "< 1x pip (faster)", "yes"]
    assert rows[("install", "pkg install (5000 files, 50 MiB) vs tar -xzf + sync")][2:] == [
        "1.84x (of medians)", "—", "—"]

    assert rows[("publish", "one upload, 10,000 packages")] == [
        "0.830 [0.740-0.960] s", "apt-ftparchive: 0.290 [0.200-0.340] s",
        "2.86x (of medians)", "< 1 s", "yes"]
    assert rows[("publish", "one upload, 10,000 vs 1,000 packages")] == [
        "0.830 [0.740-0.960] s", "Shipyard at 1,000: 0.770 [0.630-0.970] s",
        "1.08x [0.800-1.40] (pairwise)", "<= 1.5x at 1,000", "yes"]
    assert rows[("publish", "one upload, 1,000 packages")][3:] == ["—", "—"]
    assert rows[("publish", "full (queue of N), 10,000 packages")][0] == "12.6 [10.4-15.0] s"

    # links.py gives peer/Shipyard per run; with 5 runs the inverse is exact.
    assert rows[("links", "no-op reconcile, 900 pairs (0 adapters started)")] == [
        "0.380 [0.350-0.550] s", "literal dispatcher: 1.97 [1.54-2.50] s",
        "0.222x [0.175-0.270] (pairwise)", "< 1 s, 0 adapters started", "yes"]

    assert rows[("farm", "throughput, 500 builds, SQLite")] == [
        "30.2 [27.3-36.0] builds/s", "—", "—", ">= 50 builds/s", "no"]
    assert rows[("farm", "throughput, 500 builds, PostgreSQL")][3:] == [">= 50 builds/s", "yes"]
    assert rows[("farm", "request-to-claim p95, SQLite")] == [
        "13.1 [10.9-22.8] ms", "—", "—", "< 250 ms", "yes"]
    assert rows[("farm", "request-to-claim p95, PostgreSQL")][3:] == ["< 250 ms", "no"]

    assert "Machine: AMD EPYC, 2 cores, 23.5 GiB RAM, Linux 6.18.44, Python 3.11.7" in text
    assert "install 1.20 -> 1.50; publish 1.20 -> 1.50; boot 1.50 -> 1.50" in text


def test_a_failed_bench_and_no_buildbot_comparison_are_said(tmp_path: Path) -> None:
    text, rows = render(tmp_path, results(FARM))

    assert rows[("boot", "(bench failed)")] == ["FAILED (exit 1)", "—", "—", "—", "no"]
    assert not [key for key in rows if key[0] == "boot" and key[1] != "(bench failed)"]
    notes = text.split("## Notes", 1)[1]
    assert "- boot: failed (exit 1) after 0.4 s." in notes
    assert "SystemExit: run as root" in notes
    assert 'farm: no "vs_buildbot" in the farm line' in notes
    assert not [key for key in rows if "Buildbot" in key[1]]
    # The order is the run's: install, publish, boot, links, farm.
    order = list(dict.fromkeys(bench for bench, _ in rows))
    assert order == ["install", "publish", "boot", "links", "farm"]


def test_buildbot_comparison_rows(tmp_path: Path) -> None:
    """bench/farm.py's vs_buildbot: per-tool summaries and per-run ratios."""
    farm = {**FARM, "peer": "buildbot 4.3.0", "vs_buildbot": {
        "builds": 200, "workers": 4, "db": "sqlite",
        "shipyard": {"builds_per_s": summary(30.0, 28.0, 33.0),
                     "start_latency_ms_p50": summary(5.0, 4.0, 6.0),
                     "start_latency_ms_p95": summary(13.0, 11.0, 20.0)},
        "buildbot": {"builds_per_s": summary(5.0, 4.5, 6.0),
                     "start_latency_ms_p50": summary(600.0, 500.0, 700.0),
                     "start_latency_ms_p95": summary(900.0, 800.0, 1000.0)},
        "ratios": {"builds_per_s": summary(6.1, 5.2, 7.0),
                   "start_latency_ms_p95": summary(0.0144, 0.012, 0.02)},
    }}
    _, rows = render(tmp_path, results(farm))
    where = "vs Buildbot (200 builds at once, 4 workers, sqlite)"
    assert rows[("farm", f"{where}: throughput")] == [
        "30.0 [28.0-33.0] builds/s", "buildbot 4.3.0: 5.00 [4.50-6.00] builds/s",
        "6.10x [5.20-7.00] (pairwise)", ">= 5x Buildbot", "yes"]
    assert rows[("farm", f"{where}: request-to-start p95")] == [
        "13.0 [11.0-20.0] ms", "buildbot 4.3.0: 900 [800-1000] ms",
        "0.0144x [0.0120-0.0200] (pairwise)", "< 1x Buildbot (lower)", "yes"]

    del farm["vs_buildbot"]["ratios"]  # no per-run ratios: the medians', marked
    farm["vs_buildbot"]["buildbot"]["builds_per_s"] = summary(10.0, 9.0, 11.0)
    _, rows = render(tmp_path, results(farm))
    assert rows[("farm", f"{where}: throughput")][2:] == [
        "3.00x (of medians)", ">= 5x Buildbot", "no"]


def test_fleet_rows(tmp_path: Path) -> None:
    """bench/fleet.py: propagation p95 per size against the wake-up baseline, and RSS."""
    size = {"nodes": 100, "runs": 5, "propagation_p95_s": summary(1.2, 1.0, 1.5),
            "wakeup_p95_s": summary(0.8, 0.7, 0.9),
            "ratio_propagation_over_wakeup": summary(1.5, 1.3, 1.7),
            "rss_before_mb": 97.0, "rss_parked_mb": 120.0}
    fleet = {"bench": "fleet", "database": "postgresql",
             "sizes": {"1000": {**size, "nodes": 1000,
                                "propagation_p95_s": summary(6.0, 5.5, 7.0)},
                       "100": size},
             "aims_p95_s": {"100": 2.0, "1000": 5.0}}
    document = results(FARM)
    document["benches"]["fleet"] = fleet
    document["runs"]["fleet"] = run_record("fleet", 1.0, 1.0)
    _, rows = render(tmp_path, document)
    assert rows[("fleet", "announcement -> accept adapter on 100 nodes, p95 (PostgreSQL)")] == [
        "1.20 [1.00-1.50] s", "wake-up only: 0.800 [0.700-0.900] s",
        "1.50x [1.30-1.70] (pairwise)", "< 2 s", "yes"]
    assert rows[("fleet", "announcement -> accept adapter on 1000 nodes, p95 (PostgreSQL)")][
        3:] == ["< 5 s", "no"]
    assert rows[("fleet", "coordinator RSS, 100 parked long polls")][:2] == [
        "120 MB", "before any node: 97.0 MB"]


def test_fleet_e2e_rows(tmp_path: Path) -> None:
    """bench/fleet.py --parts e2e: git push -> running on N nodes against the farm's part
    alone (pairwise ratio), and the fleet's part on its own."""
    fleet = {"bench": "fleet", "database": "postgresql", "e2e": {
        "nodes": 20, "runs": 5, "push_to_running_s": summary(3.2, 2.5, 3.3),
        "farm_push_to_published_s": summary(1.6, 1.3, 2.1),
        "fleet_assign_to_running_s": summary(1.1, 1.0, 1.6),
        "ratio_total_over_farm": summary(1.9, 1.6, 2.0)}}
    document = results(FARM)
    document["benches"]["fleet"] = fleet
    document["runs"]["fleet"] = run_record("fleet", 1.0, 1.0)
    _, rows = render(tmp_path, document)
    assert rows[("fleet", "git push -> new version running on 20 real nodes")][:3] == [
        "3.20 [2.50-3.30] s", "push -> published (farm alone): 1.60 [1.30-2.10] s",
        "1.90x [1.60-2.00] (pairwise)"]
    assert rows[("fleet", "assignment -> running on all 20 nodes (the fleet's part)")][0] == \
        "1.10 [1.00-1.60] s"
