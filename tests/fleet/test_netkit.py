"""The fleet tests' network kit: hosts reach each other and the coordinator's address, not
the root namespace's loopback, and nothing is left behind (also after a killed run)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap

import netkit
import pytest

from helpers import wait_until

# Listens on ADDRESS:PORT, prints "ready", answers each connection with the host's name.
SERVER = textwrap.dedent("""
    import socket, sys
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((sys.argv[1], int(sys.argv[2])))
    sock.listen()
    print("ready", flush=True)
    while True:
        conn, _ = sock.accept()
        conn.sendall(sys.argv[3].encode())
        conn.close()
""")

# Connects to ADDRESS:PORT and prints what it read, or the error's name.
CLIENT = textwrap.dedent("""
    import socket, sys
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
            print(s.recv(100).decode())
    except OSError as exc:
        print(type(exc).__name__)
""")


def serve(host: netkit.Host, address: str, port: int) -> subprocess.Popen:
    proc = host.popen([sys.executable, "-c", SERVER, address, str(port), host.name],
                      stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def connect(host: netkit.Host, address: str, port: int) -> str:
    return host.run([sys.executable, "-c", CLIENT, address, str(port)],
                    check=True).stdout.strip()


def test_hosts_reach_each_other_and_the_coordinator_only():
    with netkit.NetKit() as kit:
        a, b = kit.add_host("a"), kit.add_host("b")
        assert a.address != b.address
        serve(a, a.address, 7001)
        assert connect(b, a.address, 7001) == "a"
        # the coordinator's side: a listener in the root namespace on the bridge address
        root = socket.socket()
        root.bind((kit.coordinator_address, 0))
        root.listen()
        port = root.getsockname()[1]
        with root:
            client = subprocess.Popen(a.argv([sys.executable, "-c", CLIENT,
                                              kit.coordinator_address, str(port)]),
                                      stdout=subprocess.PIPE, text=True)
            conn, peer = root.accept()
            assert peer[0] == a.address  # the host is seen with its own address
            conn.sendall(b"coordinator")
            conn.close()
            assert client.communicate(timeout=10)[0].strip() == "coordinator"
        # each host has its own loopback: a's 127.0.0.1 service is not b's
        serve(a, "127.0.0.1", 7002)
        assert connect(a, "127.0.0.1", 7002) == "a"
        assert connect(b, "127.0.0.1", 7002) == "ConnectionRefusedError"


def test_a_host_cannot_reach_the_root_loopback():
    with socket.socket() as root:
        root.bind(("127.0.0.1", 0))
        root.listen()
        port = root.getsockname()[1]
        with netkit.NetKit() as kit:
            a = kit.add_host("a")
            assert connect(a, "127.0.0.1", port) == "ConnectionRefusedError"
            routes = a.run(["ip", "route"], check=True).stdout
            assert "default" not in routes  # nothing but the kit's /24
            # a root-namespace port bound to loopback is not reachable on the bridge either
            assert connect(a, kit.coordinator_address, port) == "ConnectionRefusedError"


def test_homes_are_private():
    with netkit.NetKit() as kit:
        a = kit.add_host("a")
        assert stat.S_IMODE(a.home.stat().st_mode) == netkit.HOME_MODE == 0o711
        assert stat.S_IMODE(kit.base.stat().st_mode) == 0o711
        assert a.env()["SHIPYARD_HOME"] == str(a.home)


def test_close_leaves_nothing_even_with_processes_running():
    kit = netkit.NetKit()
    slot = kit.slot
    a = kit.add_host("a")
    kit.add_host("b")
    proc = serve(a, a.address, 7003)
    # a grandchild in its own session, which killing the direct child would not reach
    orphan = a.run([sys.executable, "-c",
                    "import subprocess, sys; p = subprocess.Popen(['sleep', '600'], "
                    "start_new_session=True, stdout=subprocess.DEVNULL, "
                    "stderr=subprocess.DEVNULL); print(p.pid)"], check=True)
    orphan_pid = int(orphan.stdout)
    assert netkit.leftovers(slot)
    kit.close()
    assert proc.poll() is not None
    assert netkit.leftovers(slot) == []
    assert not kit.base.exists()
    wait_until(lambda: not _alive(orphan_pid), timeout=10, what="the orphan to die")


def test_a_killed_run_is_swept_by_the_next():
    script = textwrap.dedent("""
        import signal, sys
        sys.path.insert(0, sys.argv[1])
        import netkit
        kit = netkit.NetKit()
        kit.add_host("a")
        print(kit.slot, flush=True)
        signal.pause()  # a live run until the test kills it
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, os.path.dirname(netkit.__file__)],
                            stdout=subprocess.PIPE, text=True)
    slot = int(proc.stdout.readline())
    assert netkit.leftovers(slot)
    with netkit.NetKit() as other:
        assert other.slot != slot  # the live run's slot is not taken or swept
        assert netkit.leftovers(slot)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert netkit.leftovers(slot)  # killed: nobody cleaned up
    assert slot in netkit.sweep()
    assert netkit.leftovers(slot) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def test_the_test_range_is_blackholed_in_the_root_namespace():
    with netkit.NetKit() as kit:
        gone = f"{kit.subnet}.200"
        assert f"dev {kit.bridge}" in netkit.ip("route", "get", gone).stdout  # live: bridge
    routes = netkit.ip("route", "show", "type", "blackhole").stdout
    assert netkit.BLACKHOLE in routes
    # the kit is gone: its addresses now hit the blackhole, never the default route
    route = netkit.ip("route", "get", gone, check=False)
    assert route.returncode != 0 or "blackhole" in route.stdout, route.stdout
    assert "via" not in route.stdout
    with socket.socket() as sock:
        sock.settimeout(5)
        with pytest.raises(OSError) as failure:
            sock.connect((gone, 9))
    assert not isinstance(failure.value, TimeoutError)  # refused locally, not sent out
