"""One host's orchestration: the changes that span stages below it.

``pkg`` installs, ``svc`` registers and runs, ``link`` wires; none of them calls a stage
above it, so whatever must happen *after* a change (links follow every install, uninstall,
register, unregister and upgrade) is composed here, and the CLI calls this stage. The
fleet's node agent, which converges a host on its desired state, belongs here as well:
fleet membership lives in :mod:`.identity` (keys, credential), :mod:`.client` (the
coordinator's fleet API), :mod:`.plan` (converge planning: desired + actual -> actions,
pure), :mod:`.execute` and :mod:`.agent` (the node agent's loop).

Public face: :func:`install`, :func:`uninstall`, :func:`register`, :func:`unregister`,
:func:`relink` (:mod:`.operations`) and :func:`upgrade` (:mod:`.upgrades`). They load on
first use, so ``pkg install`` does not pay for loading the service stage's control code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.node.operations import install, register, relink, uninstall, unregister
    from shipyard.node.upgrades import UpgradeFailed, UpgradeResult, upgrade

__all__ = ["UpgradeFailed", "UpgradeResult", "install", "register", "relink", "uninstall",
           "unregister", "upgrade"]
_HOME = {"install": "operations", "uninstall": "operations", "register": "operations",
         "unregister": "operations", "relink": "operations", "upgrade": "upgrades",
         "UpgradeFailed": "upgrades", "UpgradeResult": "upgrades"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
