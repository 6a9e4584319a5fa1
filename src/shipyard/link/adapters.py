"""Running adapters: no shell, a deadline, a process group, the instance's own user.

Adapters are small programs shipped inside packages, so Shipyard treats them like any
foreign code: argv lists only (a password with ``;``, quotes or spaces reaches the adapter
byte for byte and is never interpreted), a new session so a timeout kills the adapter *and*
everything it started, output read with a cap so a chatty or hostile adapter cannot exhaust
memory, and, when Shipyard runs as root, the uid/gid/groups of the instance the adapter
belongs to.

The announce protocol (pkg-config style) is parsed and validated here too, so every caller
gets the same clear reasons: "printed 2 lines, expected 3", "line 2 (port) is not ...".
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.link.running import Running
from shipyard.link.state import LinkData

OUTPUT_CAP = 64 * 1024
STDERR_TAIL = 400
# After the adapter itself exited, how long a child holding its stdout open may delay us.
EXIT_GRACE = 1.0

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


@dataclass
class AdapterRun:
    """The outcome of one adapter process."""

    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    reason: str | None  # why it failed to start or was killed; None when it ran to its exit
    seconds: float

    @property
    def ok(self) -> bool:
        return self.reason is None and self.returncode == 0


def valid_host(host: str) -> bool:
    if len(host) > 253 or not host:
        return False
    if HOST_RE.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_adapter(path: Path) -> str | None:
    """Why ``path`` cannot be run as an adapter, or ``None`` when it can."""
    if not path.exists():
        return f"adapter {path} does not exist"
    if not path.is_file():
        return f"adapter {path} is not a regular file"
    if not os.access(path, os.X_OK) or not path.stat().st_mode & 0o111:
        return f"adapter {path} is not executable"
    return None


@dataclass(frozen=True)
class RunAs:
    """Credentials and login environment of the user an adapter runs as."""

    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def resolve_user(user: str) -> RunAs | None:
    """The user to switch to, or ``None`` when no switch is needed (not root, or same user).

    Raises :class:`LookupError` with a one-line reason when the user does not exist.
    """
    if os.geteuid() != 0 or not user:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LookupError(f"user {user!r} does not exist") from None
    if entry.pw_uid == os.geteuid():
        return None
    groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def adapter_env(extra: Mapping[str, str], run_as: RunAs | None) -> dict[str, str]:
    """A small, predictable environment: no SHIPYARD_HOME or secrets of the caller leak in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    if run_as is not None:
        env.update(HOME=run_as.home, USER=run_as.user, LOGNAME=run_as.user)
    else:
        for name in ("HOME", "USER", "LOGNAME", "TMPDIR"):
            if name in os.environ:
                env[name] = os.environ[name]
    env.update(extra)
    return env


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_adapter(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None,
                run_as: RunAs | None, timeout: float,
                running: Running | None = None) -> AdapterRun:
    """Run ``argv`` without a shell; kill its whole process group at ``timeout`` seconds.

    ``running`` records the group while it lives (see :mod:`shipyard.link.running`).
    """
    argv = list(argv)
    started = time.monotonic()
    problem = check_adapter(Path(argv[0]))
    if problem:
        return AdapterRun(argv, None, "", "", problem, 0.0)
    creds: dict[str, object] = {}
    if run_as is not None:
        creds = {"user": run_as.uid, "group": run_as.gid, "extra_groups": list(run_as.groups)}
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=cwd, env=dict(env), start_new_session=True, close_fds=True, **creds,
        )
    except OSError as exc:
        return AdapterRun(argv, None, "", "", f"cannot run adapter {argv[0]}: {exc.strerror}",
                          time.monotonic() - started)
    if running is not None:
        running.started(proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    buffers = {out_fd: bytearray(), err_fd: bytearray()}
    deadline = started + timeout
    exited_at: float | None = None
    timed_out = False
    with selectors.DefaultSelector() as selector:
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
            selector.register(stream.fileno(), selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > EXIT_GRACE:
                break  # a child of the adapter keeps the pipe open; the adapter is done
            for key, _ in selector.select(min(deadline - now, 0.05)):
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffer = buffers[key.fd]
                if len(buffer) < OUTPUT_CAP:
                    buffer.extend(chunk[: OUTPUT_CAP - len(buffer)])
    if timed_out:
        _kill_group(proc.pid)
    try:
        returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()) + 0.01
                               if not timed_out else 5)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        returncode = proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    if running is not None:
        running.finished(proc.pid)
    stdout_text = bytes(buffers[out_fd]).decode("utf-8", errors="replace")
    stderr_text = bytes(buffers[err_fd]).decode("utf-8", errors="replace")
    reason = None
    if timed_out:
        reason = f"timed out after {timeout:g}s (its process group was killed)"
        returncode = None
    return AdapterRun(argv, returncode, stdout_text, stderr_text, reason,
                      time.monotonic() - started)


def stderr_tail(text: str, secrets: Sequence[str] = ()) -> str:
    """The last few hundred characters of stderr on one line, passwords blanked out."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    tail = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    if len(tail) > STDERR_TAIL:
        tail = "..." + tail[-STDERR_TAIL:]
    return tail


def describe_failure(kind: str, run: AdapterRun, secrets: Sequence[str] = ()) -> str:
    """One line: which adapter, how it failed, and what it said on stderr."""
    if run.reason is not None:
        text = f"{kind} adapter: {run.reason}"
    else:
        text = f"{kind} adapter {run.argv[0]} exited with return code {run.returncode}"
    tail = stderr_tail(run.stderr, secrets)
    return f"{text}: {tail}" if tail else text


ANNOUNCE_FLAGS = ("--host", "--port", "--password")


def parse_announce(stdout: str) -> LinkData:
    """Validate an announce adapter's output; :class:`ValueError` says what was wrong.

    Three lines in order: host, port, password. One trailing newline is allowed and a
    trailing ``\\r`` is dropped; the password is otherwise kept exactly (spaces, quotes and
    shell characters included), so it reaches the accept adapter intact.
    """
    lines = stdout.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if len(lines) != 3:
        raise ValueError(f"printed {len(lines)} line(s), expected 3 (host, port, password)")
    host, port_text, password = lines
    host = host.strip()
    if not valid_host(host):
        shown = host if len(host) <= 60 else host[:60] + "..."
        raise ValueError(f"line 1 (host) {shown!r} is not a host name")
    port_text = port_text.strip()
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        shown = port_text if len(port_text) <= 20 else port_text[:20] + "..."
        raise ValueError(f"line 2 (port) {shown!r} is not a port number from 1 to 65535")
    if password == "":
        raise ValueError("line 3 (password) is empty")
    return LinkData(host, int(port_text), password)


def accept_argv(adapter: Path, data: LinkData, *, remove: bool,
                password_argv: bool = False) -> list[str]:
    """The accept adapter's command line. The password is on it only when the package
    asks (``password_via = "argv"``): any local user can read a command line in
    ``/proc/PID/cmdline``, so by default it travels in ``SHIPYARD_LINK_PASSWORD``."""
    argv = [str(adapter)]
    if remove:
        argv.append("--remove")
    argv += [f"--host={data.host}", f"--port={data.port}"]
    if password_argv:
        argv.append(f"--password={data.password}")
    return argv


SAID_LINES = 3
SAID_CHARS = 300


def said(stdout: str, secrets: Sequence[str] = ()) -> str:
    """The adapter's last few stdout lines on one line, passwords blanked out."""
    for secret in secrets:
        if secret:
            stdout = stdout.replace(secret, "***")
    lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
    text = " | ".join(lines[-SAID_LINES:])
    return text if len(text) <= SAID_CHARS else "..." + text[-SAID_CHARS:]


def reports_unchanged(stdout: str) -> bool:
    """An accept adapter may end its output with a line starting ``unchanged`` to say it
    had nothing to write (then no reload or restart follows)."""
    lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
    return bool(lines) and lines[-1].lower().startswith("unchanged")
