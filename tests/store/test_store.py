"""SqlStore on SQLite and PostgreSQL: opening, idempotent writes, exact values, errors."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import sqlalchemy as sa

from ragtrail.errors import ConfigError, NotFoundError, StoreUnavailableError
from ragtrail.query import lineage, usage
from ragtrail.schemas import (
    CapturedRun,
    DocStage,
    Document,
    DocumentLink,
    LLMCostMetrics,
    LLMMetadata,
    LLMTokenUsage,
    Run,
    RunKind,
)
from ragtrail.sink import PermanentStoreError, Store, TransientStoreError
from ragtrail.store import DEFAULT_URL, URL_ENV, SqlStore, normalise_url, open_store
from ragtrail.testing.internals import classify_write_error

UTC = timezone.utc
T0 = datetime(2024, 6, 1, 8, 15, 30, 999999, tzinfo=UTC)


def record(
    run_id: str,
    *,
    trace_id: str = "t-1",
    parent_id: str | None = None,
    started: datetime = T0,
    cost: Decimal | None = None,
    tokens: int = 10,
    text: str | None = None,
    **fields: object,
) -> CapturedRun:
    """One run with an LLM call and one retrieved document."""
    doc = Document.from_text(
        text or f"document of {run_id}", document_id=f"doc-{run_id}", metadata={"n": 1}
    )
    return CapturedRun(
        run=Run(id=run_id, trace_id=trace_id, parent_id=parent_id, path=f"p.{run_id}",
                kind=RunKind.LLM, started_at=started, **{"name": "llm", **fields}),
        llm=LLMMetadata(
            provider="openai", provider_model="gpt-4o-mini",
            # Built without validation: the schema refuses counts past MAX_TOKENS, and the
            # store must still refuse them from code that skips it (model_construct).
            token_usage=LLMTokenUsage.model_construct(input_tokens=tokens, output_tokens=1),
            cost_metrics=LLMCostMetrics(total_cost=cost),
        ),
        documents=[doc],
        links=[DocumentLink(run_id=run_id, trace_id=trace_id, content_hash=doc.content_hash,
                            document_id=doc.document_id, stage=DocStage.RETRIEVED, rank=0)],
    )


def counts(store: SqlStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()
            for table in ("runs", "llm_calls", "documents", "document_links")
        }


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = open_store(db_url)
    yield opened
    opened.close()


# --- URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:pw@db:5432/x", "postgresql+psycopg://u:pw@db:5432/x"),
        ("postgresql://u@db/x?sslmode=require", "postgresql+psycopg://u@db/x?sslmode=require"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg://u@db/x"),
        ("sqlite:///runs.db", "sqlite+pysqlite:///runs.db"),
        ("  sqlite:////abs/runs.db ", "sqlite+pysqlite:////abs/runs.db"),
        ("sqlite://", "sqlite+pysqlite://"),
    ],
)
def test_normalise_url(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


def test_url_defaults_to_the_environment_then_a_local_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    assert normalise_url(None) == normalise_url(DEFAULT_URL) == "sqlite+pysqlite:///./ragtrail.db"
    monkeypatch.setenv(URL_ENV, "postgres://me@db/trail")
    assert normalise_url(None) == "postgresql+psycopg://me@db/trail"


def test_open_store_without_url_uses_ragtrail_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    open_store().close()
    assert (tmp_path / "ragtrail.db").is_file()


def _assert_one_clear_line(error: BaseException, *needles: str) -> None:
    message = str(error)
    assert "\n" not in message and message.strip() == message
    assert "sqlalchemy" not in message.lower() and "Traceback" not in message
    assert "(Background on this error" not in message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("nosuchdb://x", "unsupported database 'nosuchdb'"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u@h/db", "'postgresql+psycopg2' is not supported"),
        ("runs.db", "sqlite:///runs.db"),
        ("", "empty"),
        ("postgresql://u@h:notaport/db", "cannot parse"),
    ],
)
def test_bad_urls_give_one_clear_config_error(url: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(url)
    _assert_one_clear_line(info.value, needle)
    # No chained SQLAlchemy error in the traceback either.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_unreachable_server_gives_store_unavailable() -> None:
    with pytest.raises(StoreUnavailableError) as info:
        open_store("postgresql+psycopg://postgres:secret@127.0.0.1:1/test", connect_timeout_s=3)
    _assert_one_clear_line(info.value, "127.0.0.1:1", "refused")
    assert "secret" not in str(info.value)


def test_sqlite_paths_that_cannot_hold_a_database(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError) as info:
        open_store(f"sqlite:///{tmp_path}")
    _assert_one_clear_line(info.value, "is a directory")
    with pytest.raises(StoreUnavailableError) as info:
        open_store(f"sqlite:///{tmp_path}/missing/dir/x.db")
    _assert_one_clear_line(info.value, "does not exist")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database file, just text " * 200)
    with pytest.raises(StoreUnavailableError) as info:
        open_store(f"sqlite:///{junk}")
    _assert_one_clear_line(info.value, "not a database")


@pytest.mark.parametrize("bad", [{"busy_timeout_ms": -1}, {"busy_timeout_ms": 1.5},
                                 {"connect_timeout_s": 0}, {"sqlite_cache_mib": 0},
                                 {"sqlite_cache_mib": 2.5}])
def test_bad_connection_settings(sqlite_url: str, bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        open_store(sqlite_url, **bad)  # type: ignore[arg-type]


# --- SQLite settings ---------------------------------------------------------------


def test_sqlite_file_is_owner_only_and_in_wal_mode(sqlite_url: str, tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        store = open_store(sqlite_url, busy_timeout_ms=1234, sqlite_cache_mib=24)
    finally:
        os.umask(old_umask)
    try:
        store.write_batch([record("r1")])
        assert stat.S_IMODE((tmp_path / "ragtrail.db").stat().st_mode) == 0o600
        for side_file in tmp_path.glob("ragtrail.db-*"):  # -wal and -shm follow the database
            assert stat.S_IMODE(side_file.stat().st_mode) == 0o600
        with store.engine.connect() as conn:
            pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                      for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous",
                                   "cache_size")}
        assert pragma == {"journal_mode": "wal", "busy_timeout": 1234, "foreign_keys": 1,
                          "synchronous": 1, "cache_size": -24 * 1024}
        assert store.dialect == "sqlite"
    finally:
        store.close()


def test_in_memory_sqlite_keeps_one_database() -> None:
    with open_store("sqlite://") as store:
        store.write_batch([record("r1")])
        assert counts(store)["runs"] == 1


# --- writes ------------------------------------------------------------------------


def test_store_implements_the_sink_store_protocol(store: SqlStore) -> None:
    assert isinstance(store, Store)
    assert store.integrity_check() is True
    assert repr(store).startswith("SqlStore(")


def test_writes_are_idempotent(store: SqlStore) -> None:
    batch = [record("r1"), record("r2", parent_id="r1")]
    store.write_batch(batch)
    store.write_batch(batch)  # a retried batch after an ambiguous commit
    store.write_batch([batch[1]])  # the same record again in another batch
    store.write_batch([batch[0], batch[0]])  # duplicated within one batch
    assert counts(store) == {"runs": 2, "llm_calls": 2, "documents": 2, "document_links": 2}
    assert store.write_batch([]) is None


def test_a_batch_of_stored_and_new_runs_stores_the_new_ones(store: SqlStore) -> None:
    old = [record("r1"), record("r2", parent_id="r1")]
    store.write_batch(old)
    store.write_batch([old[1], record("r3", parent_id="r1"), old[0], record("r4")])
    assert counts(store) == {"runs": 4, "llm_calls": 4, "documents": 4, "document_links": 4}


def test_a_batch_with_a_stored_run_goes_through_staging_whole_and_once(
        store: SqlStore) -> None:
    # On PostgreSQL a batch's runs are copied straight into their tables; a run stored
    # already (by a committed attempt, or another writer) makes that copy fail, so the
    # batch is rolled back to its savepoint and goes through the staging tables.
    first = record("r1")
    store.write_batch([first])
    store.write_batch([record("r0"), first, record("r2")])
    assert counts(store) == {"runs": 3, "llm_calls": 3, "documents": 3, "document_links": 3}
    store.write_batch([record("r5")])  # the connection is still good, and copies again
    assert counts(store)["runs"] == 4


def test_one_document_row_per_content_hash(store: SqlStore) -> None:
    store.write_batch([record("r1", text="shared"), record("r2", text="shared")])
    assert counts(store) == {"runs": 2, "llm_calls": 2, "documents": 1, "document_links": 2}


def test_runs_arrive_in_any_order_without_parents(store: SqlStore) -> None:
    store.write_batch([record("child", parent_id="parent-not-yet-written", trace_id="t-9")])
    store.write_batch([record("t-9", trace_id="t-9", started=T0 - timedelta(seconds=1))])
    assert [r.id for r in lineage(store.engine, "child").runs] == ["t-9", "child"]


def test_a_batch_is_one_transaction(store: SqlStore) -> None:
    too_big = record("r-bad", cost=Decimal("1e12"))  # beyond what a cost column holds
    with pytest.raises(PermanentStoreError):
        store.write_batch([record("r-good"), too_big])
    assert counts(store)["runs"] == 0


def test_a_refused_row_in_a_multi_row_statement_is_permanent(store: SqlStore) -> None:
    """More runs than one multi-row INSERT holds (SQLite: 64 a statement): a row the
    database refuses inside one is a data error (dead-lettered, not retried forever),
    and nothing of the batch is stored."""
    batch = [record(f"r-{i:03d}") for i in range(150)]
    batch[100].run.name = None  # type: ignore[assignment]  # NOT NULL in the table
    with pytest.raises(PermanentStoreError):
        store.write_batch(batch)
    assert counts(store)["runs"] == 0
    store.write_batch(batch[:100] + batch[101:])
    assert counts(store)["runs"] == 149


def test_timestamps_round_trip_as_aware_utc_with_microseconds(store: SqlStore) -> None:
    eastern = datetime(2024, 12, 31, 22, 59, 59, 1, tzinfo=timezone(timedelta(hours=-5)))
    rec = record("r1", started=eastern, ended_at=eastern + timedelta(microseconds=999_998))
    store.write_batch([rec])
    [run] = lineage(store.engine, "r1").runs
    assert run.started_at == eastern
    assert run.started_at.tzinfo == UTC and run.started_at.microsecond == 1
    assert run.started_at.isoformat() == "2025-01-01T03:59:59.000001+00:00"
    assert run.ended_at == eastern + timedelta(microseconds=999_998)


@pytest.mark.parametrize(
    "cost",
    [Decimal("0.0000000001"), Decimal("123.4567890123"), Decimal("99999999.9999999999"),
     Decimal("0")],
)
def test_costs_round_trip_exactly(store: SqlStore, cost: Decimal) -> None:
    store.write_batch([record("r1", cost=cost)])
    [call] = lineage(store.engine, "r1").llm_calls
    assert call.metadata.cost_metrics is not None
    assert call.metadata.cost_metrics.total_cost == cost
    [row] = usage(store.engine, group_by=[])
    assert row.total_cost == cost


def test_cost_sums_are_exact_decimals(store: SqlStore) -> None:
    # 0.1 + 0.2 is not 0.3 in floating point; ten micro-dollar calls must sum exactly.
    store.write_batch([record(f"r{i}", cost=Decimal("0.1") if i % 2 else Decimal("0.2"))
                       for i in range(2)])
    store.write_batch([record(f"m{i}", cost=Decimal("0.0000012345")) for i in range(10)])
    [row] = usage(store.engine, group_by=[])
    assert row.total_cost == Decimal("0.300012345")
    assert (row.calls, row.priced_calls, row.unpriced_calls) == (12, 12, 0)


def test_more_than_ten_places_stays_exact_in_the_record(store: SqlStore) -> None:
    cost = Decimal("0.000000000012345")
    store.write_batch([record("r1", cost=cost)])
    [call] = lineage(store.engine, "r1").llm_calls
    assert call.metadata.cost_metrics is not None
    assert call.metadata.cost_metrics.total_cost == cost  # the JSON copy keeps every digit
    assert usage(store.engine, group_by=[])[0].total_cost == Decimal("0")  # column: 10 places


def test_total_tokens_fall_back_to_input_plus_output(store: SqlStore) -> None:
    store.write_batch([record("r1", tokens=41)])
    assert usage(store.engine, group_by="model")[0].total_tokens == 42


def test_nul_bytes_and_lone_surrogates_are_stored_safely(store: SqlStore) -> None:
    bad = "a\x00b\ud800c"
    rec = record("r1", text=f"doc {bad}", name=f"name {bad}",
                 inputs={f"key{bad}": [bad, {"deep": bad}]}, metadata={"m": bad})
    store.write_batch([rec])  # PostgreSQL would refuse NUL in text and JSONB

    found = lineage(store.engine, "r1")
    [run] = found.runs
    clean = "a\ufffdb\ufffdc"
    assert run.name == f"name {clean}"
    assert run.inputs == {f"key{clean}": [clean, {"deep": clean}]}
    assert run.metadata == {"m": clean}
    [use] = found.documents
    assert use.content == f"doc {clean}"
    assert use.content_hash == rec.documents[0].content_hash  # still joinable by its hash


# --- error classification ----------------------------------------------------------


def test_sqlite_locked_by_another_connection_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = open_store(f"sqlite:///{path}", busy_timeout_ms=50)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(TransientStoreError, match="locked") as info:
            store.write_batch([record("r1")])
        assert info.value.__cause__ is not None
        holder.execute("ROLLBACK")
        store.write_batch([record("r1")])  # the same batch succeeds once the lock is gone
        assert counts(store)["runs"] == 1
    finally:
        holder.close()
        store.close()


@pytest.mark.postgres
def test_postgres_lock_timeout_is_transient(pg_url: str) -> None:
    locked_url = f"{pg_url}{quote(' -clock_timeout=200')}"
    store = open_store(locked_url)
    holder = sa.create_engine(pg_url)
    try:
        with holder.connect() as conn:
            conn.execute(sa.text("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(TransientStoreError, match="lock"):
                store.write_batch([record("r1")])
            conn.rollback()
        store.write_batch([record("r1")])
        assert counts(store)["runs"] == 1
    finally:
        holder.dispose()
        store.close()


@pytest.mark.postgres
def test_postgres_reconnects_after_its_connection_is_killed(pg_url: str) -> None:
    store = open_store(pg_url)
    admin = sa.create_engine(pg_url)
    try:
        store.write_batch([record("r1")])
        with store.engine.connect() as conn:  # the pooled connection the next write reuses
            pid = conn.execute(sa.text("select pg_backend_pid()")).scalar_one()
        with admin.begin() as conn:
            killed = conn.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
            assert killed.scalar_one() is True
        store.write_batch([record("r2")])  # pre-ping replaces the dead connection
        assert counts(store)["runs"] == 2
    finally:
        admin.dispose()
        store.close()


def _driver_error(kind: type[sa.exc.DBAPIError], orig: Exception) -> sa.exc.DBAPIError:
    return kind("INSERT INTO runs ...", {}, orig)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_driver_error(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")),
         True),
        (_driver_error(sa.exc.OperationalError, sqlite3.OperationalError("disk I/O error")), True),
        (_driver_error(sa.exc.OperationalError, psycopg.errors.AdminShutdown("terminating")),
         True),
        (_driver_error(sa.exc.OperationalError, psycopg.errors.SerializationFailure("retry")),
         True),
        (_driver_error(sa.exc.OperationalError, psycopg.errors.DeadlockDetected("deadlock")),
         True),
        (_driver_error(sa.exc.ProgrammingError, psycopg.errors.UndefinedTable("no runs")), True),
        (_driver_error(sa.exc.OperationalError, psycopg.OperationalError("connection refused")),
         True),
        (_driver_error(sa.exc.IntegrityError, psycopg.errors.UniqueViolation("dup")), False),
        (_driver_error(sa.exc.DataError, psycopg.errors.UntranslatableCharacter("\\u0000")),
         False),
        (_driver_error(sa.exc.DataError, psycopg.errors.StringDataRightTruncation("long")), False),
        (_driver_error(sa.exc.IntegrityError, sqlite3.IntegrityError("NOT NULL failed")), False),
        (sa.exc.DisconnectionError("gone"), True),
        # Raised by the driver itself, outside SQLAlchemy (PostgreSQL's COPY path):
        (psycopg.errors.NumericValueOutOfRange("bigint out of range"), False),
        (psycopg.errors.NotNullViolation("null value"), False),
        (psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum"), False),
        (_driver_error(sa.exc.OperationalError,
                       psycopg.errors.ProgramLimitExceeded("index row size")), False),
        (psycopg.errors.SerializationFailure("could not serialize"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.OperationalError("server closed the connection"), True),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), False),
    ],
    ids=lambda value: type(getattr(value, "orig", value)).__name__
    if not isinstance(value, bool) else str(value),
)
def test_error_classification(error: Exception, transient: bool) -> None:
    kind = TransientStoreError if transient else PermanentStoreError
    classified = classify_write_error(error)
    assert type(classified) is kind
    assert "\n" not in str(classified)


@pytest.mark.parametrize(
    "rec",
    [
        record("r-cost", cost=Decimal("1e12")),
        record("r-tokens", tokens=2**70),
    ],
    ids=["cost-out-of-range", "tokens-beyond-bigint"],
)
def test_values_the_database_refuses_are_permanent(store: SqlStore, rec: CapturedRun) -> None:
    with pytest.raises(PermanentStoreError) as info:
        store.write_batch([rec])
    assert info.value.__cause__ is not None
    store.write_batch([record("r-fine")])  # the store itself is fine afterwards
    assert counts(store)["runs"] == 1


def test_writing_after_close_is_transient(db_url: str) -> None:
    store = open_store(db_url)
    store.close()
    with pytest.raises(TransientStoreError, match="closed"):
        store.write_batch([record("r1")])


# --- retention ---------------------------------------------------------------------


def test_purge_deletes_whole_old_traces_and_their_unshared_documents(store: SqlStore) -> None:
    old, new = T0 - timedelta(days=40), T0
    store.write_batch([
        record("old", trace_id="old", started=old, text="only old uses this"),
        record("old-child", trace_id="old", parent_id="old", started=old, text="shared text"),
        record("new", trace_id="new", started=new, text="shared text"),
        record("orphan", trace_id="never-stored-root", parent_id="x", started=old),
    ])
    assert store.purge(before=T0 - timedelta(days=30)) == 1
    assert counts(store) == {"runs": 2, "llm_calls": 2, "documents": 2, "document_links": 2}
    with store.engine.connect() as conn:
        contents = set(conn.execute(sa.text("select content from documents")).scalars())
    assert contents == {"shared text", "document of orphan"}
    assert store.purge(before=datetime(2024, 5, 1)) == 0  # naive = UTC
    with pytest.raises(NotFoundError):
        lineage(store.engine, "old-child")


def _lz4_offered(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "select 'lz4' = any(enumvals) from pg_settings "
                "where name = 'default_toast_compression'")).scalar())
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("copy", [True, False], ids=["copy", "executemany"])
def test_postgres_compresses_large_values_with_lz4(pg_url: str, copy: bool) -> None:
    if not _lz4_offered(pg_url):
        pytest.skip("this PostgreSQL server offers no lz4 TOAST compression")
    store = open_store(pg_url)
    try:
        store.write_batch([record("warm")])  # decides COPY or not at the first write
        store._copy = copy
        big = record("big", inputs={"question": "What is in the context? " * 400})
        store.write_batch([big])
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("show default_toast_compression")).scalar() == "lz4"
            # A payload this large is stored once apart, in payloads (revision 0011).
            method = conn.execute(sa.text(
                "select pg_column_compression(p.body) from payloads p "
                "join runs r on r.inputs_ref = p.hash where r.id = 'big'")).scalar()
        assert method == "lz4"
        assert lineage(store.engine, "big").runs[0].inputs == big.run.inputs
    finally:
        store.close()


def test_a_run_nested_a_hundred_levels_deep_is_stored(db_url: str) -> None:
    # Its path grows by the start time and id per level and hardly compresses (random
    # ids): PostgreSQL's btree, when runs.path was indexed, refused entries over 2,704
    # bytes after compression, and lost such runs (LlamaIndex refining over many
    # chunks nests that deep).
    import secrets

    from ragtrail import Trail

    with Trail(db_url, background=False) as trail:
        ids = [secrets.token_urlsafe(48) for _ in range(100)]
        for parent, run_id in zip([None, *ids[:-1]], ids, strict=True):
            trail.recorder.start_run(run_id, kind="chain", name="step", parent_id=parent)
        for run_id in reversed(ids):
            trail.recorder.end_run(run_id, outputs={"ok": True})
        assert trail.flush(30), trail.stats()
        runs = trail.lineage(ids[-1]).runs
    assert len(runs) == 100 and len(runs[-1].path) > 8_000
    assert [r.id for r in runs] == ids


def test_keys_too_long_for_an_index_are_stored_bounded_and_found_by_their_full_value(
        db_url: str) -> None:
    # A session token, a URL as document id, an application name: over PostgreSQL's
    # 2,704-byte index entry they made the database refuse the whole run.
    import secrets

    from ragtrail import Trail
    from ragtrail.capture import DocumentInput
    from ragtrail.schemas import MAX_KEY_CHARS, LLMMetadata

    def long(tag: str) -> str:
        return tag + secrets.token_urlsafe(3_000)

    session, app, doc_id, run_id, model = (long("s"), long("a"), long("https://kb/"),
                                           long("run-"), long("model-"))
    with Trail(db_url, background=False, app_name=app) as trail:
        rec = trail.recorder
        rec.start_run(run_id, kind="chain", name="ask", session_id=session)
        rec.start_run("llm-1", kind="llm", name="chat", parent_id=run_id)
        rec.add_documents("llm-1", [DocumentInput("WAL text", document_id=doc_id)],
                          stage=DocStage.IN_PROMPT)
        rec.update_llm("llm-1", LLMMetadata(provider="openai", provider_model=model))
        rec.end_run("llm-1", outputs="answer")
        rec.end_run(run_id, outputs="answer")
        assert trail.flush(30), trail.stats()
        lineage_ = trail.lineage(run_id)  # found by the full id
        stored_run = lineage_.runs[0]
        assert len(stored_run.id) <= MAX_KEY_CHARS and stored_run.id.startswith("run-")
        assert len(stored_run.session_id or "") <= MAX_KEY_CHARS
        assert [t.trace_id for t in trail.traces(session_id=session, app_name=app,
                                                 model=model)] == [stored_run.id]
        assert [u.trace_id for u in trail.answers_using(doc_id)] == [stored_run.id]
        # Distinct long values stay distinct; the same value maps to the same key.
        other = long("s")
        assert trail.traces(session_id=other) == []
