"""Run every benchmark and write ``bench/results.json`` and ``bench/RESULTS.md``.

Each benchmark runs as a child of this Python (``bench/<name>.py``), its stderr streamed to
the terminal and the last JSON line of its stdout kept. A benchmark that fails (non-zero
exit or no JSON line) is recorded with the tail of its stderr; the others still run and
this script exits non-zero at the end. The Markdown table is a pure function of the saved
raw lines, so it can be re-rendered after the extractors change without running anything:

    .venv/bin/python bench/report.py [--only links,boot] [--args 'links=--size 10']
    .venv/bin/python bench/report.py --render bench/results.json

Standard library only: the report must run whatever state the benches leave behind.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
BENCHES = ("install", "publish", "boot", "links", "farm", "fleet")
STDERR_TAIL_LINES = 40


# -- the rows: a pure function of the raw JSON lines ------------------------------------------


@dataclass
class Cell:
    """A measured figure: median [min-max] unit. For a ratio, ``kind`` says how it was
    made (pairwise within the run, or of the two medians), since the two can differ a lot
    on a noisy machine."""

    median: float
    min: float | None = None
    max: float | None = None
    unit: str = ""
    label: str = ""
    kind: str = ""


@dataclass
class Row:
    bench: str
    figure: str
    shipyard: Cell | None = None
    peer: Cell | None = None
    ratio: Cell | None = None
    aim: str = ""
    met: bool | None = None
    failed: str = ""


@dataclass
class Extracted:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def stat(value: Any, unit: str = "", label: str = "") -> Cell | None:
    """A bench's ``{"median", "min", "max"}`` summary (or a bare number) as a Cell; None
    when the bench did not give it, so a missing figure drops a row instead of crashing."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Cell(float(value), unit=unit, label=label)
    if not isinstance(value, dict) or not isinstance(value.get("median"), int | float):
        return None
    low, high = value.get("min"), value.get("max")
    return Cell(value["median"], low if isinstance(low, int | float) else None,
                high if isinstance(high, int | float) else None, unit, label)


def dig(raw: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(raw, dict):
            return None
        raw = raw.get(key)
    return raw


def pairwise(summary: Any) -> Cell | None:
    cell = stat(summary)
    if cell:
        cell.kind = "pairwise"
    return cell


def of_medians(ours: Cell | None, peer: Cell | None) -> Cell | None:
    """The fallback when a bench gives no per-run ratios: marked, and without a spread."""
    if not ours or not peer or not peer.median:
        return None
    return Cell(ours.median / peer.median, kind="of medians")


def judge(value: float | None, test: Callable[[float], bool]) -> bool | None:
    return None if value is None else bool(test(value))


def median_of(cell: Cell | None) -> float | None:
    return cell.median if cell else None


def extract_install(raw: dict[str, Any]) -> Extracted:
    """Ratios: install.py gives the median and spread of the per-run ratios (older lines:
    the ratio of the medians with the per-run spread); the aims (at most 1.5x tar, faster
    than pip) are judged on the median."""
    out = Extracted()
    seconds = raw.get("seconds", {})
    ours = stat(seconds.get("shipyard"), "s")
    size = f"{raw.get('files', '?')} files, {raw.get('payload_bytes', 0) / 2**20:.0f} MiB"
    peers = (("tar", "tar -xzf", "shipyard_vs_tar", "<= 1.5x tar", lambda r: r <= 1.5),
             ("pip", "pip install", "shipyard_vs_pip", "< 1x pip (faster)", lambda r: r < 1),
             ("tar_sync", "tar -xzf + sync", None, "", None))
    for key, name, ratio_key, aim, test in peers:
        peer = stat(seconds.get(key), "s", name)
        if not ours or not peer:
            continue
        given = raw.get(ratio_key) if ratio_key else None
        if isinstance(given, dict) and isinstance(given.get("median"), int | float):
            ratio = Cell(given["median"], given.get("min"), given.get("max"),
                         kind="pairwise")
        elif isinstance(given, dict) and isinstance(given.get("median_ratio"), int | float):
            ratio = Cell(given["median_ratio"], given.get("min"), given.get("max"),
                         kind="of medians, pairwise spread")
        else:
            ratio = of_medians(ours, peer)
        out.rows.append(Row("install", f"pkg install ({size}) vs {name}", ours, peer, ratio,
                            aim, judge(median_of(ratio), test) if test else None))
    return out


def extract_publish(raw: dict[str, Any]) -> Extracted:
    """One upload and full publish per size against apt-ftparchive; the aims (one upload
    < 1 s at 10,000 packages, <= 1.5x its time at 1,000) hold at those sizes only."""
    out = Extracted()
    results = raw.get("results", {})
    sizes = sorted(int(size) for size in results)
    for size in sizes:
        line = results[str(size)]
        peer_line = line.get("peer") or {}
        if peer_line.get("skipped"):
            out.notes.append(f"publish at {size:,}: peer skipped: {peer_line['skipped']}")
        for key, what in (("one_upload", "one upload"), ("full", "full (queue of N)")):
            ours = stat(line.get(key), "s")
            peer = stat(peer_line.get(key), "s", "apt-ftparchive")
            if not ours:
                continue
            aim, met = "", None
            if key == "one_upload" and size == 10_000:
                aim, met = "< 1 s", judge(ours.median, lambda s: s < 1.0)
            if not aim and not peer:
                continue
            out.rows.append(Row("publish", f"{what}, {size:,} packages", ours, peer,
                                of_medians(ours, peer), aim, met))
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        ours = stat(dig(results, str(large), "one_upload"), "s")
        base = stat(dig(results, str(small), "one_upload"), "s",
                    f"Shipyard at {small:,}")
        ratio = pairwise(raw.get("one_upload_ratio_large_to_small")) or of_medians(ours, base)
        aimed = (small, large) == (1_000, 10_000)
        out.rows.append(Row("publish", f"one upload, {large:,} vs {small:,} packages", ours,
                            base, ratio, f"<= 1.5x at {small:,}" if aimed else "",
                            judge(median_of(ratio), lambda r: r <= 1.5) if aimed else None))
    if 10_000 not in sizes:
        out.notes.append("publish: no run at 10,000 packages, so its aims are not judged")
    return out


def extract_boot(raw: dict[str, Any]) -> Extracted:
    """Aim: faster than supervisord (ratio Shipyard/supervisord below 1), judged on the
    median of the per-run ratios boot.py computes."""
    out = Extracted()
    count = raw.get("instances", "?")
    grace = raw.get("start_grace_s", "?")
    for ours_key, peer_key, ratio_key, what, peer_name in (
            ("boot_s", "start_all_s", "boot", f"svc boot, {count} instances, grace {grace} s",
             "supervisorctl start all"),
            ("shutdown_s", "stop_all_s", "shutdown", f"svc shutdown, {count} instances",
             "supervisorctl stop all")):
        ours = stat(dig(raw, "shipyard", ours_key), "s")
        peer = stat(dig(raw, "supervisord", peer_key), "s", peer_name)
        if not ours:
            continue
        ratio = pairwise(dig(raw, "ratio_shipyard_over_supervisord", ratio_key)) \
            or of_medians(ours, peer)
        out.rows.append(Row("boot", what, ours, peer, ratio, "< 1x supervisord (faster)",
                            judge(median_of(ratio), lambda r: r < 1)))
    return out


def inverted(speedup: Any, runs: Any) -> Cell | None:
    """Shipyard/peer from a per-run peer/Shipyard summary. Exact for an odd number of runs
    (the median is one run's value); otherwise the bench's own direction, marked."""
    cell = pairwise(speedup)
    if not cell or not cell.median:
        return cell
    if not (isinstance(runs, int) and runs % 2 == 1 and cell.min and cell.max):
        cell.kind = "pairwise, peer/Shipyard"
        return cell
    return Cell(1 / cell.median, 1 / cell.max, 1 / cell.min, kind="pairwise")


def extract_links(raw: dict[str, Any]) -> Extracted:
    """The peer (the literal dispatcher) costs the same on every run. links.py gives the
    per-run speed-up peer/Shipyard of the no-op; the aim is its own (README: no adapter
    started and under 1 s wall, Python start-up included)."""
    out = Extracted()
    pairs = raw.get("pairs", "?")
    peer = stat(raw.get("peer_literal_dispatch_s"), "s", "literal dispatcher")
    noop = stat(raw.get("noop_reconcile_s"), "s")
    if noop:
        runs = [raw.get("noop_accept_runs"), raw.get("noop_announce_runs")]
        started = sum(runs) if all(isinstance(r, int) for r in runs) else None
        ratio = inverted(raw.get("noop_speedup_vs_peer"), raw.get("repeats")) \
            or of_medians(noop, peer)
        count = "?" if started is None else started
        out.rows.append(Row("links", f"no-op reconcile, {pairs} pairs ({count} adapters "
                                     "started)", noop, peer, ratio,
                            "< 1 s, 0 adapters started",
                            None if started is None else noop.median < 1.0 and started == 0))
    first = stat(raw.get("first_reconcile_s"), "s")
    if first and peer:
        out.rows.append(Row("links", f"first reconcile, {pairs} pairs", first, peer,
                            of_medians(first, peer)))
    return out


def extract_farm(raw: dict[str, Any]) -> Extracted:
    out = Extracted()
    builds = raw.get("builds", "?")
    for db, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        line = raw.get(db)
        if not isinstance(line, dict):
            continue
        rate = stat(line.get("builds_per_s"), "builds/s")
        if rate:
            out.rows.append(Row("farm", f"throughput, {builds} builds, {name}", rate,
                                aim=">= 50 builds/s",
                                met=judge(rate.median, lambda r: r >= 50)))
        p95 = stat(line.get("claim_latency_ms_p95"), "ms")
        if p95:
            out.rows.append(Row("farm", f"request-to-claim p95, {name}", p95,
                                aim="< 250 ms", met=judge(p95.median, lambda ms: ms < 250)))
    vs = extract_vs_buildbot(raw)
    out.rows += vs.rows
    out.notes += vs.notes
    return out


def extract_vs_buildbot(raw: dict[str, Any]) -> Extracted:
    """Aims: Shipyard's throughput >= 5x Buildbot's and its p95 request-to-start lower,
    both judged on the per-run ratios bench/farm.py computes (``ratios``, keyed like the
    figures: Shipyard / Buildbot). A missing or odd ``vs_buildbot`` gives a note."""
    out = Extracted()
    vs = raw.get("vs_buildbot")
    if vs is None:
        out.notes.append('farm: no "vs_buildbot" in the farm line: no Buildbot rows')
        return out
    if not isinstance(vs, dict) or vs.get("skipped"):
        reason = vs.get("skipped") if isinstance(vs, dict) else repr(vs)[:200]
        out.notes.append(f"farm: Buildbot comparison skipped: {reason}")
        return out
    ours_line, theirs_line = vs.get("shipyard") or {}, vs.get("buildbot") or {}
    peer = str(raw.get("peer") or "Buildbot")
    size = f"{vs.get('builds', '?')} builds at once, {vs.get('workers', '?')} workers"
    if isinstance(vs.get("db"), str):
        size += f", {vs['db']}"
    for key, ratio_key, unit, what, aim, test in (
            ("builds_per_s", "ratio_builds_per_s", "builds/s", "throughput",
             ">= 5x Buildbot", lambda r: r >= 5),
            ("start_latency_ms_p95", "ratio_p95", "ms", "request-to-start p95",
             "< 1x Buildbot (lower)", lambda r: r < 1)):
        ours = stat(ours_line.get(key), unit)
        theirs = stat(theirs_line.get(key), unit, peer)
        if not ours or not theirs:
            out.notes.append(f"farm: vs_buildbot has no {what} for both tools "
                             f"(keys: {sorted(vs)})")
            continue
        ratios = vs.get("ratios") if isinstance(vs.get("ratios"), dict) else {}
        ratio = (pairwise(ratios.get(key)) or pairwise(vs.get(ratio_key))
                 or of_medians(ours, theirs))
        out.rows.append(Row("farm", f"vs Buildbot ({size}): {what}", ours, theirs, ratio,
                            aim, judge(median_of(ratio), test)))
    return out


def extract_fleet(raw: dict[str, Any]) -> Extracted:
    """Propagation p95 per fleet size against the wake-up baseline (a revision bump with
    no link change, the long poll's own fan-out), pairwise per run; the aims are the
    issue's: p95 < 2 s at 100 nodes, < 5 s at 1,000. Memory with every poll parked. End to
    end (``e2e``): git push -> running on real agents against push -> published."""
    out = Extracted()
    aims = raw.get("aims_p95_s") or {}
    for size, figures in sorted((raw.get("sizes") or {}).items(), key=lambda i: int(i[0])):
        ours = stat(figures.get("propagation_p95_s"), "s")
        base = stat(figures.get("wakeup_p95_s"), "s", "wake-up only")
        aim = aims.get(size)
        if ours:
            out.rows.append(Row("fleet", f"announcement -> accept adapter on {size} nodes, "
                                         "p95 (PostgreSQL)", ours, base,
                                pairwise(figures.get("ratio_propagation_over_wakeup")),
                                f"< {aim:g} s" if aim else "",
                                judge(ours.median, lambda v, a=aim: v < a) if aim else None))
        parked = stat(figures.get("rss_parked_mb"), "MB")
        before = stat(figures.get("rss_before_mb"), "MB", "before any node")
        if parked:
            out.rows.append(Row("fleet", f"coordinator RSS, {size} parked long polls",
                                parked, before, of_medians(parked, before)))
    e2e = raw.get("e2e") if isinstance(raw.get("e2e"), dict) else {}
    total = stat(e2e.get("push_to_running_s"), "s")
    if total:
        # Baseline: the same push -> published, the farm's part alone; the ratio is pairwise.
        out.rows.append(Row("fleet", f"git push -> new version running on {e2e.get('nodes')} "
                                     "real nodes", total,
                            stat(e2e.get("farm_push_to_published_s"), "s",
                                 "push -> published (farm alone)"),
                            pairwise(e2e.get("ratio_total_over_farm"))))
        fleet = stat(e2e.get("fleet_assign_to_running_s"), "s")
        if fleet:
            out.rows.append(Row("fleet", f"assignment -> running on all {e2e.get('nodes')} "
                                         "nodes (the fleet's part)", fleet))
    return out


EXTRACTORS: dict[str, Callable[[dict[str, Any]], Extracted]] = {
    "install": extract_install, "publish": extract_publish, "boot": extract_boot,
    "links": extract_links, "farm": extract_farm, "fleet": extract_fleet,
}


def rows_of(results: dict[str, Any]) -> Extracted:
    """Every row and note of a results document; a failed bench is one row saying so."""
    out = Extracted()
    runs = results.get("runs", {})
    benches = results.get("benches", {})
    names = [n for n in BENCHES if n in runs or n in benches]
    names += [n for n in [*runs, *benches] if n not in names]
    for name in dict.fromkeys(names):
        run = runs.get(name, {})
        raw = benches.get(name)
        if raw is None:
            why = run.get("error") or f"exit {run.get('returncode')}"
            out.rows.append(Row(name, "(bench failed)", met=False, failed=why))
            note = f"{name}: failed ({why}) after {run.get('elapsed_s', '?')} s."
            for stream in ("stderr", "stdout"):
                tail = (run.get(f"{stream}_tail") or "").rstrip()
                if tail or stream == "stderr":
                    note += f"\n\nEnd of its {stream}:\n\n```\n{tail or '(empty)'}\n```"
            out.notes.append(note)
            continue
        extractor = EXTRACTORS.get(name)
        if extractor is None:
            out.notes.append(f"{name}: no extractor, raw line kept in results.json only")
            continue
        try:
            got = extractor(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            out.notes.append(f"{name}: could not read its line ({type(error).__name__}: "
                             f"{error})")
            continue
        out.rows += got.rows
        out.notes += got.notes
        if not got.rows:
            out.notes.append(f"{name}: its line gave no row")
    return out


# -- Markdown -----------------------------------------------------------------------------


def number(value: float) -> str:
    size = abs(value)
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:#.3g}"


def show(cell: Cell | None, times: bool = False) -> str:
    if cell is None:
        return "—"
    mark = "x" if times else ""
    text = f"{number(cell.median)}{mark}"
    if cell.min is not None and cell.max is not None:
        text += f" [{number(cell.min)}-{number(cell.max)}]"
    if cell.unit:
        text += f" {cell.unit}"
    if cell.label:
        text = f"{cell.label}: {text}"
    if cell.kind:
        text += f" ({cell.kind})"
    return text


def met_text(row: Row) -> str:
    return "—" if row.met is None else ("yes" if row.met else "no")


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(escape(c) for c in cells) + " |"


def machine_line(results: dict[str, Any]) -> list[str]:
    machine = results.get("machine", {})
    started = results.get("started_at", "?")
    finished = results.get("finished_at", "?")
    ram = machine.get("ram_gib")
    lines = [f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
             f"{ram if ram is not None else '?'} GiB RAM, Linux {machine.get('kernel', '?')}"
             f", Python {machine.get('python', '?')}; run from {started} to {finished} (UTC)."]
    loads = []
    for name, run in results.get("runs", {}).items():
        before, after = run.get("load_before"), run.get("load_after")
        if before and after:
            loads.append(f"{name} {before[0]:.2f} -> {after[0]:.2f}")
    if loads:
        lines.append("Load average (1 min) before -> after each bench: "
                     + "; ".join(loads) + ".")
    return lines


def render(results: dict[str, Any]) -> str:
    extracted = rows_of(results)
    lines = ["# Benchmark results", "", *machine_line(results), "",
             "Cells: median [min-max] unit over the bench's runs after its warm-up. A ratio "
             "is Shipyard / peer unless marked; \"pairwise\" = computed run by run within "
             "the bench, \"of medians\" = the two medians divided. Written by "
             "`bench/report.py`; the raw lines are in `results.json`.", "",
             table_line(["bench", "figure", "Shipyard", "peer", "ratio", "aim", "met"]),
             "|---|---|---|---|---|---|---|"]
    for row in extracted.rows:
        if row.failed:
            lines.append(table_line([row.bench, row.figure, f"FAILED ({row.failed})", "—",
                                     "—", "—", met_text(row)]))
            continue
        lines.append(table_line([row.bench, row.figure, show(row.shipyard), show(row.peer),
                                 show(row.ratio, times=True), row.aim or "—",
                                 met_text(row)]))
    if extracted.notes:
        lines += ["", "## Notes", ""]
        for note in extracted.notes:  # continuation lines indented: still the same item
            first, *rest = note.split("\n")
            lines += [f"- {first}", *(f"  {line}" if line else "" for line in rest)]
    return "\n".join(lines) + "\n"


# -- running the benches -------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    ram = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram, "kernel": platform.release(),
            "python": platform.python_version(), "executable": sys.executable}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def child_env() -> dict[str, str]:
    """The benches time command start-up, which an installed tool pays with its .pyc
    files present: the shell here sets PYTHONDONTWRITEBYTECODE, an operator's does not."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def pump(stream: Any, sink: Any, keep: collections.deque[bytes] | list[bytes]) -> None:
    for chunk in iter(stream.readline, b""):
        keep.append(chunk)
        if sink is not None:
            sink.write(chunk)
            sink.flush()


def last_json(stdout: bytes) -> dict[str, Any] | None:
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def run_bench(name: str, args: list[str], timeout: float) -> tuple[dict[str, Any], Any]:
    """One bench as a child; returns its run record and its JSON line (None if failed).
    On timeout it gets SIGINT first, so its ``finally`` blocks clean up what it started."""
    argv = [sys.executable, str(BENCH_DIR / f"{name}.py"), *args]
    shown = [str(Path(argv[1]).relative_to(ROOT)), *args]
    record: dict[str, Any] = {"argv": shown, "load_before": list(os.getloadavg())}
    print(f"[bench] {name}: running {shlex.join(shown)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    out: list[bytes] = []
    tail: collections.deque[bytes] = collections.deque(maxlen=STDERR_TAIL_LINES)
    proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    readers = [threading.Thread(target=pump, args=(proc.stdout, None, out), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, sys.stderr.buffer, tail),
                                daemon=True)]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout)
    except KeyboardInterrupt:  # let the bench clean up what it started, then stop here
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        raise
    except subprocess.TimeoutExpired:
        record["error"] = f"timed out after {timeout:.0f} s"
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for reader in readers:  # a daemon the bench left behind may still hold a pipe open
        reader.join(timeout=5)
    elapsed = time.monotonic() - started
    record.update(returncode=proc.returncode, elapsed_s=round(elapsed, 1),
                  load_after=list(os.getloadavg()))
    line = last_json(b"".join(out)) if proc.returncode == 0 else None
    if proc.returncode == 0 and line is None:
        record["error"] = "no JSON line on stdout"
    record["ok"] = line is not None
    if line is None:
        record["stderr_tail"] = b"".join(tail).decode(errors="replace")
        record["stdout_tail"] = "\n".join(
            b"".join(out).decode(errors="replace").splitlines()[-STDERR_TAIL_LINES:])
    state = "ok" if line else f"FAILED ({record.get('error') or f'exit {proc.returncode}'})"
    print(f"[bench] {name}: {state} in {elapsed:.1f} s (load {record['load_before'][0]:.2f}"
          f" -> {record['load_after'][0]:.2f})", file=sys.stderr, flush=True)
    return record, line


def bench_args(specs: list[str]) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep or name not in BENCHES:
            raise SystemExit(f"--args wants NAME=ARGS with NAME one of {', '.join(BENCHES)}")
        parsed.setdefault(name, []).extend(shlex.split(text))
    return parsed


def run_all(names: list[str], extra: dict[str, list[str]], timeout: float
            ) -> dict[str, Any]:
    # What an installed tool has: compiled modules (the benches import src/ through the
    # editable install, and this shell would otherwise never write .pyc files).
    compileall.compile_dir(ROOT / "src", quiet=1)
    results: dict[str, Any] = {"machine": machine_info(), "started_at": now(),
                               "finished_at": None, "benches": {}, "runs": {}, "rows": []}
    for name in names:
        try:
            record, line = run_bench(name, extra.get(name, []), timeout)
        except KeyboardInterrupt:
            results["runs"][name] = {"ok": False, "error": "interrupted", "returncode": None}
            print("[bench] interrupted: writing what ran so far", file=sys.stderr)
            break
        results["runs"][name] = record
        if line is not None:
            results["benches"][name] = line
    results["finished_at"] = now()
    results["rows"] = [asdict(row) for row in rows_of(results).rows]
    return results


def write_markdown(results: dict[str, Any], path: Path) -> None:
    path.write_text(render(results))
    print(f"[bench] wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES),
                        help="comma-separated benches to run, in the usual order")
    parser.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                        help="extra arguments for one bench, e.g. 'links=--size 10'")
    parser.add_argument("--out", type=Path, default=BENCH_DIR,
                        help="directory for results.json and RESULTS.md")
    parser.add_argument("--timeout", type=float, default=3 * 3600,
                        help="seconds one bench may take before it is stopped")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="re-render RESULTS.md (next to it) from a saved results.json")
    args = parser.parse_args(argv)
    if args.render:
        write_markdown(json.loads(args.render.read_text()),
                       args.render.with_name("RESULTS.md"))
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown bench(es) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    results = run_all([n for n in BENCHES if n in names], bench_args(args.args),
                      args.timeout)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"[bench] wrote {args.out / 'results.json'}", file=sys.stderr)
    write_markdown(results, args.out / "RESULTS.md")
    failed = [name for name, run in results["runs"].items() if not run.get("ok")]
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
