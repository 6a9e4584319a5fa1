"""Links: adapters that wire announcers (transports) to acceptors (servers).

Layer (docs/architecture.md): above ``svc`` (it reads the registry and runtime dirs),
below ``node``. The planning in :mod:`.plan` decides what to change, as a pure function;
running the adapters (:mod:`.announce`, :mod:`.accept`, :mod:`.changes`) is apart from it,
and :mod:`.reconcile` runs the steps in order under the link lock.

Public face: :mod:`.reconcile` (``reconcile``: "make everything good"), :mod:`.hooks`
(``after_register``, ``after_change``: what :mod:`shipyard.node` runs after a change;
they never raise), :mod:`.admin` (rows, disable, enable, set_hostname), :mod:`.generate`
(the announcer's generated config).
"""
