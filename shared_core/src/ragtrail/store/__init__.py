"""SQL storage for ragtrail: SQLite (default) or PostgreSQL, with Alembic migrations.

>>> store = open_store("sqlite:///runs.db")   # created at the current revision if new
>>> store.write_batch(records)                # one transaction, idempotent
>>> store.close()
"""

from __future__ import annotations

from ._errors import SchemaTooOldError
from ._migrate import VERSION_TABLE, head_revision
from ._store import SqlStore, open_store, upgrade_database
from ._url import DEFAULT_URL, URL_ENV, normalise_url

__all__ = [
    "DEFAULT_URL",
    "URL_ENV",
    "VERSION_TABLE",
    "SchemaTooOldError",
    "SqlStore",
    "head_revision",
    "normalise_url",
    "open_store",
    "upgrade_database",
]
