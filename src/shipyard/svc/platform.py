"""The platform tag a start script or an ``exec`` line uses to pick its binary.

One spelling per platform, whatever the kernel calls its machine (``amd64`` and ``x86_64``
are the same binary), so a package ships ``bin/linux-x86_64/`` and ``bin/linux-aarch64/``
and never has to guess.
"""

from __future__ import annotations

import platform as _platform

_MACHINE_ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "arm64": "aarch64",
    "armv8l": "aarch64",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
}


def platform_tag() -> str:
    """``<system>-<machine>``, lower case, e.g. ``linux-x86_64`` or ``linux-aarch64``."""
    system = _platform.system().lower() or "unknown"
    machine = _platform.machine().lower() or "unknown"
    return f"{system}-{_MACHINE_ALIASES.get(machine, machine)}"
