"""The ``shipyard`` command line: one module per command group, thin by design (parse,
call the stage's face, print).

Layer (docs/architecture.md): the top; it may call any stage, and the node-side changes
(install, uninstall, register, unregister, upgrade) go through :mod:`shipyard.node` so
links follow them. Entry point: :func:`.main.entry`.
"""
