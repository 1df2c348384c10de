"""Alembic, run programmatically: the schema revision check and upgrades.

Migrations ship inside the package (``ragtrail/store/migrations``); no alembic.ini
is involved. ragtrail keeps its revision in its own version table, so an
application's own Alembic history in the same database never collides with it.

Alembic is imported only when a database is not at :data:`HEAD_REVISION` already:
opening a current database (every process start, every CLI command) reads the
version table with one query and skips Alembic's import (~0.3-0.6 s).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError, SchemaTooNewError, StoreUnavailableError
from ._errors import SchemaTooOldError, one_line_reason
from ._tables import POSTGRES_ONLY_INDEXES, metadata

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "HEAD_REVISION",
    "VERSION_TABLE",
    "SchemaState",
    "autogenerate_filter",
    "check_readable",
    "ensure_schema",
    "head_revision",
    "inspect_schema",
    "migrate",
]

logger = logging.getLogger("ragtrail.store")

#: Table holding ragtrail's Alembic revision.
VERSION_TABLE = "ragtrail_alembic_version"
#: The newest migration's revision (tests check it against the migrations themselves).
HEAD_REVISION = "0011"
_SCRIPT_LOCATION = "ragtrail.store:migrations"
# Arbitrary constant: serialises concurrent migrations of one PostgreSQL database.
_PG_LOCK_KEY = 0x7261677472616C  # "ragtral"


class SchemaStatus(enum.Enum):
    """Where a database stands relative to this ragtrail's migrations."""

    EMPTY = "empty"
    CURRENT = "current"
    OLDER = "older"
    NEWER = "newer"
    FOREIGN = "foreign"


@dataclass(frozen=True)
class SchemaState:
    """A database's revision and what it means for this code."""

    status: SchemaStatus
    revision: str | None
    head: str


def autogenerate_filter(dialect_name: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic ``include_object`` hook: PostgreSQL-only indexes do not exist elsewhere."""

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
        return dialect_name == "postgresql" or type_ != "index" or name not in POSTGRES_ONLY_INDEXES

    return include_object


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _SCRIPT_LOCATION)
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The schema revision this ragtrail writes."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError("ragtrail's migrations are missing from the package")
    return head


def _known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except Exception:
        return False


def _at_head(conn: Connection) -> bool:
    """True when the version table holds exactly :data:`HEAD_REVISION` (no Alembic)."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return False
    found = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return list(found) == [HEAD_REVISION]


def inspect_schema(conn: Connection) -> SchemaState:
    """Read the database's ragtrail revision and compare it with this code's."""
    if _at_head(conn):
        return SchemaState(SchemaStatus.CURRENT, HEAD_REVISION, HEAD_REVISION)
    from alembic.runtime.migration import MigrationContext

    head = head_revision()
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    revision = context.get_current_revision()
    if revision == head:
        return SchemaState(SchemaStatus.CURRENT, revision, head)
    if revision is None:
        existing = set(sa.inspect(conn).get_table_names()) & set(metadata.tables)
        status = SchemaStatus.FOREIGN if existing else SchemaStatus.EMPTY
        return SchemaState(status, None, head)
    status = SchemaStatus.OLDER if _known(revision) else SchemaStatus.NEWER
    return SchemaState(status, revision, head)


def _refuse(state: SchemaState, shown: str) -> None:
    if state.status is SchemaStatus.NEWER:
        raise SchemaTooNewError(
            f"database at {shown} is at schema revision {state.revision}, newer than this "
            f"ragtrail ({state.head}); upgrade ragtrail"
        )
    if state.status is SchemaStatus.FOREIGN:
        raise ConfigError(
            f"database at {shown} already has tables named like ragtrail's "
            f"({', '.join(sorted(metadata.tables))}) that ragtrail did not create; "
            "give ragtrail its own database or schema"
        )


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        # Take the write lock now, so a second process waits instead of failing
        # halfway through creating the same tables.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine, shown: str, auto_upgrade: bool | None = True) -> str:
    """Bring the database to this code's head revision under a lock; returns it.

    The decision is taken from what the database holds once the lock is held:
    another process may have created or upgraded the schema since any earlier,
    unlocked look. ``auto_upgrade`` as in :func:`ensure_schema`.
    """
    with engine.connect() as conn:
        _lock(conn)
        state = inspect_schema(conn)
        _refuse(state, shown)
        if state.status is not SchemaStatus.CURRENT:
            fresh = state.status is SchemaStatus.EMPTY
            if not (auto_upgrade or (auto_upgrade is None and fresh)):
                raise _too_old(state, shown)
            from alembic import command

            logger.info("upgrading %s from %s to %s", shown, state.revision, state.head)
            command.upgrade(_config(conn), "head")
        conn.commit()
    return state.head


def ensure_schema(engine: Engine, shown: str, auto_upgrade: bool | None) -> SchemaState:
    """Check the database's schema; create or upgrade it as ``auto_upgrade`` allows.

    ``auto_upgrade`` None creates the schema in an empty database only; True also
    upgrades an older one; False changes nothing. Raises SchemaTooNewError,
    SchemaTooOldError, ConfigError or StoreUnavailableError with one clear line.
    """
    try:
        # Unlocked first look: the usual case, a current schema, takes no lock.
        with engine.connect() as conn:
            state = inspect_schema(conn)
        if state.status is not SchemaStatus.CURRENT:
            # Anything else is decided again under the lock: the unlocked look can
            # catch another process halfway through creating the same schema.
            migrate(engine, shown, auto_upgrade)
    except sa.exc.SQLAlchemyError as exc:
        logger.debug("opening %s failed", shown, exc_info=True)
        raise StoreUnavailableError(
            f"cannot open database at {shown}: {one_line_reason(exc)}"
        ) from None
    return SchemaState(SchemaStatus.CURRENT, state.head, state.head)


def check_readable(engine: Engine, shown: str) -> None:
    """Check, without changing anything, that the database holds ragtrail's tables at
    this code's revision; otherwise raise one clear :class:`RagtrailError`."""
    try:
        with engine.connect() as conn:
            state = inspect_schema(conn)
            conn.rollback()
    except sa.exc.SQLAlchemyError as exc:
        logger.debug("opening %s failed", shown, exc_info=True)
        raise StoreUnavailableError(
            f"cannot read database at {shown}: {one_line_reason(exc)}"
        ) from None
    _refuse(state, shown)
    if state.status is SchemaStatus.EMPTY:
        raise StoreUnavailableError(
            f"no ragtrail database at {shown}: it has no ragtrail tables "
            "(another application's database, or nothing was captured into it yet)")
    if state.status is SchemaStatus.OLDER:
        raise _too_old(state, shown)


def _too_old(state: SchemaState, shown: str) -> SchemaTooOldError:
    if state.status is SchemaStatus.EMPTY:
        found = "has no ragtrail tables yet"
    else:
        found = f"is at schema revision {state.revision}, older than this ragtrail ({state.head})"
    return SchemaTooOldError(f"database at {shown} {found}; run `ragtrail db upgrade URL` first")
