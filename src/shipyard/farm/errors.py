"""Farm errors that carry an HTTP status, so the API and the CLI report the same one line."""

from __future__ import annotations

from shipyard.errors import ShipyardError


class FarmError(ShipyardError):
    """A request the coordinator refuses; ``status`` is the HTTP status it answers with."""

    status = 400


class NotFound(FarmError):
    status = 404


class Conflict(FarmError):
    """The request does not fit the current state (a stale attempt, an aborted build)."""

    status = 409


class Forbidden(FarmError):
    status = 403


class TooLarge(FarmError):
    status = 413


class Unauthorized(FarmError):
    status = 401


class CoordinatorUnreachable(ShipyardError):
    """The coordinator did not answer (connection refused, timeout, 5xx)."""
