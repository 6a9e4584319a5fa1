#!/usr/bin/env python3
"""A chat-server component ("transport"): connects to its port, authenticates, answers.

    transport.py --runtime-dir DIR [--server 127.0.0.1] [--transform echo|upper]

Reads host, port and password from the link config Shipyard generated at registration
(etc/link-jabber-component.ini), connects to the server's component port (at the
acceptor_host/acceptor_port a fleet agent wrote there, else at --server and the port),
answers the challenge with sha256(nonce + password) and then turns every
"MSG <client> <text>" into "REPLY <client> <transformed text>". When the server refuses
or drops it, it logs why and tries again (backing off up to 2 s), re-reading its config each time.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import signal
import socket
import sys
import time
from pathlib import Path

CONFIG = Path("etc") / "link-jabber-component.ini"
TRANSFORMS = {"echo": lambda text: text, "upper": lambda text: text.upper()}


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stdout.write(f"{stamp} transport: {message}\n")
    sys.stdout.flush()


def read_config(runtime: Path, server: str) -> tuple[str, int, str, str, int]:
    """(host, port, password, address to connect to, its port)."""
    parser = configparser.ConfigParser(interpolation=None)
    with open(runtime / CONFIG, encoding="utf-8") as handle:
        parser.read_file(handle)
    section = parser["link"]
    port = int(section["port"])
    target = section.get("acceptor_host") or server
    target_port = int(section.get("acceptor_port") or port)
    return section["host"], port, section["password"], target, target_port


def session(server: str, runtime: Path, transform) -> str:
    """One connection; returns why it ended."""
    host, _port, password, target, port = read_config(runtime, server)
    with socket.create_connection((target, port), timeout=10) as sock:
        reader = sock.makefile("r", encoding="utf-8", newline="\n")
        challenge = reader.readline().split()
        if len(challenge) != 2 or challenge[0] != "CHALLENGE":
            return "refused: no challenge from the server"
        proof = hashlib.sha256((challenge[1] + password).encode()).hexdigest()
        sock.sendall(f"AUTH {host} {proof}\n".encode())
        answer = reader.readline().strip()
        if answer != "OK":
            return f"refused: {answer or 'connection closed'}"
        log(f"authenticated as {host} on {target}:{port}")
        sock.settimeout(None)
        for line in reader:
            parts = line.rstrip("\n").split(" ", 2)
            if parts[0] == "MSG" and len(parts) >= 2:
                text = parts[2] if len(parts) == 3 else ""
                sock.sendall(f"REPLY {parts[1]} {transform(text)}\n".encode())
            elif parts[0] == "DENIED":
                return f"disconnected: {' '.join(parts[1:])}"
        return "disconnected: connection closed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--server", default="127.0.0.1")
    parser.add_argument("--transform", choices=sorted(TRANSFORMS), default="echo")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    runtime = args.runtime_dir.resolve()
    delay = 0.2
    while True:
        try:
            reason = session(args.server, runtime, TRANSFORMS[args.transform])
        except FileNotFoundError:
            reason = f"no link config yet ({runtime / CONFIG})"
        except (OSError, KeyError, ValueError, configparser.Error) as exc:
            reason = f"cannot connect: {exc}"
        log(reason)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
        if reason.startswith("disconnected"):
            delay = 0.2


if __name__ == "__main__":
    sys.exit(main())
