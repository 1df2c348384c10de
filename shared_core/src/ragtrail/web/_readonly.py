"""Opening a ragtrail database for reading only (the web view never writes).

SQLite files are opened with ``mode=ro`` and ``PRAGMA query_only``; PostgreSQL sessions
start with ``default_transaction_read_only``. The schema must be at this ragtrail's
revision: an older one is reported (``ragtrail db upgrade``), never migrated from here.

When the CLI gains its own read-only opening, :func:`open_readonly_engine` is the one
place to point at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import NotFoundError, SchemaTooNewError, StoreUnavailableError
from ..store._migrate import SchemaStatus, inspect_schema
from ..store._rows import json_serializer
from ..store._url import EngineConfig, create_store_engine, display_url, is_memory_sqlite, parse_url

__all__ = ["open_readonly_engine"]


#: SQLite page cache per read-only connection, KiB (the store's default for writers is
#: 8 MiB; reads of a large database, like usage over everything, scan more).
READ_CACHE_KIB = 32 * 1024


def _sqlite_readonly(url: sa.URL, busy_timeout_ms: int) -> Engine:
    path = Path(url.database or "")
    if not path.is_file():
        raise NotFoundError(f"no ragtrail database at {path} (give --db URL)")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    engine = sa.create_engine(
        "sqlite+pysqlite:///" + uri + "&uri=true",
        json_serializer=json_serializer,
        connect_args={"timeout": busy_timeout_ms / 1000.0, "check_same_thread": False},
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA query_only = ON")
            cursor.execute(f"PRAGMA cache_size = {-READ_CACHE_KIB}")
        finally:
            cursor.close()

    return engine


def _postgres_readonly(url: sa.URL, connect_timeout_s: float) -> Engine:
    engine = create_store_engine(url, EngineConfig(connect_timeout_s=connect_timeout_s))

    @sa.event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        dbapi_connection.commit()

    return engine


def open_readonly_engine(url: str | None, *, busy_timeout_ms: int = 5000,
                         connect_timeout_s: float = 10.0) -> Engine:
    """A SQLAlchemy engine on ``url`` that cannot write; the schema must be current.

    Raises :class:`~ragtrail.errors.NotFoundError` for a missing SQLite file,
    :class:`~ragtrail.errors.StoreUnavailableError` when the database cannot be read or
    needs ``ragtrail db upgrade``, :class:`~ragtrail.errors.SchemaTooNewError` when a newer
    ragtrail wrote it.
    """
    parsed = parse_url(url)
    shown = display_url(parsed)
    if parsed.get_backend_name() == "sqlite":
        if is_memory_sqlite(parsed):
            raise StoreUnavailableError("an in-memory SQLite database cannot be opened "
                                        "read-only from here; pass the Trail instead")
        engine = _sqlite_readonly(parsed, busy_timeout_ms)
    else:
        engine = _postgres_readonly(parsed, connect_timeout_s)
    try:
        with engine.connect() as conn:
            state = inspect_schema(conn)
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        orig = getattr(exc, "orig", None)
        reason = str(orig) if orig is not None else str(exc)
        raise StoreUnavailableError(f"cannot read database at {shown}: {reason}") from None
    if state.status is not SchemaStatus.CURRENT:
        engine.dispose()
        if state.status is SchemaStatus.NEWER:
            raise SchemaTooNewError(f"database at {shown} is at schema revision "
                                    f"{state.revision}, newer than this ragtrail; upgrade it")
        raise StoreUnavailableError(
            f"database at {shown} is not at this ragtrail's schema revision "
            f"({state.revision or 'no ragtrail tables'}); run `ragtrail db upgrade`")
    return engine
