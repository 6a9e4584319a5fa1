"""Service instances of one host: registry, runtime dirs, start/stop/status, boot order,
init units, logs and cleanup.

Layer (docs/architecture.md): above ``pkg`` (an instance runs an installed package),
below ``link``; it never calls the link stage. Links follow a register or unregister
because :mod:`shipyard.node` runs the hooks after these calls return.

Public face: :mod:`.register` (``register``, ``unregister``, ``registry_lock``),
:mod:`.registry` (the ini files, ``instances_using``), :mod:`.control` (``start``,
``stop``, ``status``), :mod:`.boot`, :mod:`.initsys`, :mod:`.logs`, :mod:`.cleanup`.
"""
