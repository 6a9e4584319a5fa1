#!/usr/bin/env python3
"""Stop the svc-script HTTP service: TERM the pid in run/start.pid, wait, KILL.

    stop.py --runtime-dir=DIR --coordinate=SVC [--param=value ...]

Shipyard passes the same options start.py gets; this script needs only the runtime dir.
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def main() -> int:
    parser = argparse.ArgumentParser(prog="stop.py")
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--coordinate")
    args, _params = parser.parse_known_args()
    pid_file = args.runtime_dir / "run" / "start.pid"
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        print("svc-script: not running (no usable run/start.pid)")
        return 0
    if not alive(pid):
        pid_file.unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    print(f"svc-script: stopped pid {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
