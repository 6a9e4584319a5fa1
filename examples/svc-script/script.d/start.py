#!/usr/bin/env python3
"""Start the svc-script HTTP service, the copkg way.

    start.py --runtime-dir=DIR --coordinate=SVC --port=PORT [--greeting=TEXT]

1. parse the options and check that they make sense;
2. make sure the runtime directories exist;
3. pick the binary (here: one Python program for every platform);
4. launch it detached in its own session, write run/start.pid, and exit.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(prog="start.py")
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--coordinate", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--greeting", default=None)
    args = parser.parse_args()
    if not 1 <= args.port <= 65535:
        print(f"start.py: --port must be 1..65535, got {args.port}", file=sys.stderr)
        return 2
    if not args.runtime_dir.is_dir():
        print(f"start.py: --runtime-dir {args.runtime_dir} is not a directory",
              file=sys.stderr)
        return 2

    for name in ("log", "etc", "data", "run"):
        (args.runtime_dir / name).mkdir(exist_ok=True)

    # Package config is the default; instance config in the runtime etc/ overrides it;
    # the command line overrides both.
    greeting = args.greeting
    for candidate in (args.runtime_dir / "etc" / "greeting.txt",
                      PACKAGE / "etc" / "greeting.txt"):
        if greeting is None and candidate.is_file():
            greeting = candidate.read_text(encoding="utf-8").strip()

    server = PACKAGE / "bin" / "server.py"
    command = [sys.executable, str(server), f"--port={args.port}",
               f"--coordinate={args.coordinate}", f"--greeting={greeting or 'hello'}",
               f"--log={args.runtime_dir / 'log' / 'access.log'}"]
    proc = subprocess.Popen(command, cwd=args.runtime_dir, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    pid_file = args.runtime_dir / "run" / "start.pid"
    tmp = pid_file.with_name(".start.pid.tmp")
    tmp.write_text(f"{proc.pid}\n", encoding="ascii")
    os.replace(tmp, pid_file)
    print(f"svc-script: started {args.coordinate} on port {args.port} (pid {proc.pid})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
