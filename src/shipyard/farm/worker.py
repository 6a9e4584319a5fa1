"""``shipyard farm worker``: claim builds, run them, report back. Outgoing HTTP only.

Each build runs in a fresh directory: the commit's tree is exported there, the package's
``[build] command`` runs through :func:`shipyard.pkg.pack.pack_directory` in the build
sandbox (:mod:`shipyard.farm.sandbox`; in its own process group and session), and the
archive is uploaded (:mod:`shipyard.farm.buildrun`). While it runs, its output is
streamed to the coordinator and a heartbeat renews the lease (:mod:`.reporters`, one
thread each per slot). The heartbeat's answer can say "abort" (an operator asked) and a
409 says "this attempt is not yours any more" (the lease ran out and the build went to
another worker): in both cases every process group the build started is killed at once,
the grandchildren included.

Nothing a worker learned is dropped while the coordinator is unreachable: log output stays
in memory (:mod:`.logsink`) and goes with the next call, the upload and the finish are
retried with a bounded backoff until the coordinator answers.

This module is the process: register, one thread per slot claiming builds, and the
shutdown that gives running builds back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform as platform_mod
import shutil
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.farm.buildrun import (
    LOG_CHUNK_CHARS,
    LOG_FLUSH_SECONDS,
    SCAN_AFTER,
    BuildAborted,
    BuildFailed,
    BuildRun,
)
from shipyard.farm.client import ApiError, FarmClient
from shipyard.farm.errors import CoordinatorUnreachable
from shipyard.farm.logsink import TAIL_CHARS, LogSink
from shipyard.farm.reporters import Reporters, Ticker
from shipyard.farm.sandbox import Sandbox
from shipyard.formats.farm import ClaimIn, Job, Registered, RegisterIn

log = logging.getLogger("shipyard.farm.worker")

CLAIM_WAIT = 20.0
RELEASE_WAIT = 15.0  # seconds a stopping worker waits for its builds to be given back

# Where these lived before the worker was split up.
__all__ = [
    "CLAIM_WAIT", "LOG_CHUNK_CHARS", "LOG_FLUSH_SECONDS", "RELEASE_WAIT", "SCAN_AFTER",
    "TAIL_CHARS", "BuildAborted", "BuildFailed", "BuildRun", "LogSink", "Reporters",
    "Ticker", "Worker", "WorkerOptions", "check_git", "default_name", "default_platform",
]


def default_platform() -> str:
    return f"{sys.platform}-{platform_mod.machine() or 'unknown'}"


@dataclass
class WorkerOptions:
    coordinator: str
    token: str
    name: str
    platforms: list[str]
    capacity: int
    workdir: Path
    http_port: int | None = None
    keep_failed: bool = False
    sandbox: Sandbox = field(default_factory=lambda: Sandbox(None))  # see farm.sandbox


class Worker:
    def __init__(self, opts: WorkerOptions) -> None:
        self.opts = opts
        self.stopping = threading.Event()
        self.running: dict[int, BuildRun] = {}
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._backoff = 0.2
        self.completed = 0
        self._trash_ready = threading.Event()

    def discard(self, directory: Path) -> None:
        """Remove a build directory off the build's critical path: rename it into
        ``trash/`` (instant) and let a background thread delete it."""
        trash = self.opts.workdir / "trash"
        trash.mkdir(exist_ok=True)
        try:
            os.rename(directory, trash / directory.name)
        except OSError:
            shutil.rmtree(directory, ignore_errors=True)
            return
        self._trash_ready.set()

    def _empty_trash(self) -> None:
        trash = self.opts.workdir / "trash"
        while True:
            self._trash_ready.wait()
            self._trash_ready.clear()
            with contextlib.suppress(OSError):
                for entry in list(os.scandir(trash)):
                    shutil.rmtree(entry.path, ignore_errors=True)

    def _client(self) -> FarmClient:
        return FarmClient(self.opts.coordinator, self.opts.token, timeout=30.0)

    def register(self, client: FarmClient) -> Registered:
        http_url = ""
        if self.opts.http_port:
            http_url = f"http://{socket.getfqdn()}:{self.opts.http_port}"
        body = RegisterIn.model_construct(name=self.opts.name, platforms=self.opts.platforms,
                                          capacity=self.opts.capacity, http_url=http_url)
        return client.register(body, retry_for=None, stop=self.stopping.is_set, timeout=30.0)

    def serve(self) -> None:
        """Run until SIGTERM/SIGINT; then give running builds back and exit."""
        self.opts.workdir.mkdir(parents=True, exist_ok=True)
        self._trash_ready.set()  # leftovers of an earlier run
        threading.Thread(target=self._empty_trash, daemon=True, name="trash").start()
        with self._client() as client:
            info = self.register(client)
        sandbox = self.opts.sandbox
        log.info("worker %s registered with %s (capacity %s, lease %s s, %s)", self.opts.name,
                 self.opts.coordinator, self.opts.capacity, info.lease_seconds,
                 f"sandbox {sandbox.bwrap}" if sandbox.bwrap else "NO SANDBOX",
                 extra={"event": "register", "worker": self.opts.name})
        if self.opts.http_port:
            self._start_http()
        slots = [threading.Thread(target=self._slot, args=(index,), daemon=True,
                                  name=f"slot-{index}") for index in range(self.opts.capacity)]
        for slot in slots:
            slot.start()

        def _signal(_signum: int, _frame: object) -> None:
            self.stopping.set()

        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
        while not self.stopping.wait(0.5):
            pass
        with self._lock:
            runs = list(self.running.values())
        for run in runs:
            run.release()
        # Let the slots wind down their builds (a build claimed while stopping is released
        # by its slot), so none is left holding its lease until it runs out.
        with self._settled:
            self._settled.wait_for(lambda: not self.running, timeout=RELEASE_WAIT)

    def _slot(self, index: int) -> None:
        client = self._client()
        reporters = Reporters.start(str(index), BuildRun.heartbeat_step,
                                    BuildRun.stream_step)
        try:
            self._serve_slot(client, reporters)
        finally:
            reporters.close()

    def _serve_slot(self, client: FarmClient, reporters: Reporters) -> None:
        job: Job | None = None
        while True:
            if job is None:
                if self.stopping.is_set():
                    return
                job = self._claim(client)
                if job is None:
                    continue
            run = BuildRun(self, client, job, reporters, LogSink(job.log_max_bytes))
            with self._lock:
                self.running[run.build_id] = run
                late = self.stopping.is_set()  # serve() may have released the others already
            try:
                if late:
                    run.release()
                    return
                run.run()
            except Exception as exc:  # never lose the slot to one bad build
                log.exception("build %s: internal error: %s: %s", run.build_id,
                              type(exc).__name__, exc)
            finally:
                with self._lock:
                    self.running.pop(run.build_id, None)
                    self.completed += 1
                    self._settled.notify_all()
            job = run.next_job

    def _claim(self, client: FarmClient) -> Job | None:
        """One long poll for a build; None when it ended without one."""
        try:
            job = client.claim(self.opts.name, ClaimIn.model_construct(wait=CLAIM_WAIT),
                               retry_for=None, stop=self.stopping.is_set,
                               timeout=CLAIM_WAIT + 15)
        except CoordinatorUnreachable:
            return None
        except ApiError as exc:
            if exc.status == 404:  # forgotten (a new database): register again
                log.warning("the coordinator does not know this worker: registering again",
                            extra={"event": "register-again"})
                with contextlib.suppress(ShipyardError):
                    self.register(client)
            else:
                log.warning("claim refused: %s", exc.message, extra={"event": "claim-refused"})
            self.stopping.wait(self._backoff)
            self._backoff = min(self._backoff * 2, 10.0)
            return None
        self._backoff = 0.2
        return job

    def _start_http(self) -> None:
        target = f"{self.opts.coordinator.rstrip('/')}/workers/{self.opts.name}"

        class Redirect(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *_args: object) -> None:
                return

        server = ThreadingHTTPServer(("0.0.0.0", int(self.opts.http_port or 0)), Redirect)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name="http").start()


def default_name() -> str:
    return socket.gethostname().split(".")[0] or "worker"


def check_git() -> None:
    if shutil.which("git") is None:
        raise ShipyardError("git is not installed (the worker checks out sources with git)")
