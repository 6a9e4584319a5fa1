"""Fleet errors with the HTTP status the API answers with (the CLI prints the same line)."""

from __future__ import annotations

from shipyard.errors import ShipyardError


class FleetError(ShipyardError):
    status = 400


class NotFound(FleetError):
    status = 404


class Forbidden(FleetError):
    status = 403


class Unauthorized(FleetError):
    status = 401


class Conflict(FleetError):
    status = 409
