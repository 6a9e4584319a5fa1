"""The fleet's coordinator side (DESIGN.md "Fleet (many hosts)"): nodes, desired state,
announcements; served from the same process and database as the farm, without importing it.

Modules: :mod:`.db` the database handle, :mod:`.service` the state (joins, credentials,
assignments, the desired document, reports, leases), :mod:`.pairs` announcements and link
pairs, :mod:`.hub` the process-local wake-ups of long polls and the lease reaper,
:mod:`.api` the HTTP routes under ``/api/fleet``. docs/fleet.md is the protocol and the
operator's page.
"""
