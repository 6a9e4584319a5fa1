"""Start, stop and inspect one instance: the face other stages and the CLI call.

Each concept lives in its own module, and svc's own modules import those directly:

* :mod:`.steps`: a start or stop as a step that one loop can drive for hundreds;
* :mod:`.context`: settings, paths and caches shared by the instances of one command;
* :mod:`.pidfile`, :mod:`.live`: ``run/start.pid`` and the instance's live process;
* :mod:`.spawn`: how every process of an instance is launched;
* :mod:`.start` (with :mod:`.daemonized`), :mod:`.stop`, :mod:`.status`.

``svc shutdown`` skips this module (see :mod:`shipyard.cli.svc_all`): it imports the
context and the stop path only, not the start path.
"""

from __future__ import annotations

from shipyard.svc.context import Context, require_registration
from shipyard.svc.live import live_record
from shipyard.svc.start import begin_start, start
from shipyard.svc.status import Status, is_active, may_be_active, status
from shipyard.svc.steps import Outcome, Pending, Step, drive
from shipyard.svc.stop import begin_stop, stop

__all__ = [
    "Context", "Outcome", "Pending", "Status", "Step", "begin_start", "begin_stop",
    "drive", "is_active", "live_record", "may_be_active", "require_registration", "start",
    "status", "stop",
]
