#!/usr/bin/env python3
"""Start the transport for one instance (the DESIGN.md start-script contract).

    start.py --runtime-dir=DIR --coordinate=SVC [--server=127.0.0.1]

Launches the transport detached in its own session, writes run/start.pid and exits; the
transport connects (and reconnects) to the server by itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
TRANSFORM = "echo"


def main() -> int:
    parser = argparse.ArgumentParser(prog="start.py")
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--coordinate", required=True)
    parser.add_argument("--server", default="127.0.0.1")
    args = parser.parse_args()
    runtime = args.runtime_dir.resolve()
    for name in ("log", "etc", "run", "data", "console"):
        (runtime / name).mkdir(parents=True, exist_ok=True)
    with open(runtime / "log" / "transport.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(PACKAGE / "bin" / "transport.py"), "--runtime-dir",
             str(runtime), "--server", args.server, "--transform", TRANSFORM],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=runtime, start_new_session=True, close_fds=True)
    pid_file = runtime / "run" / "start.pid"
    tmp = pid_file.with_name(".start.pid.tmp")
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, pid_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
