"""Database URLs and engines: which URLs ragtrail accepts and how it connects.

SQLite files are created owner-only (0600) before SQLite opens them and run in WAL
mode with a busy timeout; PostgreSQL goes through psycopg 3 with pre-ping and a
connect timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import QueuePool, StaticPool

from ..errors import ConfigError, StoreUnavailableError
from ._checkpoint import AUTOCHECKPOINT_PAGES
from ._rows import json_serializer

__all__ = [
    "DEFAULT_URL",
    "URL_ENV",
    "EngineConfig",
    "create_store_engine",
    "display_url",
    "normalise_url",
    "parse_url",
    "readonly_sqlite_path",
]

logger = logging.getLogger("ragtrail.store")

#: Environment variable naming the database when no URL is given.
URL_ENV = "RAGTRAIL_URL"
#: The database used when neither a URL nor :data:`URL_ENV` is given.
DEFAULT_URL = "sqlite:///./ragtrail.db"

_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_PG_ALIASES = {"postgres", "postgresql", "postgres+psycopg", "postgresql+psycopg"}
_PG_DRIVERNAME = "postgresql+psycopg"
_MEMORY_DATABASES = {None, "", ":memory:"}
_FILE_MODE = 0o600


@dataclass(frozen=True)
class EngineConfig:
    """Connection settings, validated when built."""

    busy_timeout_ms: int = 5000
    connect_timeout_s: float = 10.0
    #: SQLite's ``PRAGMA synchronous``. NORMAL (default, with WAL): a committed write
    #: survives an application crash, and the file stays consistent after an OS crash
    #: or power loss, which may lose the last commits. FULL/EXTRA: those survive too,
    #: at the cost of an fsync per transaction.
    sqlite_synchronous: str = "NORMAL"
    #: SQLite's page cache per connection (``PRAGMA cache_size``), in MiB. SQLite's own
    #: default, 2 MiB, is small for a store whose runs table has ten indexes: past a
    #: few hundred thousand runs every insert reads index pages back from the OS. At
    #: 8 MiB the outage test's backlog drained in 15.9-17.2 s against 18.3-24.4 s.
    sqlite_cache_mib: int = 8

    def __post_init__(self) -> None:
        if str(self.sqlite_synchronous).upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigError("sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, "
                              f"got {self.sqlite_synchronous!r}")
        if isinstance(self.busy_timeout_ms, bool) or not isinstance(self.busy_timeout_ms, int):
            raise ConfigError(f"busy_timeout_ms must be an integer, got {self.busy_timeout_ms!r}")
        if (isinstance(self.sqlite_cache_mib, bool) or not isinstance(self.sqlite_cache_mib, int)
                or self.sqlite_cache_mib < 1):
            raise ConfigError(f"sqlite_cache_mib must be an integer >= 1, "
                              f"got {self.sqlite_cache_mib!r}")
        if self.busy_timeout_ms < 0:
            raise ConfigError(f"busy_timeout_ms must be >= 0, got {self.busy_timeout_ms}")
        if not isinstance(self.connect_timeout_s, (int, float)) or self.connect_timeout_s <= 0:
            raise ConfigError(f"connect_timeout_s must be > 0, got {self.connect_timeout_s!r}")


def parse_url(url: str | None) -> URL:
    """The SQLAlchemy URL for ``url`` (None: ``$RAGTRAIL_URL``, else ``./ragtrail.db``).

    ``postgres://`` and ``postgresql://`` select psycopg 3. Raises :class:`ConfigError`
    for anything that is not a SQLite or PostgreSQL URL.
    """
    if url is None:
        url = os.environ.get(URL_ENV) or DEFAULT_URL
    if not isinstance(url, str):
        raise ConfigError(f"database URL must be a string, got {type(url).__name__}")
    text = url.strip()
    if not text:
        raise ConfigError("database URL is empty; use sqlite:///path/to/file.db or postgresql://...")
    if "://" not in text:
        raise ConfigError(
            f"{text!r} is not a database URL; for a SQLite file write sqlite:///{text}"
        )
    try:
        parsed = sa.engine.make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigError(f"cannot parse database URL {_scheme(text)}://...") from None
    name = parsed.drivername.lower()
    if name in _SQLITE_DRIVERS:
        return parsed.set(drivername="sqlite+pysqlite")
    if name in _PG_ALIASES:
        return parsed.set(drivername=_PG_DRIVERNAME)
    if name.startswith(("postgres", "sqlite")):
        raise ConfigError(
            f"database driver {parsed.drivername!r} is not supported; "
            f"use sqlite:/// or postgresql+psycopg:// (psycopg 3)"
        )
    raise ConfigError(
        f"unsupported database {parsed.drivername!r} in URL; "
        "use sqlite:///path/to/file.db or postgresql://user@host/db"
    )


def _scheme(text: str) -> str:
    return text.split("://", 1)[0]


def normalise_url(url: str | None) -> str:
    """``url`` as ragtrail will use it (see :func:`parse_url`), password included."""
    return parse_url(url).render_as_string(hide_password=False)


def display_url(url: URL) -> str:
    """``url`` for messages and logs: password hidden."""
    return url.render_as_string(hide_password=True)


def is_memory_sqlite(url: URL) -> bool:
    """True for a private in-memory SQLite database."""
    return url.get_backend_name() == "sqlite" and url.database in _MEMORY_DATABASES


def prepare_sqlite_file(url: URL) -> None:
    """Create the SQLite file owner-only (0600) before SQLite opens it.

    Raises :class:`StoreUnavailableError` when the path cannot hold a database.
    """
    if is_memory_sqlite(url) or url.database is None or url.database.startswith("file:"):
        return
    path = Path(url.database).expanduser()
    shown = display_url(url)
    if path.is_dir():
        raise StoreUnavailableError(
            f"cannot open SQLite database at {shown}: {path} is a directory"
        )
    if not path.parent.is_dir():
        raise StoreUnavailableError(
            f"cannot open SQLite database at {shown}: directory {path.parent} does not exist"
        )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        return  # an existing database keeps the permissions its owner chose
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot create SQLite database at {shown}: {exc.strerror or exc}"
        ) from None
    os.close(fd)


def readonly_sqlite_path(url: URL) -> Path:
    """The existing SQLite file ``url`` names, for opening read-only.

    Raises :class:`StoreUnavailableError` when there is no such file: reading never
    creates one (an in-memory database has nothing to read either).
    """
    if is_memory_sqlite(url) or url.database is None:
        raise StoreUnavailableError(
            f"{display_url(url)} is a new, empty in-memory database: nothing to read")
    path = Path(url.database).expanduser()
    if not path.is_file():
        raise StoreUnavailableError(f"no ragtrail database at {path}: no such file")
    return path


def create_store_engine(url: URL, config: EngineConfig, *, readonly: bool = False) -> Engine:
    """An Engine for ``url`` with ragtrail's connection settings (does not connect).

    ``readonly``: every connection refuses to write (SQLite opened with ``mode=ro``,
    PostgreSQL sessions with ``default_transaction_read_only``).
    """
    if url.get_backend_name() == "sqlite":
        if readonly:
            return _sqlite_readonly_engine(url, config)
        return _sqlite_engine(url, config)
    connect_args: dict[str, Any] = {
        "connect_timeout": max(1, round(config.connect_timeout_s)),
        "application_name": "ragtrail",
    }
    if readonly:
        # Added to the URL's own options (a search_path, say), which connect_args
        # would otherwise replace.
        given = url.query.get("options") or ""
        given = " ".join(given) if isinstance(given, tuple) else given
        connect_args["options"] = f"{given} -c default_transaction_read_only=on".strip()
    try:
        engine = sa.create_engine(
            url,
            json_serializer=json_serializer,
            pool_pre_ping=True,
            connect_args=connect_args,
        )
    except (ImportError, sa.exc.NoSuchModuleError):
        raise ConfigError(
            "PostgreSQL needs psycopg 3: pip install 'ragtrail[postgres]'"
        ) from None
    sa.event.listen(engine, "connect", _postgres_session)
    return engine


_LZ4_OFFERED = ("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                "WHERE name = 'default_toast_compression'")


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    """Per connection: compress large values (prompts, inputs, outputs) with lz4.

    PostgreSQL 14+ built with lz4 offers it; its default, pglz, is several times slower
    to compress (COPY of an LLM call with ~2 KB of messages: 60-82 us -> 37-49 us).
    Values already stored stay readable either way. Only an optimisation: any failure
    leaves the server's default in place.
    """
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(_LZ4_OFFERED)
            row = cursor.fetchone()
            if row is not None and row[0]:
                cursor.execute("SET default_toast_compression = 'lz4'")
        dbapi_connection.commit()
    except Exception as exc:
        logger.debug("keeping the server's TOAST compression: %s", exc)
        with contextlib.suppress(Exception):
            dbapi_connection.rollback()


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _enable_wal(cursor: sqlite3.Cursor, within_s: float) -> None:
    """Put the database file in WAL mode (a setting the file keeps).

    Switching a new file to WAL answers "database is locked" at once, without
    SQLite's busy handler, when another connection is switching it at the same
    moment; so the switch is retried, for at most the busy timeout.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

    for attempt in Retrying(
        retry=retry_if_exception(_is_locked),
        wait=wait_random(0.005, 0.05),
        stop=stop_after_delay(within_s),
        reraise=True,
    ):
        with attempt:
            cursor.execute("PRAGMA journal_mode = WAL")


def _sqlite_engine(url: URL, config: EngineConfig) -> Engine:
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": config.busy_timeout_ms / 1000.0},
        "json_serializer": json_serializer,
    }
    memory = is_memory_sqlite(url)
    if memory:
        # One shared connection, or every checkout would see a new empty database.
        kwargs.update(poolclass=StaticPool)
        kwargs["connect_args"]["check_same_thread"] = False
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL may itself wait for a lock.
            cursor.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
            if not memory:
                _enable_wal(cursor, config.busy_timeout_ms / 1000.0)
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA synchronous = {str(config.sqlite_synchronous).upper()}")
            cursor.execute(f"PRAGMA cache_size = {-1024 * config.sqlite_cache_mib}")  # KiB
            if not memory:  # SqlStore checkpoints on its own thread; this is the backstop
                cursor.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        finally:
            cursor.close()

    return engine


def _sqlite_readonly_engine(url: URL, config: EngineConfig) -> Engine:
    """Connections that open the existing file with ``mode=ro``: SQLite itself refuses
    every write, no file is created, the journal mode is left as the file has it."""
    database = url.database or ""
    if database.startswith("file:"):  # already a URI: SQLite applies its own options
        target = database + ("&" if "?" in database else "?") + "mode=ro"
    else:
        path = readonly_sqlite_path(url).resolve()
        target = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    timeout_s = config.busy_timeout_ms / 1000.0

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(target, uri=True, timeout=timeout_s, check_same_thread=False)

    engine = sa.create_engine("sqlite+pysqlite://", creator=connect, poolclass=QueuePool,
                              json_serializer=json_serializer)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
            cursor.execute("PRAGMA query_only = ON")
            cursor.execute(f"PRAGMA cache_size = {-1024 * config.sqlite_cache_mib}")  # KiB
        finally:
            cursor.close()

    return engine
