#!/usr/bin/env python3
"""Start chat-server for one instance (the DESIGN.md start-script contract).

    start.py --runtime-dir=DIR --coordinate=SVC [--port=5222] [--bind=127.0.0.1]

Launches the server detached in its own session, writes run/start.pid, waits until the
server has opened its ports (run/ready) so that "started" means "answering", and exits.
The instance config etc/chat-server.conf is created from the package's default if missing;
the accept adapter edits it afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(prog="chat-server start.py")
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--coordinate", required=True)
    parser.add_argument("--port", type=int, default=5222)
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args()
    if not 1 <= args.port <= 65535:
        parser.error(f"--port={args.port} is not a port number")
    runtime = args.runtime_dir.resolve()
    for name in ("log", "etc", "run", "data", "console"):
        (runtime / name).mkdir(parents=True, exist_ok=True)
    config = runtime / "etc" / "chat-server.conf"
    if not config.exists():
        shutil.copyfile(PACKAGE / "etc" / "chat-server.conf", config)
        os.chmod(config, 0o600)
    ready = runtime / "run" / "ready"
    ready.unlink(missing_ok=True)
    log_path = runtime / "log" / "chat-server.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(PACKAGE / "bin" / "chat_server.py"),
             "--runtime-dir", str(runtime), "--port", str(args.port), "--bind", args.bind],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=runtime, start_new_session=True, close_fds=True)
    pid_file = runtime / "run" / "start.pid"
    tmp = pid_file.with_name(".start.pid.tmp")
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, pid_file)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready.exists():
            return 0
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-5:]
            sys.stderr.write("chat-server exited at start: " + " | ".join(tail) + "\n")
            return 1
        time.sleep(0.05)
    sys.stderr.write(f"chat-server did not open its ports within {READY_TIMEOUT:g}s\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
