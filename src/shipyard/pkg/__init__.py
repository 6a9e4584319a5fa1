"""The package manager of one host: pack, fetch and verify, install and uninstall.

Layer (docs/architecture.md): above ``formats`` (the archive it packs and unpacks, the
signed index it reads), below ``svc``; it does not know services, links or the repository's
internals. Whoever must follow an install (links) or gate an uninstall (instances that use
the package) is a higher stage: :mod:`shipyard.node` runs install/uninstall for the CLI.

Public face: :mod:`.pack` (``pack_directory``), :mod:`.install` (``install``, ``uninstall``
with the caller's ``users_of``, ``repository_client``), :mod:`.store` (installed records,
the install lock), :mod:`.info`, :mod:`.verify`, :mod:`.client` (a repository read as a
node reads it), :mod:`.resolve` (``requires``).
"""
