"""Fleet errors with the HTTP status the API answers with (the CLI prints the same line);
the status classes are the base's (:class:`shipyard.errors.HttpError`)."""

from __future__ import annotations

from shipyard.errors import Conflict, Forbidden, HttpError, NotFound, Unauthorized

# The fleet's name for a refusal: NotFound, Conflict... are FleetErrors too.
FleetError = HttpError

__all__ = ["Conflict", "FleetError", "Forbidden", "NotFound", "Unauthorized"]
