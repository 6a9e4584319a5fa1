"""Hosts for fleet tests: one network namespace per "host", joined by a private bridge.

Why namespaces rather than 127.0.1.N: a process in a namespace has its own loopback, so a
service bound to 127.0.0.1 on one "host" is unreachable from the others, exactly as on real
machines; an address leaked into a generated file where the peer's address belongs shows
up as a refused connection instead of passing by accident.

Layout of one kit (``slot`` N, 1..250, taken with an ``flock`` so parallel pytest workers
and concurrent runs never share one)::

    root namespace                       namespace synk<N>-<host>
    bridge synk<N>br 10.251.N.1/24  <->  veth synk<N>p<i> 10.251.N.(10+i)/24, lo up

The coordinator runs in the root namespace bound to the bridge address (10.251.N.1), the
only address the hosts can reach besides each other. Namespaces get no default route and
the root namespace does not forward, so nothing a test starts can send a packet anywhere
but this /24; in the root namespace a blackhole route for 10.251.0.0/16 keeps packets for
a torn-down kit's addresses on this machine. Tests must bind only to addresses the kit hands out.

Cleanup kills every process left in the kit's namespaces (by pid, from ``ip netns pids``),
deletes the namespaces and the bridge, and removes the hosts' homes; it runs at
:meth:`NetKit.close` and, for runs killed before that, at the next kit's start: a slot whose
lock nobody holds is swept before use (:func:`sweep`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "synk"
LOCK_DIR = Path("/run/shipyard-netkit")
SUBNET = "10.251.{slot}"
SLOTS = range(1, 251)
# Homes may be traversed, not listed or read, by others: instances run as the service
# user (svc.user), which must reach its runtime dir and the software root below the home.
HOME_MODE = 0o711
_NAME_RE = re.compile(rf"^{PREFIX}(\d+)(?:-|br|p)")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=30)


def _netns_names() -> list[str]:
    out = ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _link_names() -> list[str]:
    out = ip("-o", "link", "show").stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _slot_of(name: str) -> int | None:
    match = _NAME_RE.match(name)
    return int(match.group(1)) if match else None


def _kill_namespace_processes(netns: str) -> None:
    result = ip("netns", "pids", netns, check=False)
    for text in result.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(text), signal.SIGKILL)


def _remove_slot(slot: int) -> None:
    """Delete everything of ``slot``: processes in its namespaces, namespaces, links."""
    for name in _netns_names():
        if _slot_of(name) == slot:
            _kill_namespace_processes(name)
            ip("netns", "del", name, check=False)
    for name in _link_names():
        if _slot_of(name) == slot:
            ip("link", "del", name, check=False)
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}{slot}-*"):
        shutil.rmtree(path, ignore_errors=True)


def _lock_slot(slot: int) -> int | None:
    LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(LOCK_DIR / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def sweep() -> list[int]:
    """Remove the leftovers of every slot whose run is gone (its lock is free)."""
    dirs = [p.name for p in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*")]
    used = {_slot_of(n) for n in _netns_names() + _link_names() + dirs} - {None}
    swept = []
    for slot in sorted(s for s in used if s is not None):
        fd = _lock_slot(slot)
        if fd is None:
            continue  # a live run owns it
        try:
            _remove_slot(slot)
            swept.append(slot)
        finally:
            os.close(fd)
    return swept


def leftovers(slot: int) -> list[str]:
    """Names of namespaces, links and home dirs of ``slot`` that still exist."""
    names = [n for n in _netns_names() + _link_names() if _slot_of(n) == slot]
    return names + [str(p) for p in Path(tempfile.gettempdir()).glob(f"{PREFIX}{slot}-*")]


@dataclass
class Host:
    """One "machine": a namespace, an address on the bridge and a private home."""

    name: str
    netns: str
    address: str
    home: Path
    kit: NetKit = field(repr=False)

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a process of this host: its own SHIPYARD_HOME, and a host name
        for generated link files (``link.fqdn``) that is this host's own."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env.update(SHIPYARD_HOME=str(self.home), SHIPYARD_LINK_FQDN=f"{self.name}.fleet.test")
        env.update(extra or {})
        return env

    def popen(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside this host's namespace (the kit kills it at close)."""
        proc = subprocess.Popen(self.argv(argv), env=self.env(env), **kwargs)
        self.kit.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(argv), env=self.env(env), capture_output=True,
                              text=True, timeout=timeout, check=check)


class NetKit:
    """A bridge and any number of hosts; use as a context manager."""

    def __init__(self) -> None:
        blackhole()
        sweep()
        self.slot, self._lock_fd = self._take_slot()
        self.subnet = SUBNET.format(slot=self.slot)
        self.bridge = f"{PREFIX}{self.slot}br"
        self.coordinator_address = f"{self.subnet}.1"
        self.hosts: dict[str, Host] = {}
        self.procs: list[subprocess.Popen] = []
        _remove_slot(self.slot)  # a killed run of this slot that nobody swept yet
        self.base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.slot}-"))
        os.chmod(self.base, HOME_MODE)
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            _no_ipv6(self.bridge)
            ip("addr", "add", f"{self.coordinator_address}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _take_slot() -> tuple[int, int]:
        start = os.getpid() % len(SLOTS)
        for offset in range(len(SLOTS)):
            slot = SLOTS[(start + offset) % len(SLOTS)]
            fd = _lock_slot(slot)
            if fd is not None:
                return slot, fd
        raise RuntimeError("every netkit slot is in use")

    def add_host(self, name: str) -> Host:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", name) or name in self.hosts:
            raise ValueError(f"bad or duplicate host name {name!r}")
        index = len(self.hosts) + 1
        netns = f"{PREFIX}{self.slot}-{name}"
        veth, peer = f"{PREFIX}{self.slot}-{index}", f"{PREFIX}{self.slot}p{index}"
        address = f"{self.subnet}.{10 + index}"
        home = self.base / name
        home.mkdir()
        os.chmod(home, HOME_MODE)
        ip("netns", "add", netns)
        ip("link", "add", veth, "type", "veth", "peer", "name", peer)
        _no_ipv6(veth)
        ip("link", "set", peer, "netns", netns)
        ip("link", "set", veth, "master", self.bridge)
        ip("link", "set", veth, "up")
        for args in (("link", "set", "lo", "up"),
                     ("addr", "add", f"{address}/24", "dev", peer),
                     ("link", "set", peer, "up")):
            ip("-n", netns, *args)
        subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw",
                        f"net.ipv6.conf.{peer}.disable_ipv6=1"], check=False,
                       capture_output=True)
        host = Host(name, netns, address, home, self)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        """Kill what the kit started, delete namespaces and bridge, remove the homes."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        _remove_slot(self.slot)
        shutil.rmtree(self.base, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> NetKit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BLACKHOLE = "10.251.0.0/16"


def blackhole() -> None:
    """A blackhole for the whole test range in the root namespace (idempotent, left in
    place): once a bridge is gone, a packet for 10.251.x from the root namespace dies here
    instead of following the default route off the machine. A live bridge's connected /24
    is more specific and still wins."""
    ip("route", "replace", "blackhole", BLACKHOLE)


def _no_ipv6(device: str) -> None:
    """No link-local IPv6 chatter (router solicitations) on the test links."""
    path = Path(f"/proc/sys/net/ipv6/conf/{device}/disable_ipv6")
    with contextlib.suppress(OSError):
        path.write_text("1\n")
