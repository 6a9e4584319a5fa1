#!/usr/bin/env python3
"""Start svc-platform: pick bin/<platform>/server by SHIPYARD_PLATFORM, the copkg way.

    start.py --runtime-dir=DIR --coordinate=SVC [--label=TEXT]
"""

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent


def detect() -> str:
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return f"{platform.system().lower()}-{machine}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="start.py")
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--coordinate", required=True)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    if not args.runtime_dir.is_dir():
        print(f"start.py: --runtime-dir {args.runtime_dir} is not a directory",
              file=sys.stderr)
        return 2
    for name in ("log", "data", "run"):
        (args.runtime_dir / name).mkdir(exist_ok=True)

    target = os.environ.get("SHIPYARD_PLATFORM") or detect()
    binary = PACKAGE / "bin" / target / "server"
    if not binary.is_file():
        have = ", ".join(sorted(p.name for p in (PACKAGE / "bin").iterdir() if p.is_dir()))
        print(f"svc-platform: no server for platform {target} (have: {have})",
              file=sys.stderr)
        return 3
    proc = subprocess.Popen([str(binary), str(args.runtime_dir), args.label],
                            cwd=args.runtime_dir, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    pid_file = args.runtime_dir / "run" / "start.pid"
    tmp = pid_file.with_name(".start.pid.tmp")
    tmp.write_text(f"{proc.pid}\n", encoding="ascii")
    os.replace(tmp, pid_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
