"""The hook's spool: build requests kept inside the bare repository until the
coordinator has answered them.

Every request is written here first and removed once the coordinator has answered, so a
coordinator that is down (or a hook killed halfway) loses nothing: the next push or
``shipyard farm hook flush`` sends what is left, in order. A request the coordinator
refuses moves to ``rejected/`` with the reason, for the operator.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from shipyard.farm.client import ApiError, FarmClient
from shipyard.farm.errors import CoordinatorUnreachable
from shipyard.farm.hookinstall import SPOOL_NAME, HookConfig, describe_file
from shipyard.fsutil import atomic_write, file_lock


@dataclass
class FlushReport:
    sent: list[str] = field(default_factory=list)
    kept: int = 0
    rejected: list[str] = field(default_factory=list)
    problem: str | None = None


def spool_dir(bare: Path) -> Path:
    return bare / SPOOL_NAME


def spool(bare: Path, requests: Iterable[dict]) -> list[Path]:
    directory = spool_dir(bare)
    directory.mkdir(exist_ok=True)
    paths = []
    for index, request in enumerate(requests):
        path = directory / f"{time.time_ns():020d}-{os.getpid()}-{index:04d}.json"
        atomic_write(path, json.dumps(request, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def pending(bare: Path) -> list[Path]:
    directory = spool_dir(bare)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".json" and p.is_file())


def _describe(request: dict) -> str:
    if request.get("group") and request.get("id"):
        name = f"{request['group']}:{request['id']} {request.get('version') or ''}".strip()
    else:
        name = request.get("subdir") or "."
    return f"{name} at {str(request.get('commit', ''))[:12]}"


def flush(bare: Path, config: HookConfig, out: TextIO | None = None) -> FlushReport:
    """Send spooled requests in order; stop at the first sign of an unreachable
    coordinator (the rest waits for the next push)."""
    report = FlushReport()
    with file_lock(spool_dir(bare) / ".lock", timeout=60, what="the farm hook spool"), \
            FarmClient(config.coordinator, config.token, timeout=10.0,
                       connect_timeout=3.0) as client:
        files = pending(bare)
        for index, path in enumerate(files):
            try:
                request = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                _reject(bare, path, "unreadable spool file")
                report.rejected.append(path.name)
                continue
            try:
                answer = client.post("/api/builds", request, retry_for=0.0)
            except CoordinatorUnreachable as exc:
                report.problem = exc.message
                report.kept = len(files) - index
                break
            except ApiError as exc:
                if exc.status in (401, 403):
                    report.problem = exc.message
                    report.kept = len(files) - index
                    break
                _reject(bare, path, exc.message)
                report.rejected.append(f"{_describe(request)}: {exc.message}")
                continue
            path.unlink()
            build = answer["build"]
            if answer.get("created"):
                line = (f"build {build['id']} {build['state']}: {_describe(request)}"
                        + (f" ({build['reason']})" if build["state"] == "failed" else "")
                        + f" {build['url']}")
            else:
                line = f"no new build: {answer.get('note', '').strip()} (build {build['id']})"
            report.sent.append(line)
    return report


def _reject(bare: Path, path: Path, reason: str) -> None:
    target = spool_dir(bare) / "rejected"
    target.mkdir(exist_ok=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {"raw": path.read_text(encoding="utf-8", errors="replace")}
    data["rejected"] = reason
    atomic_write(target / path.name, json.dumps(data, sort_keys=True) + "\n")
    path.unlink()


def print_report(report: FlushReport, bare: Path, out: TextIO) -> None:
    for line in report.sent:
        out.write(f"shipyard farm: {line}\n")
    for line in report.rejected:
        out.write(f"shipyard farm: request rejected: {line}\n")
    if report.problem:
        out.write(f"shipyard farm: {report.problem}\n"
                  f"shipyard farm: {report.kept} build request(s) kept in "
                  f"{spool_dir(bare)}; sent on the next push or by "
                  f"'shipyard farm hook flush {bare}'\n")


def send_unspooled(bare: Path, config: HookConfig, requests: list[dict], why: OSError,
                    out: TextIO) -> None:
    spool_problem = (f"cannot keep build requests in {spool_dir(bare)} "
                     f"({why.strerror or why}; {describe_file(spool_dir(bare))})")
    lost: list[str] = []
    problem = ""
    with FarmClient(config.coordinator, config.token, timeout=10.0,
                    connect_timeout=3.0) as client:
        for request in requests:
            if problem:
                lost.append(_describe(request))
                continue
            try:
                answer = client.post("/api/builds", request, retry_for=0.0)
            except (CoordinatorUnreachable, ApiError) as exc:
                problem = exc.message
                lost.append(_describe(request))
                continue
            build = answer["build"]
            out.write(f"shipyard farm: build {build['id']} {build['state']}: "
                      f"{_describe(request)} {build['url']}\n")
    if lost:
        out.write(f"shipyard farm: {len(lost)} build request(s) NOT sent and NOT kept "
                  f"({', '.join(lost)}): {spool_problem}, and {problem}; request them with "
                  "'shipyard farm build request'\n")
    else:
        out.write(f"shipyard farm: warning: {spool_problem}; requests were sent directly\n")
