"""Errors ragtrail raises where the *user* made a mistake (bad URL, bad config).

Capture never raises into application code; these are for construction and queries.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousIdError",
    "ConfigError",
    "NotFoundError",
    "RagtrailError",
    "SchemaTooNewError",
    "StoreUnavailableError",
]


class RagtrailError(Exception):
    """Base of every error ragtrail raises on purpose."""


class ConfigError(RagtrailError, ValueError):
    """A setting is invalid (bad URL, negative limit, unreadable price file, ...)."""


class StoreUnavailableError(RagtrailError):
    """The database could not be reached or opened."""


class SchemaTooNewError(RagtrailError):
    """The database was written by a newer ragtrail than this one."""


class NotFoundError(RagtrailError, LookupError):
    """A run, trace or document id that the store does not hold."""


class AmbiguousIdError(RagtrailError, LookupError):
    """An id prefix that several stored ids start with; ``candidates`` lists some."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates
