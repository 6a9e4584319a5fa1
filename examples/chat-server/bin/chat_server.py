#!/usr/bin/env python3
"""chat-server: clients chat on one port; components (transports) connect on their own ports.

Like the jabber servers of the ALT Linux design, the server knows its components only from
its own config file (``etc/chat-server.conf``, no include directory): one line per component
with the host name it is addressed as, the port it connects to and a shared secret. The
server listens on every port its config names; a component proves it knows the secret with
a challenge (``sha256(nonce + secret)``, as XEP-0114's handshake does with SHA-1), so the
secret never crosses the wire.

Client protocol (the ``--port`` port, one line per command, UTF-8)::

    STATUS              -> one JSON line: generation, authenticated, configured, listening
    RELOAD              -> re-read the config: "OK generation=N" or "ERROR <why>"
    SEND <host> <text>  -> forwarded to that component; its answer comes as "FROM <host> <text>"
    SAY <text>          -> "SAID <client> <text>" to every other client
    QUIT

SIGHUP also reloads. Removing a component from the config and reloading disconnects it at
once and closes its port when no other component uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG = Path("etc") / "chat-server.conf"
HANDSHAKE_TIMEOUT = 10.0


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stdout.write(f"{stamp} chat-server: {message}\n")
    sys.stdout.flush()


def parse_config(text: str) -> dict[str, tuple[int, str]]:
    """host -> (port, secret). Errors name the line, never its secret."""
    components: dict[str, tuple[int, str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            raise ValueError(f"line {number}: unbalanced quotes") from None
        if (len(tokens) != 4 or tokens[0] != "component" or not tokens[2].isdigit()
                or not 1 <= int(tokens[2]) <= 65535 or not tokens[3]):
            raise ValueError(f"line {number}: expected 'component HOST PORT SECRET'")
        components[tokens[1]] = (int(tokens[2]), tokens[3])
    return components


@dataclass
class Session:
    host: str
    port: int
    secret: str
    writer: asyncio.StreamWriter
    since: float


class Server:
    def __init__(self, runtime: Path, bind: str, port: int) -> None:
        self.runtime = runtime
        self.bind = bind
        self.port = port
        self.components: dict[str, tuple[int, str]] = {}
        self.listeners: dict[int, asyncio.base_events.Server] = {}
        self.sessions: dict[str, Session] = {}
        self.clients: dict[str, asyncio.StreamWriter] = {}
        self.generation = 0
        self.errors: list[str] = []
        self.next_client = 0
        self.reload_lock = asyncio.Lock()

    # -- configuration -------------------------------------------------------------------

    async def reload(self) -> tuple[bool, str]:
        async with self.reload_lock:
            path = self.runtime / CONFIG
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            except OSError as exc:
                return False, f"cannot read {path}: {exc.strerror}"
            try:
                components = parse_config(text)
            except ValueError as exc:
                log(f"config not loaded: {path}: {exc}")
                return False, f"{path}: {exc}"
            self.components = components
            self.generation += 1
            for host, session in list(self.sessions.items()):
                if components.get(host) != (session.port, session.secret):
                    log(f"component {host} removed from config: disconnecting it")
                    with contextlib.suppress(OSError):
                        session.writer.write(b"DENIED removed from config\n")
                    session.writer.close()
                    del self.sessions[host]
            wanted = {port for port, _secret in components.values()}
            for port in sorted(set(self.listeners) - wanted):
                self.listeners.pop(port).close()
                log(f"closed component port {port}")
            errors = []
            for port in sorted(wanted - set(self.listeners)):
                try:
                    self.listeners[port] = await asyncio.start_server(
                        lambda r, w, p=port: self.component(p, r, w), self.bind, port,
                        reuse_address=True)
                    log(f"listening for components on {self.bind}:{port}")
                except OSError as exc:
                    errors.append(f"port {port}: {exc.strerror}")
                    log(f"cannot listen on component port {port}: {exc.strerror}")
            self.errors = errors
            log(f"config generation {self.generation}: {len(components)} component(s)")
            return True, f"generation={self.generation}"

    def status(self) -> dict[str, object]:
        return {
            "generation": self.generation,
            "authenticated": sorted(self.sessions),
            "configured": [{"host": h, "port": p} for h, (p, _s) in sorted(
                self.components.items())],
            "listening": sorted(self.listeners),
            "errors": self.errors,
            "clients": len(self.clients),
        }

    # -- components ----------------------------------------------------------------------

    async def component(self, port: int, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        nonce = secrets.token_hex(16)
        session: Session | None = None
        try:
            writer.write(f"CHALLENGE {nonce}\n".encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), HANDSHAKE_TIMEOUT)
            parts = line.decode("utf-8", errors="replace").split()
            if len(parts) != 3 or parts[0] != "AUTH":
                await self._deny(writer, "bad handshake")
                return
            host, proof = parts[1], parts[2]
            allowed = self.components.get(host)
            if allowed is None or allowed[0] != port:
                log(f"refused unknown component {host!r} on port {port}")
                await self._deny(writer, "unknown component")
                return
            expected = hashlib.sha256((nonce + allowed[1]).encode()).hexdigest()
            if not hmac.compare_digest(proof.encode(), expected.encode()):
                log(f"refused component {host} on port {port}: wrong secret")
                await self._deny(writer, "wrong secret")
                return
            old = self.sessions.get(host)
            if old is not None:
                old.writer.close()
            session = Session(host, port, allowed[1], writer, time.time())
            self.sessions[host] = session
            writer.write(b"OK\n")
            await writer.drain()
            log(f"component {host} authenticated on port {port}")
            while line := await reader.readline():
                parts = line.decode("utf-8", errors="replace").rstrip("\n").split(" ", 2)
                if len(parts) == 3 and parts[0] == "REPLY" and parts[1] in self.clients:
                    client = self.clients[parts[1]]
                    client.write(f"FROM {host} {parts[2]}\n".encode())
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            if session is not None and self.sessions.get(session.host) is session:
                del self.sessions[session.host]
                log(f"component {session.host} disconnected")
            writer.close()

    async def _deny(self, writer: asyncio.StreamWriter, reason: str) -> None:
        writer.write(f"DENIED {reason}\n".encode())
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()

    # -- clients -------------------------------------------------------------------------

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.next_client += 1
        name = f"c{self.next_client}"
        self.clients[name] = writer
        try:
            while line := await reader.readline():
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                command, _, rest = text.partition(" ")
                command = command.upper()
                if command == "STATUS":
                    writer.write((json.dumps(self.status(), sort_keys=True) + "\n").encode())
                elif command == "RELOAD":
                    ok, message = await self.reload()
                    writer.write(f"{'OK' if ok else 'ERROR'} {message}\n".encode())
                elif command == "SEND":
                    host, _, body = rest.partition(" ")
                    session = self.sessions.get(host)
                    if session is None:
                        writer.write(f"ERROR no component {host}\n".encode())
                    else:
                        session.writer.write(f"MSG {name} {body}\n".encode())
                elif command == "SAY":
                    for other, peer in self.clients.items():
                        if other != name:
                            peer.write(f"SAID {name} {rest}\n".encode())
                    writer.write(b"OK\n")
                elif command == "QUIT":
                    break
                else:
                    writer.write(b"ERROR unknown command\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.clients.pop(name, None)
            writer.close()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        ok, message = await self.reload()
        if not ok:
            log(f"starting without components: {message}")
        listener = await asyncio.start_server(self.client, self.bind, self.port,
                                              reuse_address=True)
        run = self.runtime / "run"
        run.mkdir(parents=True, exist_ok=True)
        (run / "listen").write_text(f"{self.bind} {self.port}\n")
        (run / "ready").write_text(f"{os.getpid()}\n")
        log(f"clients on {self.bind}:{self.port}")
        await stop.wait()
        log("stopping")
        listener.close()
        for server in self.listeners.values():
            server.close()
        for session in list(self.sessions.values()):
            session.writer.close()
        for path in (run / "listen", run / "ready"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=5222)
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args()
    server = Server(args.runtime_dir.resolve(), args.bind, args.port)
    try:
        asyncio.run(server.serve())
    except OSError as exc:
        log(f"cannot start: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
