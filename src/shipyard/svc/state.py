"""What Shipyard remembers about a started instance: the identity of its process.

One small JSON file per instance under ``<paths.run>/svc/``, replaced atomically (a reader
sees the old record or the new one). It is not fsynced: it describes processes, which do
not survive a power cut either, and the boot id inside it makes a record from an earlier
boot read as stale. Starting hundreds of instances at boot then costs no disk flushes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shipyard.fsutil import atomic_write


@dataclass
class Record:
    pid: int
    pgid: int
    start: str           # exact start ticks (Linux) or create time: the identity
    boot_id: str
    create_time: float   # wall clock, for display and pid-file checks
    started_at: float
    package: str
    user: str
    mode: str            # "script" or "exec"
    # The package's [service] stop when it started ("" for none), so that a shutdown need
    # not read manifests; None when unknown (an adopted process, an older record).
    stop: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"


def load(path: Path) -> Record | None:
    """The record at ``path`` (see :func:`shipyard.svc.runtime.state_path`), if any."""
    try:
        with open(path, encoding="utf-8") as handle:
            data: Any = json.load(handle)
        return Record(
            pid=int(data["pid"]), pgid=int(data["pgid"]), start=str(data["start"]),
            boot_id=str(data["boot_id"]), create_time=float(data["create_time"]),
            started_at=float(data.get("started_at", data["create_time"])),
            package=str(data.get("package", "")), user=str(data.get("user", "")),
            mode=str(data.get("mode", "")),
            stop=_optional_str(data.get("stop")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # A record we cannot read identifies nothing; treating it as absent is safe
        # because we then never signal anything on its behalf.
        return None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def save(path: Path, record: Record) -> None:
    atomic_write(path, record.to_json(), mode=0o644, fsync=False)


def clear(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def now() -> float:
    return time.time()
