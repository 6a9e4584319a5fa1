"""The push hook: a ``post-receive`` that asks the farm to build what a push changed.

For every branch update (``old new ref`` on stdin) it finds the package directories (those
holding ``shipyard.toml``) with changes between ``old`` and ``new`` (the whole tree for a
new branch), reads each manifest *at* ``new`` and requests a build of (package, version,
commit). The coordinator decides idempotently whether that version is already built or
queued, so pushing twice, or two hooks, never build twice.

Every request is first written to a spool inside the bare repository and removed once the
coordinator has answered, so a coordinator that is down (or a hook killed halfway) loses
nothing: the next push or ``shipyard farm hook flush`` sends what is left, in order. The
push itself never fails because of the farm: the hook always exits 0 and says what it did
on stderr (git shows it to the pusher as ``remote:`` lines).

Layout: the face (``install``, ``run``, ``flush`` ...) is here; the parts are
:mod:`.hookinstall` (the hook, its config and spool in the bare repository),
:mod:`.hookscan` (what a push changed, as build requests) and :mod:`.hookspool` (keeping
and sending them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TextIO

from shipyard.errors import ShipyardError
from shipyard.farm.hookinstall import (
    CONFIG_NAME,
    HOOK_MARK,
    SPOOL_NAME,
    HookConfig,
    Owner,
    check_bare,
    install,
    load_config,
    repository_owner,
)
from shipyard.farm.hookscan import ZERO, build_requests, changed_packages, package_dirs
from shipyard.farm.hookspool import (
    FlushReport,
    flush,
    pending,
    print_report,
    send_unspooled,
    spool,
    spool_dir,
)

__all__ = [
    "CONFIG_NAME", "HOOK_MARK", "SPOOL_NAME", "ZERO", "FlushReport", "HookConfig", "Owner",
    "build_requests", "changed_packages", "check_bare", "flush", "install", "load_config",
    "package_dirs", "pending", "print_report", "repository_owner", "run", "spool",
    "spool_dir",
]


def run(path: str | os.PathLike[str], lines: Iterable[str], out: TextIO) -> int:
    """The ``post-receive`` body. Always returns 0: a push never fails because of us."""
    try:
        bare = check_bare(path)
        config = load_config(bare)
        requests: list[dict] = []
        for line in lines:
            parts = line.split()
            if len(parts) != 3:
                continue
            old, new, ref = parts
            if new == ZERO or not ref.startswith("refs/heads/"):
                continue
            requests.extend(build_requests(bare, config.repo_url, old, new, ref))
        try:
            spool(bare, requests)
        except OSError as exc:
            # Cannot keep them: send them straight away, and say so if that fails too.
            send_unspooled(bare, config, requests, exc, out)
        else:
            report = flush(bare, config)
            print_report(report, bare, out)
    except ShipyardError as exc:
        out.write("shipyard farm: hook error, no build was requested for this push (the "
                  f"push itself succeeded): {exc.message}\n")
    except Exception as exc:  # never fail a push
        out.write("shipyard farm: hook error, no build was requested for this push (the "
                  f"push itself succeeded): {type(exc).__name__}: {exc}\n")
    out.flush()
    return 0
