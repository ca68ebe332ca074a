"""The one exception hierarchy of lotus, rooted in :class:`LotusError`.

It lives in ``lotus.core`` (the lowest layer) so that every package raises and catches the same
types without importing anything heavier. The CLI prints a :class:`LotusError` as one line with no
traceback; the HTTP API maps :class:`BadInputError` to 400/415/413, :class:`OverloadedError` to
503 with ``Retry-After``, :class:`NotReadyError` to 503, :class:`ModelLoadError` to 404/500.
"""

from __future__ import annotations


class LotusError(Exception):
    """Base class: an error a user can act on. The CLI prints it as one line, no traceback."""


class ConfigError(LotusError):
    """A configuration, profile or command-line value is invalid."""


class ProfileError(ConfigError):
    """A board or workload profile is unknown, unreadable or fails validation."""


class TraceError(ConfigError):
    """A proposal trace file is unreadable or holds invalid counts."""


class MissingExtraError(LotusError):
    """A command needs an optional dependency group that is not installed."""


class PolicyError(LotusError):
    """A governor policy is unknown, or its files are missing or corrupt."""


class NoTrainedPolicyError(PolicyError):
    """A shipped learned policy has no variant trained for this board's clock table."""


class ModelLoadError(LotusError):
    """A model manifest or one of its files is missing, corrupt or inconsistent."""


class DeviceError(LotusError):
    """A board backend could not read or write a hardware control, or was asked for a bad value."""


class BadInputError(LotusError):
    """A request's payload cannot be used (not an image, wrong shape or type, too large).

    :param status: the HTTP status the API answers with (400, 413 or 415).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class OverloadedError(LotusError):
    """The daemon's admission queue is full; the client should retry after ``retry_after_s``."""

    def __init__(self, message: str = "overloaded", retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReadyError(LotusError):
    """The daemon (or the named model) is starting, draining or has failed to load."""
