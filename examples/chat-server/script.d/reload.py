#!/usr/bin/env python3
"""Ask a running chat-server to re-read its config; exit 0 only when it took it.

    reload.py --runtime-dir=DIR --coordinate=SVC [--port=P --bind=ADDR ...]

Shipyard runs this for ``svc reload`` and after a link adapter changed the config
(``on_change = "reload"``). The server answers "OK generation=N" or "ERROR <why>"; a
refused config leaves the old one in force, and the error reaches ``link list``.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

TIMEOUT = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(prog="reload.py")
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--coordinate")
    args, _params = parser.parse_known_args()
    try:
        bind, port = (args.runtime_dir / "run" / "listen").read_text().split()
    except (FileNotFoundError, ValueError):
        print("chat-server is not running; it reads its config when it starts")
        return 0
    try:
        with socket.create_connection((bind, int(port)), timeout=TIMEOUT) as sock:
            sock.sendall(b"RELOAD\n")
            reply = sock.makefile("r", encoding="utf-8").readline().strip()
    except ConnectionRefusedError:
        print("chat-server is not running; it reads its config when it starts")
        return 0
    except OSError as exc:
        sys.stderr.write(f"reload.py: cannot reach the server at {bind}:{port}: {exc}\n")
        return 1
    if not reply.startswith("OK"):
        sys.stderr.write(f"reload.py: the server refused the new config: "
                         f"{reply or 'no answer'}\n")
        return 1
    print(f"chat-server reloaded ({reply[3:]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
