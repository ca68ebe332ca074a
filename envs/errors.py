"""Exception hierarchy shared by every lotus package.

It lives in ``envs`` (the lowest layer) so that ``governor`` and ``runtime`` can raise and
catch the same types without importing anything heavier.
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


class PolicyError(LotusError):
    """A governor policy is unknown, or its files are missing or corrupt."""


class ModelLoadError(LotusError):
    """A model manifest or one of its files is missing, corrupt or inconsistent."""


class DeviceError(LotusError):
    """A board backend could not read or write a hardware control."""
