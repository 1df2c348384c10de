"""Errors ragtrail raises where the *user* made a mistake (bad URL, bad config).

Capture never raises into application code; these are for construction and queries.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousIdError",
    "ConfigError",
    "DefaultUserHashKeyWarning",
    "NotFoundError",
    "RagtrailError",
    "RagtrailWarning",
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


class RagtrailWarning(UserWarning):
    """Base of the warnings ragtrail issues (filter them with ``warnings`` as usual)."""


class DefaultUserHashKeyWarning(RagtrailWarning):
    """User ids are hashed with ragtrail's public default key: anyone can recompute the
    hash of a guessed id. Set ``RedactionConfig(user_hash_secret=...)`` or
    ``RAGTRAIL_USER_HASH_SECRET``. Issued once per process."""
