"""One host's orchestration: the changes that span stages below it.

``pkg`` installs, ``svc`` registers and runs, ``link`` wires; none of them calls a stage
above it, so whatever must happen *after* a change (links follow every install, uninstall,
register, unregister and upgrade) is composed here, and the CLI calls this stage. The
fleet's node agent, which converges a host on its desired state, belongs here as well.

Public face: :func:`install`, :func:`uninstall`, :func:`register`, :func:`unregister`
(:mod:`.operations`) and :func:`upgrade` (:mod:`.upgrade`).
"""

from shipyard.node.operations import install, register, relink, uninstall, unregister
from shipyard.node.upgrade import UpgradeFailed, UpgradeResult, upgrade

__all__ = ["UpgradeFailed", "UpgradeResult", "install", "register", "relink", "uninstall",
           "unregister", "upgrade"]
