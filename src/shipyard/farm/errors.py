"""Farm errors: a refusal carries its HTTP status (:class:`shipyard.errors.HttpError`), so
the API and the CLI report the same one line; the status classes are the base's."""

from __future__ import annotations

from shipyard.errors import (
    Conflict,
    Forbidden,
    HttpError,
    NotFound,
    ShipyardError,
    TooLarge,
    Unauthorized,
)

# The farm's name for a refusal: NotFound, Conflict... are FarmErrors too.
FarmError = HttpError


class CoordinatorUnreachable(ShipyardError):
    """The coordinator did not answer (connection refused, timeout, 5xx)."""


__all__ = ["Conflict", "CoordinatorUnreachable", "FarmError", "Forbidden", "NotFound",
           "TooLarge", "Unauthorized"]
