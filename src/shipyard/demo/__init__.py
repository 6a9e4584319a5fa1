"""``shipyard demo``: the whole pipeline on one machine, with real processes.

A newcomer's first contact with Shipyard, and the project's widest end-to-end check. Every
stage runs the way an operator would run it: the farm's coordinator, two workers, a static
web server for the repository and an SMTP sink are separate processes; the node is driven
through the ``shipyard`` command line; every check asks the real thing (the coordinator's
API, the repository's database, the chat server itself) rather than trusting an exit code.

Modules, one job each: :mod:`.layout` (where everything lives, wiping safely),
:mod:`.procs` (background processes and their clean stop), :mod:`.commands` (the CLI and
git as subprocesses), :mod:`.waiting` (deadlines), :mod:`.netutil` (loopback ports),
:mod:`.source` (the git repository made from ``examples/``), :mod:`.machine`
(coordinator, workers, HTTP server, SMTP sink),
:mod:`.farmview` (what the coordinator and the repository say), :mod:`.node` (install,
register, boot, link, ask the chat server), :mod:`.mail` (the caught mail),
:mod:`.summary` (tables), :mod:`.steps` (the seven steps) and :mod:`.runner` (progress
lines, failure, Ctrl-C and the clean stop).

Layer (docs/architecture.md): beside ``server``, below ``cli``; it drives the other stages
as an operator does, through the ``shipyard`` command (``farm serve`` starts the
coordinator through :mod:`shipyard.server`).
"""
