"""What runs behind the coordinator's port: one ASGI app composed of the farm's JSON API
and the web pages (and, with the fleet, its API), bound and served under Uvicorn.

It sits above ``web`` and ``farm`` so neither has to know the other exists; ``shipyard
farm serve`` (and so the demo, which runs that command) starts the coordinator through it.

Public face: :func:`create_app`, :func:`listen`, :func:`adopt`, :func:`serve` (:mod:`.app`).
"""

from shipyard.server.app import adopt, create_app, listen, parse_bind, serve

__all__ = ["adopt", "create_app", "listen", "parse_bind", "serve"]
