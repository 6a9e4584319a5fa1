"""One build on a worker, from claim to finish: export the commit, pack it in the sandbox,
upload the archive and report the result, while the slot's reporters (:mod:`.reporters`)
renew its lease and ship its output. An abort, or a 409 that says the attempt went to
another worker, kills every process group the build started, the grandchildren included.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError
from shipyard.farm.checkout import commit_time, export_tree
from shipyard.farm.client import ApiError, FarmClient
from shipyard.farm.errors import CoordinatorUnreachable
from shipyard.farm.logsink import LogSink
from shipyard.farm.reporters import Reporters
from shipyard.formats.farm import AttemptIn, BuildView, FinishIn, Job, LogIn
from shipyard.procs import groups_working_in

if TYPE_CHECKING:
    from shipyard.farm.worker import Worker

log = logging.getLogger("shipyard.farm.worker")

LOG_FLUSH_SECONDS = 0.25
LOG_CHUNK_CHARS = 256 << 10
SCAN_AFTER = 0.3


class BuildAborted(Exception):
    """The build was killed on purpose (abort, or the attempt was taken away)."""


class BuildFailed(ShipyardError):
    """The build itself failed: the reason goes to the coordinator and the mail."""


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
        self._groups |= groups_working_in(self.dir)

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
