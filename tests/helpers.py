"""The old home of the small test utilities, kept so the many tests importing from it need
no change: each now lives once in the shared kit (tests/kit)."""

from kit.dirs import public_tmpdir
from kit.net import free_port
from kit.procs import kill_all, processes_under
from kit.wait import wait_until

__all__ = ["free_port", "kill_all", "processes_under", "public_tmpdir", "wait_until"]
