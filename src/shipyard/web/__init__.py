"""The coordinator's web pages (Jinja2, server-rendered; sign-in, sessions, CSRF).

Layer (docs/architecture.md): above ``farm`` (it reads builds, workers and statistics
through :mod:`shipyard.farm.queries` and :mod:`shipyard.farm.stats`, never the farm's
tables, and acts through :mod:`shipyard.farm.actions`) and ``repo``;
below ``server``, which mounts the pages on the farm's app. The farm itself does not know the pages.

Public face: :func:`.pages.install` (mount the pages on an app), :mod:`.users` (the
``farm user`` commands), :mod:`.passwords`.
"""
