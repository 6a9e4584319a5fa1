"""The node: a Shipyard home configured to install from the repository over HTTP, the
instances it runs, and the chat server asked directly whether the transports got in.

The node trusts exactly one thing from the farm host: the repository's public key, copied
into its ``etc/keys/``. Everything else comes over HTTP and is verified against it.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.demo.commands import Runner
from shipyard.demo.layout import Layout
from shipyard.demo.netutil import port_or_free

FQDN = "node1.demo.test"
EXAMPLES_GROUP = "org.shipyard.examples"


@dataclass(frozen=True)
class Instance:
    coordinate: str
    package: str            # group:id
    params: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    channel: str | None = None


@dataclass
class Node:
    layout: Layout
    cli: Runner
    repo_url: str
    taken: set[int]
    chat_port: int = 0
    web_port: int = 0
    instances: list[Instance] = field(default_factory=list)

    CHAT = "1.chat.demo.local"
    ECHO = "1.echo.demo.local"
    UPPER = "1.upper.demo.local"

    @property
    def echo_host(self) -> str:
        return f"echo.{FQDN}"

    @property
    def upper_host(self) -> str:
        return f"upper.{FQDN}"

    def configure(self) -> Path:
        """The node's ``shipyard.ini``: where to install from, which key to trust."""
        self.chat_port = port_or_free(5222, self.taken)
        self.web_port = port_or_free(8081, self.taken)
        config = self.layout.node_home / "etc" / "shipyard.ini"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "# Written by 'shipyard demo': the node's settings (see docs/reference/config.md)."
            "\n[repo]\n"
            f"url = {self.repo_url}\n"
            "channel = stable\n"
            f"key = {self.layout.node_key}\n\n"
            "[link]\n"
            f"fqdn = {FQDN}\n\n"
            "[svc]\n"
            "stop_timeout = 5\n",
            encoding="utf-8")
        self.layout.node_home.chmod(0o755)
        self.instances = [
            Instance(self.CHAT, f"{EXAMPLES_GROUP}:chat-server", (f"--port={self.chat_port}",)),
            Instance(self.ECHO, f"{EXAMPLES_GROUP}:jabber-echo", after=(self.CHAT,)),
            Instance(self.UPPER, f"{EXAMPLES_GROUP}:jabber-upper", after=(self.CHAT,)),
            Instance("1.web.demo.local", "org.example:svc-script", (f"--port={self.web_port}",
                                                                    "--greeting=ahoy")),
            Instance("1.platform.demo.local", "org.example:svc-platform", ("--label=demo",)),
            Instance("1.ticker.demo.local", "org.example:svc-exec", ("--interval=1",),
                     channel="security"),
        ]
        return config

    def install(self, target: str, channel: str | None = None) -> list[dict[str, Any]]:
        args = ["pkg", "install", target] + (["--channel", channel] if channel else [])
        return list(self.cli.json(*args))

    def register(self, instance: Instance, version: str) -> None:
        args = ["svc", "register", instance.coordinate, "--package",
                f"{instance.package}:{version}"]
        for other in instance.after:
            args += ["--after", other]
        if instance.params:
            args += ["--", *instance.params]
        self.cli.run(*args)

    def status(self) -> list[dict[str, Any]]:
        result = self.cli.run("svc", "status", "--json")
        return list(json.loads(result.stdout))

    def links(self) -> list[dict[str, Any]]:
        return list(self.cli.json("link", "list")["links"])

    def installed(self) -> list[str]:
        rows = self.cli.json("pkg", "list")
        return sorted(str(r.get("coordinate") or r.get("package")) for r in rows)


# ---------------------------------------------------------------------------------------
# Asking the chat server itself


def chat(port: int, *lines: str, host: str = "127.0.0.1") -> list[str]:
    """Send ``lines`` to the chat server's client port; one answer line per command."""
    with socket.create_connection((host, port), timeout=10) as sock:
        handle = sock.makefile("rw", encoding="utf-8", newline="\n")
        answers = []
        for line in lines:
            handle.write(line + "\n")
            handle.flush()
            answers.append(handle.readline().rstrip("\n"))
        return answers


def server_status(port: int, host: str = "127.0.0.1") -> dict[str, Any] | None:
    try:
        return json.loads(chat(port, "STATUS", host=host)[0])
    except (OSError, ValueError):
        return None
