"""SqlStore: the SQL implementation of :class:`ragtrail.sink.Store`, and how to open one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from ..errors import ConfigError, StoreUnavailableError
from ..schemas.flat import AnyRecord
from ..sink import PermanentStoreError, PreparedBatch, StoreCapabilities, TransientStoreError
from . import _tables
from ._bulk import can_stage, insert_encoded
from ._checkpoint import WalCheckpointer
from ._errors import classify_write_error, one_line_reason
from ._migrate import check_readable, ensure_schema, inspect_schema, migrate
from ._pipeline import PreparedRows, prepare_rows
from ._retention import purge_before
from ._rollups import track_usage
from ._rows import Encoded, EncodeError, encode_batch
from ._seen import stored_before
from ._summaries import track_summaries
from ._url import (
    EngineConfig,
    create_store_engine,
    display_url,
    is_memory_sqlite,
    parse_url,
    prepare_sqlite_file,
)

__all__ = ["SqlStore", "open_store", "upgrade_database"]

logger = logging.getLogger("ragtrail.store")

class SqlStore:
    """Runs, LLM calls and documents in SQLite or PostgreSQL. Build with :func:`open_store`.

    ``write_batch`` is idempotent: records are keyed (runs by id, LLM calls by run
    id, documents by content hash, links by run, document and stage) and a key
    already stored is left as it is, so retrying a batch never duplicates rows.

    A :class:`~ragtrail.sink.CapableStore`: see :attr:`capabilities`.
    """

    def __init__(self, engine: Engine, url: URL, *, readonly: bool = False) -> None:
        self._engine = engine
        self._url = url
        self._readonly = readonly
        self._closed = False
        # PostgreSQL: COPY through temporary staging tables when the user may create
        # them (decided at the first write), else executemany.
        self._copy: bool | None = None
        # SQLite file: WAL checkpoints run on their own thread, not inside our commits.
        self._checkpointer: WalCheckpointer | None = None
        if engine.dialect.name == "sqlite" and not is_memory_sqlite(url) and not readonly:
            self._checkpointer = WalCheckpointer(engine)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for the :mod:`ragtrail.query` functions."""
        return self._engine

    @property
    def readonly(self) -> bool:
        """True when opened with ``open_store(..., readonly=True)``: nothing is written."""
        return self._readonly

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return display_url(self._url)

    @property
    def capabilities(self) -> StoreCapabilities:
        """Spooled records are taken as read back (no model validation); a forked child
        resets the pool; on PostgreSQL, whose writes mostly wait on the server with the
        interpreter released, the writer prepares the next batch meanwhile
        (:mod:`ragtrail.store._pipeline`; measured slower on SQLite, whose inserts run
        in this process)."""
        return StoreCapabilities(flat_records=True, prepare_ahead=self.dialect == "postgresql",
                                 fork_reset=True)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def write_batch(self, records: Sequence[AnyRecord]) -> None:
        """Store every record in one transaction, or none of them.

        Records may also be :class:`~ragtrail.schemas.flat.FlatRecord` (the writer's
        spool hands them back that way): their rows are inserted as they are, without
        being validated into models again.

        Raises :class:`~ragtrail.sink.TransientStoreError` when the write may succeed
        later (locked, disconnected, restarting) and
        :class:`~ragtrail.sink.PermanentStoreError` when the database refuses the data.
        """
        self._check_writable()
        if not records:
            return
        try:
            encoded = encode_batch(records, self.dialect)
        except EncodeError as exc:
            raise PermanentStoreError(str(exc)) from exc
        self._insert(encoded)

    def write_prepared(self, batch: PreparedBatch) -> None:
        """Write a batch from :meth:`prepare_batch` (its rows already encoded); errors as
        :meth:`write_batch`."""
        rows = batch.payload
        if not isinstance(rows, PreparedRows) or rows.dialect != self.dialect:
            self.write_batch(batch.records)  # not prepared here, or not encodable
            return
        self._check_writable()
        if batch.records:
            self._insert(rows.encoded)

    def _check_writable(self) -> None:
        if self._closed:
            raise TransientStoreError("store is closed")
        if self._readonly:
            raise PermanentStoreError(f"{self.url} was opened read-only")

    def _insert(self, encoded: Encoded) -> None:
        """One transaction inserting every row of ``encoded``."""
        try:
            with self._engine.begin() as conn:
                if self._copy is None:
                    self._copy = self.dialect == "postgresql" and can_stage(conn)
                stored = stored_before(conn, encoded)
                with track_usage(conn, encoded, stored), \
                        track_summaries(conn, encoded, stored):
                    insert_encoded(conn, encoded, copy=self._copy)
        except Exception as exc:
            raise classify_write_error(exc) from exc
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def prepare_batch(self, records: Sequence[AnyRecord]) -> PreparedBatch:
        """The same records with their rows encoded (and on PostgreSQL their COPY data
        built), for a later :meth:`write_prepared`. Uses no connection: the writer calls
        it on a helper thread while the previous batch is being written.

        Records that cannot be encoded come back unprepared; writing them reports the
        error.
        """
        copy = self.dialect == "postgresql" and self._copy is not False
        return PreparedBatch(records, prepare_rows(records, self.dialect, copy=copy))

    def integrity_check(self) -> bool:
        """True when the database reports itself consistent and at this code's schema.

        SQLite runs ``PRAGMA integrity_check``; PostgreSQL (which checks itself) gets a
        consistent read across the tables. False, never an exception, on failure.
        """
        try:
            with self._engine.connect() as conn:
                if self.dialect == "sqlite":
                    result = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check")]
                    if result != ["ok"]:
                        logger.warning("integrity_check on %s: %s", self.url, result[:5])
                        return False
                for table in _tables.metadata.sorted_tables:
                    conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                state = inspect_schema(conn)
                return state.revision == state.head
        except sa.exc.SQLAlchemyError:
            logger.warning("integrity_check on %s failed", self.url, exc_info=True)
            return False

    def purge(self, *, before: datetime) -> int:
        """Delete every trace whose root started before ``before`` (naive = UTC).

        Returns the number of traces deleted; documents no other trace uses go too.
        """
        if self._readonly:
            raise ConfigError(f"{self.url} was opened read-only; purge needs open_store(url)")
        return purge_before(self._engine, before)

    def revision(self) -> str | None:
        """The database's ragtrail schema revision."""
        with self._engine.connect() as conn:
            return inspect_schema(conn).revision

    def reset_after_fork(self) -> None:
        """Drop pooled connections inherited from the parent process (call in a child)."""
        self._engine.dispose(close=False)

    def close(self) -> None:
        """Release every pooled connection; later writes raise TransientStoreError."""
        self._closed = True
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"


def _engine_for(url: str | None, config: EngineConfig,
                readonly: bool = False) -> tuple[Engine, URL]:
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" and not readonly:
        prepare_sqlite_file(parsed)
    return create_store_engine(parsed, config, readonly=readonly), parsed


def open_store(
    url: str | None = None,
    *,
    auto_upgrade: bool | None = None,
    busy_timeout_ms: int = 5000,
    connect_timeout_s: float = 10.0,
    sqlite_synchronous: str = "NORMAL",
    sqlite_cache_mib: int = 8,
    readonly: bool = False,
) -> SqlStore:
    """Open (and if it is empty, create) the ragtrail database at ``url``.

    ``url`` None means ``$RAGTRAIL_URL``, else ``sqlite:///./ragtrail.db``;
    ``postgres://`` and ``postgresql://`` use psycopg 3. ``auto_upgrade``: None
    (default) creates the schema in an empty database only; True also migrates an
    older schema; False never changes the database. ``sqlite://`` is a private
    in-memory database on one shared connection: for tests, not for threads.

    Raises :class:`~ragtrail.errors.ConfigError` for a bad URL or setting,
    :class:`~ragtrail.errors.StoreUnavailableError` when the database cannot be
    reached or opened (``SchemaTooOldError`` when it needs ``ragtrail db upgrade``),
    and :class:`~ragtrail.errors.SchemaTooNewError` when a newer ragtrail wrote it.
    ``sqlite_synchronous`` (SQLite only): NORMAL, or FULL to survive OS crashes too.
    ``sqlite_cache_mib`` (SQLite only): page cache per connection; more makes inserts
    into a large database faster, at that much memory per connection.

    ``readonly=True`` opens an existing ragtrail database for reading and never
    creates, migrates or writes anything: a SQLite file is opened with ``mode=ro``
    (a missing file is an error, not a new database), a PostgreSQL session is
    ``default_transaction_read_only``; a database without ragtrail's tables, or at
    another revision, raises one clear error. ``auto_upgrade`` must then be None.
    """
    if readonly and auto_upgrade:
        raise ConfigError("open_store(readonly=True) cannot upgrade the schema")
    config = EngineConfig(busy_timeout_ms=busy_timeout_ms, connect_timeout_s=connect_timeout_s,
                          sqlite_synchronous=sqlite_synchronous,
                          sqlite_cache_mib=sqlite_cache_mib)
    engine, parsed = _engine_for(url, config, readonly)
    try:
        if readonly:
            check_readable(engine, display_url(parsed))
        else:
            ensure_schema(engine, display_url(parsed), auto_upgrade)
    except BaseException:
        engine.dispose()
        raise
    return SqlStore(engine, parsed, readonly=readonly)


def upgrade_database(url: str | None = None, *, connect_timeout_s: float = 10.0) -> str:
    """Create or migrate the ragtrail schema at ``url`` to this code's revision.

    Idempotent; returns the revision. Raises like :func:`open_store`.
    """
    engine, parsed = _engine_for(url, EngineConfig(connect_timeout_s=connect_timeout_s))
    shown = display_url(parsed)
    try:
        return migrate(engine, shown)
    except sa.exc.SQLAlchemyError as exc:
        logger.debug("upgrading %s failed", shown, exc_info=True)
        raise StoreUnavailableError(
            f"cannot upgrade database at {shown}: {one_line_reason(exc)}"
        ) from None
    finally:
        engine.dispose()
