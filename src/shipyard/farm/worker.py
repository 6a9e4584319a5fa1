"""``shipyard farm worker``: claim builds, run them, report back. Outgoing HTTP only.

Each build runs in a fresh directory: the commit's tree is exported there, the package's
``[build] command`` runs through :func:`shipyard.pkg.pack.pack_directory` in the build
sandbox (:mod:`shipyard.farm.sandbox`; in its own process group and session), and the
archive is uploaded. While it runs, its output is
streamed to the coordinator and a heartbeat renews the lease. The heartbeat's answer can
say "abort" (an operator asked) and a 409 says "this attempt is not yours any more" (the
lease ran out and the build went to another worker): in both cases every process group the
build started is killed at once, the grandchildren included.

Nothing a worker learned is dropped while the coordinator is unreachable: log output stays
in memory and goes with the next call, the upload and the finish are retried with a
bounded backoff until the coordinator answers.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import platform as platform_mod
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.farm.checkout import commit_time, export_tree
from shipyard.farm.client import ApiError, FarmClient
from shipyard.farm.errors import CoordinatorUnreachable
from shipyard.farm.sandbox import Sandbox
from shipyard.formats.farm import (
    AttemptIn,
    BuildView,
    ClaimIn,
    FinishIn,
    Job,
    LogIn,
    Registered,
    RegisterIn,
)

log = logging.getLogger("shipyard.farm.worker")

CLAIM_WAIT = 20.0
RELEASE_WAIT = 15.0  # seconds a stopping worker waits for its builds to be given back
LOG_FLUSH_SECONDS = 0.25
LOG_CHUNK_CHARS = 256 << 10
TAIL_CHARS = 8192
SCAN_AFTER = 0.3


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


class BuildAborted(Exception):
    """The build was killed on purpose (abort, or the attempt was taken away)."""


class BuildFailed(ShipyardError):
    """The build itself failed: the reason goes to the coordinator and the mail."""


# ---------------------------------------------------------------------------------------
# Output streaming


class LogSink:
    """File-like sink for build output (``pack_directory`` writes to it), shipped in
    order, each character once: ``pos`` counts what the coordinator has acknowledged."""

    def __init__(self, limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._pending_chars = 0
        self.limit = limit  # the coordinator keeps no more than this: hold no more either
        self.pos = 0
        self.tail: collections.deque[str] = collections.deque()
        self._tail_chars = 0
        self.dropping = False  # no more output is kept for sending (only the tail)
        self.truncated = False  # the coordinator said it truncated the log

    def write(self, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            if not self.dropping:
                if self.limit is not None and self.pos + self._pending_chars + len(text) > (
                        self.limit):
                    # The coordinator would truncate it anyway; while it is unreachable
                    # this keeps a flood from filling the worker's memory.
                    room = max(0, self.limit - self.pos - self._pending_chars)
                    text_kept = text[:room] + (
                        "\n[worker] output beyond farm.log_max_bytes dropped\n")
                    self._pending.append(text_kept)
                    self._pending_chars += len(text_kept)
                    self.dropping = True
                else:
                    self._pending.append(text)
                    self._pending_chars += len(text)
            self.tail.append(text)
            self._tail_chars += len(text)
            while self._tail_chars > TAIL_CHARS * 2 and len(self.tail) > 1:
                self._tail_chars -= len(self.tail.popleft())
        return len(text)

    def line(self, text: str) -> None:
        self.write(f"[worker] {text}\n")

    def flush(self) -> None:
        """Output is shipped by the streamer thread; nothing to do here."""

    def peek(self, limit: int) -> tuple[int, str]:
        with self._lock:
            data = "".join(self._pending)
            self._pending = [data] if data else []
            return self.pos, data[:limit]

    def acknowledge(self, count: int, truncated: bool) -> None:
        with self._lock:
            data = "".join(self._pending)[count:]
            self._pending = [data] if data else []
            self._pending_chars = len(data)
            self.pos += count
            if truncated:
                self.truncated = True
                self.dropping = True
                self._pending = []
                self._pending_chars = 0

    def tail_text(self) -> str:
        with self._lock:
            return "".join(self.tail)[-TAIL_CHARS:]


# ---------------------------------------------------------------------------------------
# Reporting threads


class Ticker:
    """A long-lived thread that calls ``step(run)`` for the build its slot is running, at
    the times ``step`` asks for (it returns the next ``time.monotonic()`` to be called at,
    or None when it is done with that build).

    A slot keeps two (heartbeat, log stream) for all its builds: most builds end before
    either is due at all, and starting and joining two threads per build was a good part
    of a worker's CPU. ``detach`` is the handshake: once it returns, no step for that build
    runs any more, so nothing a build reports can land after it has finished."""

    def __init__(self, name: str, step: Callable[[BuildRun], float | None]) -> None:
        self._step = step
        self._cond = threading.Condition()
        self._run: BuildRun | None = None
        self._due = 0.0
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self._thread.start()

    def attach(self, run: BuildRun, due: float) -> None:
        with self._cond:
            self._run, self._due = run, due
            self._cond.notify_all()

    def detach(self, timeout: float = 60.0) -> None:
        """Stop serving the current build; wait (up to ``timeout``) for a step under way."""
        with self._cond:
            self._run = None
            self._cond.wait_for(lambda: not self._busy, timeout=timeout)

    def close(self) -> None:
        with self._cond:
            self._run = None
            self._closed = True
            self._cond.notify_all()

    def _next(self) -> BuildRun | None:
        """Wait for a build whose step is due; None once closed."""
        with self._cond:
            while not self._closed:
                run = self._run
                wait = None if run is None else self._due - time.monotonic()
                if wait is not None and wait <= 0:
                    self._busy = True
                    return run
                self._cond.wait(wait)
            return None

    def _loop(self) -> None:
        while (run := self._next()) is not None:
            due: float | None = None
            try:
                due = self._step(run)
            except Exception as exc:  # a bug must not take the slot's reporting down
                log.exception("build %s: %s: %s", run.build_id, self._thread.name, exc)
            finally:
                with self._cond:
                    self._busy = False
                    if self._run is run:
                        if due is None:
                            self._run = None
                        else:
                            self._due = due
                    self._cond.notify_all()


@dataclass
class Reporters:
    """A slot's heartbeat and log-stream threads (see :class:`Ticker`)."""

    heartbeat: Ticker
    stream: Ticker

    @classmethod
    def start(cls, name: str) -> Reporters:
        return cls(Ticker(f"hb-{name}", BuildRun.heartbeat_step),
                   Ticker(f"log-{name}", BuildRun.stream_step))

    def close(self) -> None:
        self.heartbeat.close()
        self.stream.close()


# ---------------------------------------------------------------------------------------
# One build


@dataclass
class BuildRun:
    worker: Worker
    client: FarmClient
    job: Job
    reporters: Reporters
    sink: LogSink = field(default_factory=LogSink)
    aborted: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    stop_streaming: threading.Event = field(default_factory=threading.Event)
    _proc: subprocess.Popen[bytes] | None = None
    _groups: set[int] = field(default_factory=set)
    _started: float = field(default_factory=time.monotonic)
    _last_beat: float = 0.0
    _next_scan: float = 0.0
    next_job: Job | None = None  # claimed with the finish, see _finish

    @property
    def build(self) -> BuildView:
        return self.job.build

    @property
    def build_id(self) -> int:
        return self.build.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @functools.cached_property
    def dir(self) -> Path:
        return self.worker.opts.workdir / "builds" / f"{self.build_id}-{self.attempt}"

    def _fields(self) -> dict[str, Any]:
        return {"worker": self.worker.opts.name, "attempt": self.attempt}

    def _ident(self) -> AttemptIn:
        return AttemptIn.model_construct(**self._fields())

    # -- processes ------------------------------------------------------------------------

    def track(self, proc: subprocess.Popen[bytes] | None) -> None:
        """Called with each git process the checkout starts (its own process group), and
        with None once it has been reaped: its group is gone then, and its id must not be
        killed later in case the system hands it to another process."""
        if proc is None:
            if self._proc is not None:
                self._groups.discard(self._proc.pid)
            self._proc = None
            return
        self._proc = proc
        self._groups.add(proc.pid)
        if self.aborted.is_set() or self.lost.is_set():
            self.kill()

    def _scan(self) -> None:
        """Remember the process groups of every process working in this build's
        directory (its cwd is there), so they can be killed even after their leader has
        exited; a build's daemonised leftovers are found this way too."""
        root = str(self.dir) + os.sep
        try:
            entries = list(os.scandir("/proc"))
        except OSError:
            return
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if (os.readlink(f"/proc/{entry.name}/cwd") + os.sep).startswith(root):
                    self._groups.add(os.getpgid(int(entry.name)))
            except OSError:
                continue

    def kill(self) -> None:
        """SIGKILL every process group this build started."""
        self._scan()
        own = os.getpgid(0)
        for group in list(self._groups):
            if group in (own, 0, 1):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    def _stop_build(self, why: threading.Event) -> None:
        why.set()
        self.kill()

    def _lease_lost(self, message: str) -> None:
        if not self.lost.is_set():
            log.warning("build %s attempt %s: lease lost, build killed: %s", self.build_id,
                        self.attempt, message, extra=self._event("lease-lost"))
        self._stop_build(self.lost)

    def _event(self, name: str, **fields: Any) -> dict[str, Any]:
        """The ``extra`` of a log line: the event's fields for ``--log-format json``."""
        return {"event": name, "build": self.build_id, "attempt": self.attempt, **fields}

    # -- reporting threads ------------------------------------------------------------------

    @property
    def _interval(self) -> float:
        return self.job.heartbeat_seconds

    def _heartbeat_due(self) -> float:
        now = time.monotonic()
        return now + min(self._interval, max(0.05, self._next_scan - now))

    def heartbeat_step(self) -> float | None:
        """Renew the lease when a beat is due, and look for the build's processes."""
        now = time.monotonic()
        if now >= self._next_scan:
            self._scan()
            self._next_scan = now + 1.0
        if now - self._last_beat >= self._interval:
            self._last_beat = now
            try:
                answer = self.client.heartbeat(self.build_id, self._ident(), retry_for=0.0,
                                               timeout=10.0)
            except ApiError as exc:
                if exc.status in (404, 409):
                    self.sink.line(f"attempt taken away: {exc.message}")
                    self._lease_lost(exc.message)
                    return None
                answer = None
            except CoordinatorUnreachable:
                answer = None  # keep building; the lease has room for a few missed beats
            if answer and answer.abort and not self.aborted.is_set():
                self._stop_build(self.aborted)
        return self._heartbeat_due()

    def stream_step(self) -> float | None:
        self._send_log()
        return time.monotonic() + LOG_FLUSH_SECONDS

    def _send_log(self) -> None:
        pos, data = self.sink.peek(LOG_CHUNK_CHARS)
        if not data or self.lost.is_set():
            return
        try:
            answer = self.client.send_log(
                self.build_id, LogIn.model_construct(**self._fields(), pos=pos, data=data),
                retry_for=None, stop=self.stop_streaming.is_set, timeout=30.0)
        except ApiError as exc:
            if exc.status in (404, 409):
                self._lease_lost(exc.message)
            return
        except CoordinatorUnreachable:
            return
        self.sink.acknowledge(len(data), answer.truncated)
        if answer.abort and not self.aborted.is_set():
            self._stop_build(self.aborted)

    # -- the build --------------------------------------------------------------------------

    def run(self) -> None:
        log.info("build %s attempt %s claimed: %s %s at %s", self.build_id, self.attempt,
                 self.build.package, self.build.version or "",
                 self.build.commit[:12], extra=self._event("claim"))
        self._last_beat = time.monotonic()
        self._next_scan = self._started + SCAN_AFTER
        self.reporters.heartbeat.attach(self, self._heartbeat_due())
        self.reporters.stream.attach(self, time.monotonic() + LOG_FLUSH_SECONDS)
        result, reason, archive = "failure", "", None
        try:
            archive = self._build()
            result = "success"
        except BuildAborted:
            result = "aborted"
        except BuildFailed as exc:
            reason = exc.message
        except ShipyardError as exc:
            reason = exc.message
        except Exception as exc:  # a bug in the worker must still end the build
            reason = f"worker error: {type(exc).__name__}: {exc}"
        finally:
            self.kill()  # nothing the build started outlives it
        if self.aborted.is_set():
            result = "aborted"
        try:
            if not self.lost.is_set():
                if result == "success" and archive is not None:
                    result, reason = self._upload(archive)
                self._finish(result, reason)
        finally:
            self.reporters.heartbeat.detach()
            self.stop_streaming.set()
            self.reporters.stream.detach()
            if result == "success" or not self.worker.opts.keep_failed:
                self.worker.discard(self.dir)

    def _build(self) -> Path:
        from shipyard.errors import ManifestError
        from shipyard.manifest import load_manifest
        from shipyard.pkg.pack import pack_directory

        build = self.build
        shutil.rmtree(self.dir, ignore_errors=True)
        source_root = self.dir / "src"
        out = self.dir / "out"
        out.mkdir(parents=True)
        self.sink.line(f"build {self.build_id} attempt {self.attempt}: {build.package} "
                       f"{build.version or ''} at {build.commit} "
                       f"on {self.worker.opts.name}")
        cache = self.worker.opts.workdir / "git"
        export_tree(cache, build.repo_url, build.commit, source_root, self.track)
        epoch = commit_time(cache, build.repo_url, build.commit, self.track)
        self._check_stop()
        subdir = build.subdir
        source = source_root / subdir if subdir else source_root
        try:
            manifest = load_manifest(source)
        except ManifestError as exc:
            self.sink.line(exc.message)
            raise BuildFailed(f"malformed manifest: {exc.message}") from None
        name = f"{manifest.coord.group}:{manifest.coord.id}"
        if build.package != name or (build.version and build.version != manifest.version):
            raise BuildFailed(f"{subdir or '.'}/shipyard.toml at {build.commit[:12]} is "
                              f"{name} {manifest.version}, the build asked for "
                              f"{build.package} {build.version or ''}".rstrip())
        self.sink.line(f"building {manifest.coord} in {source}")
        try:
            archive = pack_directory(
                source, out, log=self.sink, durable=False, manifest=manifest,
                runner=self.worker.opts.sandbox.runner(source_root, self.dir / "home"),
                work_dir=self.dir, source_date_epoch=epoch)
        except ShipyardError as exc:
            self._check_stop()
            self.sink.line(exc.message)
            raise BuildFailed(getattr(exc, "detail", exc.message)) from None
        self._check_stop()
        self.sink.line(f"packed {archive.name} ({archive.stat().st_size} bytes)")
        return archive

    def _check_stop(self) -> None:
        if self.aborted.is_set() or self.lost.is_set():
            raise BuildAborted()

    def _upload(self, archive: Path) -> tuple[str, str]:
        try:
            self.client.upload_artifact(self.build_id, archive, self._ident(),
                                        retry_for=None, stop=self.lost.is_set, timeout=600.0)
        except ApiError as exc:
            if exc.status in (404, 409):
                self._lease_lost(exc.message)
                return "failure", exc.message
            self.sink.line(exc.message)
            return "failure", f"upload refused: {exc.message}"
        return "success", ""

    def _finish(self, result: str, reason: str) -> None:
        if self.lost.is_set():
            return
        if result == "aborted":
            reason = reason or f"killed on worker {self.worker.opts.name}"
        self.stop_streaming.set()
        self.reporters.stream.detach()
        pos, data = self.sink.peek(4 << 20)
        body = FinishIn.model_construct(
            **self._fields(), result=result, reason=reason[:10_000],
            tail=self.sink.tail_text(), log_pos=pos, log="" if self.sink.truncated else data,
            claim=not self.worker.stopping.is_set())
        try:
            answer = self.client.finish(self.build_id, body, retry_for=None,
                                        stop=self.worker.stopping.is_set, timeout=60.0)
            self.next_job = answer.next
            log.info("build %s attempt %s finished: %s%s", self.build_id, self.attempt, result,
                     f" ({reason.splitlines()[0][:200]})" if reason.strip() else "",
                     extra=self._event("finish", result=result,
                                       seconds=round(time.monotonic() - self._started, 3)))
        except ApiError as exc:
            log.warning("build %s: result %s not accepted: %s", self.build_id, result,
                        exc.message)
        except CoordinatorUnreachable as exc:
            log.warning("build %s: result %s not delivered: %s", self.build_id, result,
                        exc.message)

    def release(self) -> None:
        """The worker is shutting down: kill the build and give it back to the queue."""
        self._stop_build(self.lost)
        log.info("build %s attempt %s released: the worker is stopping", self.build_id,
                 self.attempt, extra=self._event("release"))
        with contextlib.suppress(ShipyardError):
            self.client.finish(self.build_id, FinishIn.model_construct(
                **self._fields(), result="released",
                reason=f"worker {self.worker.opts.name} shut down"),
                retry_for=5.0, timeout=10.0)


# ---------------------------------------------------------------------------------------
# The worker process


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
        reporters = Reporters.start(str(index))
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
