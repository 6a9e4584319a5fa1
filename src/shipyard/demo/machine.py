"""The farm host: its config file, the signed repository, tokens, and the processes an
operator would run there (coordinator, two workers, a static web server for the
repository, and an SMTP sink that catches the farm's mail).

Everything is configured the way the operator guide says: ``<farm home>/etc/shipyard.ini``
holds the settings, secrets go to processes through the environment (never argv, where
``ps`` shows them), and every listener binds to 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import mailbox
import re
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.demo.commands import Runner, clean_env
from shipyard.demo.farmview import FarmView
from shipyard.demo.layout import Layout
from shipyard.demo.netutil import answers, bind_preferred, port_or_free
from shipyard.demo.procs import Background, Processes
from shipyard.demo.waiting import until
from shipyard.errors import ShipyardError

SECURITY_PACKAGE = "org.example:svc-exec"
WORKERS = ("worker-1", "worker-2")


@dataclass
class Machine:
    layout: Layout
    farm: Runner
    procs: Processes
    taken: set[int] = field(default_factory=set)
    coordinator_port: int = 0
    http_port: int = 0
    smtp_port: int = 0
    worker_token: str = ""
    hook_token: str = ""
    key_id: str = ""
    coordinator: Background | None = None
    workers: list[Background] = field(default_factory=list)
    # The coordinator's listening socket, bound at configure() and handed to farm serve.
    coordinator_socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.coordinator_port}"

    @property
    def repo_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # -- configuration ------------------------------------------------------------------

    def configure(self) -> Path:
        """Pick ports and write the farm host's ``shipyard.ini``."""
        self.coordinator_socket = bind_preferred(8470, self.taken)
        self.coordinator_port = int(self.coordinator_socket.getsockname()[1])
        self.http_port = port_or_free(8480, self.taken)
        self.smtp_port = port_or_free(8025, self.taken)
        config = self.layout.farm_home / "etc" / "shipyard.ini"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "# Written by 'shipyard demo': the farm host's settings (see docs/reference/"
            "config.md).\n"
            "[repo]\n"
            f"dir = {self.layout.repository}\n\n"
            "[farm]\n"
            f"bind = 127.0.0.1:{self.coordinator_port}\n"
            f"url = {self.url}\n"
            "# Built packages go to the repository's default channel (stable), except:\n"
            f"channels = {SECURITY_PACKAGE}=security\n"
            "poll_seconds = 0.2\n\n"
            "[smtp]\n"
            "host = 127.0.0.1\n"
            f"port = {self.smtp_port}\n"
            "sender = shipyard-farm@localhost\n",
            encoding="utf-8")
        return config

    def make_repository(self) -> None:
        """A signing key, the repository, and the public key handed to the node."""
        key = self.farm.json("repo", "keygen")
        self.key_id = str(key["key_id"])
        self.farm.run("repo", "init", str(self.layout.repository))
        # A first, empty publication: nodes find a signed (empty) repository from the
        # start, and later fast-track passes have a previous generation to build on.
        self.farm.run("repo", "publish")
        self.layout.node_key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(key["public_key"], self.layout.node_key)

    def make_tokens(self) -> None:
        self.worker_token = self.farm.run("farm", "token", "create", "--role", "worker",
                                          "--name", "demo-workers").stdout.strip()
        self.hook_token = self.farm.run("farm", "token", "create", "--role", "hook",
                                        "--name", "demo-push-hook").stdout.strip()

    def install_hook(self) -> None:
        # As the docs say: the token from a 0600 file, never on the command line.
        token_file = self.layout.farm_home / "etc" / "hook.token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.touch(mode=0o600)
        token_file.write_text(self.hook_token + "\n", encoding="utf-8")
        self.farm.run("farm", "hook", "install", str(self.layout.bare), "--coordinator",
                      self.url, "--token-file", str(token_file))

    # -- processes ----------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None
               ) -> Background:
        env = clean_env(self.layout.farm_home)
        env.update(extra_env or {})
        return self.procs.spawn(name, argv, env, self.layout.logs / f"{name}.log")

    def _alive_or_fail(self, proc: Background) -> None:
        if not proc.alive():
            raise ShipyardError(f"{proc.name} exited with code {proc.popen.returncode}: "
                                f"{proc.last_lines()} (log: {proc.log})")

    def start_coordinator(self) -> Background:
        """``farm serve`` on the socket bound at configure(); ready once the coordinator
        answering on the URL is this one (its instance id, printed at start, matches)."""
        sock = self.coordinator_socket
        if sock is None:
            raise ShipyardError("the coordinator's socket was not bound (configure first)")
        fd = sock.fileno()
        env = clean_env(self.layout.farm_home)
        proc = self.procs.spawn("coordinator", [
            *_shipyard(), "farm", "serve", "--repo", str(self.layout.repository),
            "--socket-fd", str(fd)], env, self.layout.logs / "coordinator.log",
            pass_fds=(fd,))
        sock.close()  # the coordinator holds it now
        self.coordinator_socket = None

        def healthy() -> bool:
            self._alive_or_fail(proc)
            found = re.search(r"instance ([0-9a-f]+)", proc.output())
            return found is not None and own_coordinator(self.url, found.group(1))

        until(healthy, 60, "the coordinator to answer on " + self.url)
        proc.url = self.url
        self.coordinator = proc
        return proc

    def start_workers(self) -> list[Background]:
        for name in WORKERS:
            # Builds run in bubblewrap's sandbox; a machine without it still shows the demo.
            plain = ["--no-sandbox"] if shutil.which("bwrap") is None else []
            self.workers.append(self._spawn(name, [*_shipyard(), "farm", "worker", "--name",
                                                   name, "--coordinator", self.url, *plain],
                                            {"SHIPYARD_FARM_TOKEN": self.worker_token}))

        view = FarmView(self.url)

        def registered() -> bool:
            for worker in self.workers:
                self._alive_or_fail(worker)
            seen = {w.name for w in view.workers()}
            return set(WORKERS) <= seen

        until(registered, 60, "both workers to register with the coordinator")
        return self.workers

    def start_http_dir(self, directory: Path) -> Background:
        """Serve ``directory`` (the repository's public parts) as any static web server."""
        proc = self._spawn("repository-http", [
            sys.executable, "-m", "http.server", str(self.http_port), "--bind", "127.0.0.1",
            "--directory", str(directory)])

        def up() -> bool:
            self._alive_or_fail(proc)
            return answers(self.http_port)

        until(up, 30, f"the repository's web server on port {self.http_port}")
        proc.url = self.repo_url
        return proc

    def start_smtp(self) -> Background:
        if importlib.util.find_spec("aiosmtpd") is None:
            raise ShipyardError("the demo's SMTP sink needs aiosmtpd: pip install "
                                "'shipyard[demo]' (make demo installs it)")
        mailbox.Maildir(self.layout.maildir, create=True)  # tmp/ new/ cur/
        proc = self._spawn("smtp-sink", [
            sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.smtp_port}",
            "-c", "aiosmtpd.handlers.Mailbox", str(self.layout.maildir)])

        def up() -> bool:
            self._alive_or_fail(proc)
            return answers(self.smtp_port)

        until(up, 30, f"the SMTP sink on port {self.smtp_port}")
        proc.url = f"smtp://127.0.0.1:{self.smtp_port}"
        return proc


def own_coordinator(url: str, instance: str) -> bool:
    """Whether the coordinator answering at ``url`` is the one that printed ``instance``
    (another demo's, on a port it took first, answers with a different id)."""
    view = FarmView(url)
    try:
        answer = view.health()
    finally:
        view.close()
    if answer is None:
        return False
    theirs = answer.instance
    if theirs != instance:
        raise ShipyardError(f"another coordinator (instance {theirs}) answers on {url}, "
                            f"not the demo's (instance {instance})")
    return True


def _shipyard() -> list[str]:
    from shipyard.demo.commands import SHIPYARD

    return list(SHIPYARD)
