"""One host's orchestration (DESIGN.md "Code layout": above link, below farm and fleet).

Fleet membership lives in :mod:`.identity` (keys, credential), :mod:`.client` (the
coordinator's fleet API), :mod:`.plan` (converge planning: desired + actual -> actions,
pure) and :mod:`.agent` (the node agent's loop and the execution of a plan).
"""
