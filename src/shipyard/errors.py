"""The one exception type the CLI turns into a one-line message and an exit code.

Every module raises a subclass of :class:`ShipyardError` for anything a user or operator
can cause or fix (bad input, a missing file, a failed check). The CLI prints
``shipyard: error: <message>`` and exits with :attr:`exit_code`; anything else is a bug and
shows a traceback only under ``--debug``.
"""

from __future__ import annotations


class ShipyardError(Exception):
    """A failure the user can act on. ``exit_code`` 1 means failure, 2 means bad usage."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class UsageError(ShipyardError):
    """The command line itself was wrong (unknown option, malformed coordinate argument)."""

    exit_code = 2


class CoordinateError(UsageError):
    """A package or service coordinate does not follow the grammar."""


class ManifestError(ShipyardError):
    """A ``shipyard.toml`` is malformed; the message names the file and the key."""


class ConfigError(ShipyardError):
    """A configuration file or value is wrong; the message names where it came from."""


class ArchiveError(ShipyardError):
    """A package archive failed a check before or during extraction."""


class VerificationError(ShipyardError):
    """A signature, size or digest did not match what a signed index promised."""


class LockTimeout(ShipyardError):
    """Another process holds a lock for longer than we are willing to wait."""


class HttpError(ShipyardError):
    """A request a server refuses; ``status`` is the HTTP status it answers with, and the
    message the one line its clients (and so the CLI) show. The farm and the fleet raise
    these under their own names (``FarmError``, ``FleetError``), so one set of status
    classes serves both and one handler turns any of them into the same answer."""

    status = 400


class NotFound(HttpError):
    status = 404


class Conflict(HttpError):
    """The request does not fit the current state (a stale attempt, an aborted build)."""

    status = 409


class Forbidden(HttpError):
    status = 403


class Unauthorized(HttpError):
    status = 401


class TooLarge(HttpError):
    status = 413
