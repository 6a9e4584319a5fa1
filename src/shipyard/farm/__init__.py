"""The build farm (DESIGN.md "Farm"): a passive coordinator over a database, build workers
that only make outgoing HTTP calls, and a push hook.

The state machine over the database, one concept a module: :mod:`.statements` (tables and
prepared statements), :mod:`.config` (:class:`~.config.FarmConfig`), :mod:`.views` (the
wire views of a row), :mod:`.buildlog`, :mod:`.buildrequests` (request a build), :mod:`.workers`
(registration), :mod:`.leases` (claim, heartbeat, reports, finish, reap), :mod:`.artifacts`
(uploaded packages), :mod:`.actions` (abort, requeue, pause), :mod:`.queries` (reads),
:mod:`.stats` (figures over a period) and
:mod:`.outbox` (failure mails). Around it: :mod:`.app` the HTTP API (its routers in
:mod:`.routes`), :mod:`.coordinator` the process-local wake-ups and background loops,
:mod:`.worker` the worker process (one build: :mod:`.buildrun`, with :mod:`.reporters`,
:mod:`.logsink` and :mod:`.checkout`), :mod:`.hook` the push hook, :mod:`.mailer` and
:mod:`.publisher` what follows a failure or a success, :mod:`.tokens` the API tokens,
:mod:`.client` the HTTP client they share. docs/farm.md is the operator's page.

Layer (docs/architecture.md): above ``node`` and ``repo`` (the publisher uploads and
publishes through :mod:`shipyard.repo`), below ``web``: :func:`.app.create_app` is the JSON
API only, and :mod:`shipyard.server` adds the pages.
"""
