"""Alembic migrations on SQLite and PostgreSQL: creation, upgrades, revision checks."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ragtrail.errors import ConfigError, SchemaTooNewError
from ragtrail.schemas import Document, DocumentLink, Run
from ragtrail.schemas.flat import LLM_PROMOTED
from ragtrail.store import (
    VERSION_TABLE,
    SchemaTooOldError,
    SqlStore,
    head_revision,
    open_store,
    upgrade_database,
)
from ragtrail.testing.internals import store_migrate, store_tables, store_url

RAGTRAIL_TABLES = {"runs", "llm_calls", "documents", "document_links", "tool_definitions",
                   "payloads",
                   "erasure_log", "read_audit", "usage_rollup", "quality_rollup",
                   "evaluations", "vendors"}


@contextlib.contextmanager
def _connect(url: str) -> Iterator[sa.Connection]:
    """A connection of its own (committed at the end) to the database at ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _tables_in(url: str) -> set[str]:
    with _connect(url) as conn:
        return set(sa.inspect(conn).get_table_names())


def _version_rows(url: str) -> list[str]:
    with _connect(url) as conn:
        return list(conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalars())


def _set_version(url: str, revision: str) -> None:
    with _connect(url) as conn:
        conn.execute(sa.text(f"update {VERSION_TABLE} set version_num = :v"), {"v": revision})


def test_a_fresh_database_is_created_at_the_current_revision(db_url: str) -> None:
    assert _tables_in(db_url) == set()
    store = open_store(db_url)
    try:
        assert store.revision() == head_revision()
    finally:
        store.close()
    assert _tables_in(db_url) == RAGTRAIL_TABLES | {VERSION_TABLE}
    assert _version_rows(db_url) == [head_revision()]


def test_migrated_schema_matches_the_table_definitions(db_url: str) -> None:
    upgrade_database(db_url)
    with _connect(db_url) as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "version_table": VERSION_TABLE,
            "include_object": store_migrate.autogenerate_filter(conn.dialect.name),
        })
        assert compare_metadata(context, store_tables.metadata) == []
        indexes = {ix["name"] for table in RAGTRAIL_TABLES
                   for ix in sa.inspect(conn).get_indexes(table)}
    assert "ix_runs_roots_started_at" in indexes
    assert ("ix_runs_metadata_gin" in indexes) is db_url.startswith("postgresql")


def test_upgrade_database_creates_and_is_idempotent(db_url: str) -> None:
    assert upgrade_database(db_url) == head_revision()
    with open_store(db_url) as store:
        store.write_batch([])
        with store.engine.begin() as conn:
            conn.execute(sa.text(
                "insert into documents (content_hash, document_id, content, metadata) "
                "values ('h', 'd', 'kept', '{}')"
            ))
    assert upgrade_database(db_url) == head_revision()
    assert upgrade_database(db_url) == head_revision()
    assert _version_rows(db_url) == [head_revision()]
    with open_store(db_url) as store, store.engine.connect() as conn:
        assert conn.execute(sa.text("select content from documents")).scalar_one() == "kept"


def test_a_newer_schema_is_refused(db_url: str) -> None:
    open_store(db_url).close()
    _set_version(db_url, "9999_future")
    expected = (
        f"is at schema revision 9999_future, newer than this ragtrail ({head_revision()}); "
        "upgrade ragtrail"
    )
    with pytest.raises(SchemaTooNewError, match=re.escape(expected)) as info:
        open_store(db_url)
    message = str(info.value)
    assert message.startswith("database at ") and "\n" not in message
    with pytest.raises(SchemaTooNewError, match=re.escape(expected)):
        upgrade_database(db_url)
    assert _version_rows(db_url) == ["9999_future"]  # left untouched


def test_an_older_schema_is_not_migrated_silently(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(db_url).close()
    current = head_revision()
    # Pretend this code is one revision ahead of the database.
    monkeypatch.setattr(store_migrate, "head_revision", lambda: "0002_next")
    monkeypatch.setattr(store_migrate, "HEAD_REVISION", "0002_next")
    with pytest.raises(SchemaTooOldError) as info:
        open_store(db_url)
    assert str(info.value).endswith(
        f"is at schema revision {current}, older than this ragtrail (0002_next); "
        "run `ragtrail db upgrade URL` first"
    )


def test_auto_upgrade_false_leaves_an_empty_database_alone(db_url: str) -> None:
    with pytest.raises(SchemaTooOldError, match="has no ragtrail tables yet; run `ragtrail db"):
        open_store(db_url, auto_upgrade=False)
    assert _tables_in(db_url) == set()
    open_store(db_url, auto_upgrade=True).close()
    open_store(db_url, auto_upgrade=False).close()  # current: nothing to do


def test_tables_ragtrail_did_not_create_are_refused(db_url: str) -> None:
    with _connect(db_url) as conn:
        conn.execute(sa.text("create table runs (id integer primary key, what text)"))
    with pytest.raises(ConfigError, match="did not create; give ragtrail its own database"):
        open_store(db_url)


def test_other_tables_in_the_database_are_left_alone(db_url: str) -> None:
    with _connect(db_url) as conn:
        conn.execute(sa.text("create table alembic_version (version_num varchar(32))"))
        conn.execute(sa.text("insert into alembic_version values ('the_apps_own')"))
    open_store(db_url).close()
    assert "alembic_version" in _tables_in(db_url)
    with _connect(db_url) as conn:
        assert conn.execute(sa.text("select version_num from alembic_version")).scalar_one() == (
            "the_apps_own"
        )


def _open_at_once(url: str, openers: int) -> tuple[list[SqlStore], list[BaseException]]:
    """``openers`` threads call open_store(url) at the same moment; all are closed again."""
    stores: list[SqlStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(openers)

    def open_one() -> None:
        start.wait()
        try:
            stores.append(open_store(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for store in stores:
        store.close()
    return stores, errors


def test_concurrent_first_opens_create_the_schema_once(db_url: str) -> None:
    stores, errors = _open_at_once(db_url, 4)
    assert errors == []
    assert len(stores) == 4
    assert _version_rows(db_url) == [head_revision()]


def test_first_opens_of_new_sqlite_files_all_succeed(tmp_path: Path) -> None:
    """Eight openers on each of six new files: every open succeeds.

    Two races, both seen under load: switching a new file to WAL answers
    "database is locked" without waiting, and an unlocked schema check can catch
    another opener halfway through creating the tables (and take them for foreign).
    """
    for round_ in range(6):
        url = f"sqlite:///{tmp_path / f'new-{round_}.db'}"
        stores, errors = _open_at_once(url, 8)
        assert errors == []
        assert len(stores) == 8
        assert _version_rows(url) == [head_revision()]


def test_enabling_wal_retries_a_locked_answer_within_the_busy_timeout(tmp_path: Path) -> None:
    class LockedTwice:
        """A cursor whose first two WAL switches answer as SQLite does in that race."""

        def __init__(self) -> None:
            self.real = sqlite3.connect(tmp_path / "wal.db").cursor()
            self.switches = 0

        def execute(self, sql: str) -> sqlite3.Cursor:
            if sql == "PRAGMA journal_mode = WAL":
                self.switches += 1
                if self.switches <= 2:
                    raise sqlite3.OperationalError("database is locked")
            return self.real.execute(sql)

    cursor = LockedTwice()
    store_url._enable_wal(cursor, within_s=5.0)  # type: ignore[arg-type]
    assert cursor.switches == 3
    assert cursor.real.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # A file already in WAL is left alone: no switch, nothing to race.
    again = LockedTwice()
    store_url._enable_wal(again, within_s=5.0)  # type: ignore[arg-type]
    assert again.switches == 0
    # Past the deadline the error is the caller's to see.
    stuck = LockedTwice()
    stuck.real = sqlite3.connect(tmp_path / "other.db").cursor()
    stuck.switches = -10**6
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store_url._enable_wal(stuck, within_s=0.05)  # type: ignore[arg-type]


def test_migrations_downgrade_to_an_empty_database(db_url: str) -> None:
    upgrade_database(db_url)
    with _connect(db_url) as conn:
        command.downgrade(store_migrate._config(conn), "base")
    assert _tables_in(db_url) <= {VERSION_TABLE}
    assert upgrade_database(db_url) == head_revision()


def test_tables_hold_every_field_of_the_records() -> None:
    # Plus the references to payloads stored apart (revision 0011).
    assert set(store_tables.runs.c.keys()) == set(Run.model_fields) | {"inputs_ref", "outputs_ref"}
    assert set(store_tables.documents.c.keys()) == set(Document.model_fields)
    assert set(store_tables.document_links.c.keys()) == set(DocumentLink.model_fields)


def test_migrations_ship_inside_the_package() -> None:
    migrations = resources.files("ragtrail.store") / "migrations"
    assert (migrations / "env.py").is_file()
    assert any(entry.name.endswith(".py") for entry in (migrations / "versions").iterdir())


def test_the_alembic_command_line_is_pointed_at_ragtrail() -> None:
    with pytest.raises(RuntimeError, match="ragtrail db upgrade"):
        command.upgrade(store_migrate._config(), "head")


def test_head_revision_constant_is_the_newest_migration() -> None:
    assert store_migrate.HEAD_REVISION == store_migrate._script().get_current_head() == head_revision()


_OPEN_AND_REPORT = """
import sys
from ragtrail import Trail
trail = Trail(sys.argv[1])
trail.close(5)
print("alembic" in sys.modules)
"""


def test_opening_a_current_database_does_not_import_alembic(db_url: str) -> None:
    def alembic_imported() -> bool:
        done = subprocess.run([sys.executable, "-c", _OPEN_AND_REPORT, db_url],
                              capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.strip().splitlines()[-1] == "True"

    assert alembic_imported()  # an empty database: Alembic creates the schema
    assert _version_rows(db_url) == [head_revision()]
    assert not alembic_imported()  # current: one query on the version table, no Alembic


def test_an_older_revision_is_still_seen_through_alembic(db_url: str) -> None:
    upgrade_database(db_url)
    with _connect(db_url) as conn:
        command.downgrade(store_migrate._config(conn), "0001")
    with pytest.raises(SchemaTooOldError, match="0001"):
        open_store(db_url, auto_upgrade=False)
    open_store(db_url, auto_upgrade=True).close()
    assert _version_rows(db_url) == [head_revision()]


def _index_sql(conn: sa.Connection, name: str) -> str:
    if conn.dialect.name == "postgresql":
        query = ("select indexdef from pg_indexes "
                 "where schemaname = current_schema() and indexname = :n")
    else:
        query = "select sql from sqlite_master where type = 'index' and name = :n"
    return str(conn.execute(sa.text(query), {"n": name}).scalar_one())


def _collation(conn: sa.Connection, table: str, column: str) -> str | None:
    found = conn.execute(sa.text(
        "select collation_name from information_schema.columns "
        "where table_schema = current_schema() and table_name = :t and column_name = :c"),
        {"t": table, "c": column}).scalar_one()
    return None if found is None else str(found)


def test_revision_0003_keeps_rows_and_makes_keys_byte_ordered_and_context_indexes_partial(
        db_url: str) -> None:
    from test_store import record

    from ragtrail.query import traces

    with open_store(db_url) as store:
        store.write_batch([record("r1", trace_id="r1")])
    with _connect(db_url) as conn:
        command.downgrade(store_migrate._config(conn), "0002")
    with _connect(db_url) as conn:
        assert "NOT NULL" not in _index_sql(conn, "ix_runs_user_hash")
        if conn.dialect.name == "postgresql":
            assert _collation(conn, "runs", "path") is None  # the database's own
    with open_store(db_url, auto_upgrade=True) as store:
        assert [t.trace_id for t in traces(store.engine)] == ["r1"]  # kept
        store.write_batch([record("r2", trace_id="r2")])  # the staging tables follow
        assert {t.trace_id for t in traces(store.engine)} == {"r1", "r2"}
    with _connect(db_url) as conn:
        for index, column in (("ix_runs_user_hash", "user_hash"),
                              ("ix_runs_session_id", "session_id"),
                              ("ix_runs_app_name_started_at", "app_name"),
                              ("ix_llm_calls_prompt_template_hash", "prompt_template_hash")):
            assert re.search(rf"WHERE \(?{column} IS NOT NULL", _index_sql(conn, index))
        if conn.dialect.name == "postgresql":
            for table, column in (("runs", "id"), ("runs", "path"),
                                  ("document_links", "content_hash"), ("llm_calls", "run_id")):
                assert _collation(conn, table, column) == "C", (table, column)
            assert _collation(conn, "runs", "name") is None  # free text keeps the database's


def test_a_filter_on_a_context_value_can_use_its_partial_index(db_url: str) -> None:
    # "column = value" implies "column IS NOT NULL": both planners know it.
    with open_store(db_url) as store, store.engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")
        for column in ("user_hash", "session_id", "app_name"):
            sql = f"SELECT id FROM runs WHERE {column} = 'x'"
            explain = f"EXPLAIN {sql}" if postgres else f"EXPLAIN QUERY PLAN {sql}"
            plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql(explain))
            assert f"ix_runs_{column}" in plan, plan


def test_revision_0004_drops_the_path_index_and_keeps_rows(db_url: str) -> None:
    from test_store import record

    from ragtrail.query import traces

    with open_store(db_url) as store:
        store.write_batch([record("p1", trace_id="p1")])
    with _connect(db_url) as conn:
        command.downgrade(store_migrate._config(conn), "0003")
    with _connect(db_url) as conn:
        assert "path" in _index_sql(conn, "ix_runs_path")
    with open_store(db_url, auto_upgrade=True) as store:
        assert [t.trace_id for t in traces(store.engine)] == ["p1"]
    with _connect(db_url) as conn, pytest.raises(sa.exc.NoResultFound):
        _index_sql(conn, "ix_runs_path")


def test_revision_0009_fills_the_promoted_llm_columns_from_the_stored_metadata(
        db_url: str) -> None:
    """Calls stored before 0009 get their report columns from their JSON: the quality
    and drift figures of an upgraded database are those of one written at head."""
    from test_store import record

    from ragtrail.query import quality
    from ragtrail.schemas import (
        LLMPerformanceMetrics,
        LLMRequestParameters,
        LLMResponseMetadata,
    )

    full = record("m1", trace_id="m1")
    assert full.llm is not None
    full.llm.response_metadata = LLMResponseMetadata(model_version="gpt-4o-mini-2024-07-18",
                                                     request_id="req_1", finish_reason="stop")
    full.llm.performance_metrics = LLMPerformanceMetrics(time_to_first_token_ms=12.5)
    full.llm.streamed = True
    full.llm.request_parameters = LLMRequestParameters(temperature=0.3, max_tokens=256)
    columns = [c for c, _, _ in LLM_PROMOTED]
    with open_store(db_url) as store:
        store.write_batch([full, record("m2", trace_id="m2")])
        before = quality(store.engine).model_dump()
    with _connect(db_url) as conn:
        command.downgrade(store_migrate._config(conn), "0007")
    with _connect(db_url) as conn:
        assert not set(columns) & {c["name"] for c in sa.inspect(conn).get_columns("llm_calls")}
    with open_store(db_url, auto_upgrade=True) as store, store.engine.connect() as conn:
        rows = {r.run_id: tuple(r)[1:] for r in conn.execute(sa.select(
            store_tables.llm_calls.c.run_id, *(store_tables.llm_calls.c[c] for c in columns)))}
        assert rows == {"m1": ("gpt-4o-mini-2024-07-18", "req_1", "stop", 12.5, True, 0.3, 256),
                        "m2": (None,) * len(columns)}
        assert quality(store.engine).model_dump() == before
        figure = quality(store.engine).groups[0].figure("llm_with_ttft")
        assert (figure.count, figure.denominator) == (1, 1)


def test_revision_0008_fills_the_usage_rollup_from_the_stored_calls(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal

    from test_usage_rollup import _records, calls_only

    from ragtrail.query import usage
    from ragtrail.testing.internals import query_usage

    call = {"model": "m", "provider": "p", "template": None, "cost": Decimal("0.25"),
            "tokens": 10, "minutes": 30, "app": None, "request_type": None}
    with open_store(db_url) as store:
        for index, judge in enumerate((None, "evaluation", None)):
            root, children = _records(index, {
                "root_stored": True, "app": "bot", "request_type": judge, "tenant": None,
                "session": "s1", "minutes": 0,
                "calls": [call, {**call, "cost": None, "minutes": 200}]})
            store.write_batch([*children, *([root] if index < 2 else [])])
    with _connect(db_url) as conn:
        command.downgrade(store_migrate._config(conn), "0007")
        assert "usage_rollup" not in sa.inspect(conn).get_table_names()
    upgrade_database(db_url)  # an old database: created and filled, then kept
    with open_store(db_url) as store:
        for keys in ((), ("day", "app_name"), ("request_type",)):
            for flags in ({}, {"include_evaluations": True}):
                rolled = usage(store.engine, group_by=keys, **flags)
                with monkeypatch.context() as patched:
                    patched.setattr(query_usage, "_plan", calls_only)
                    assert rolled == usage(store.engine, group_by=keys, **flags)
        [everything] = usage(store.engine, group_by=())
        assert (everything.calls, everything.unpriced_calls) == (4, 2)
        assert everything.total_cost == Decimal("0.5")


def test_revision_0010_fills_the_quality_summaries_from_the_stored_rows(db_url: str) -> None:
    from datetime import timedelta

    from quality_support import NOW, Window, store_windows

    from ragtrail.query import quality

    store_windows(db_url, Window(NOW - timedelta(hours=30), count=40, error_share=0.25),
                  Window(NOW, count=30, model="gpt-4o", streamed=True, seed=2))
    with _connect(db_url) as conn:
        command.downgrade(store_migrate._config(conn), "0009")
        assert "quality_rollup" not in sa.inspect(conn).get_table_names()
    upgrade_database(db_url)  # an old database: created and filled, then kept
    with open_store(db_url) as store, store.engine.connect() as conn:
        buckets = conn.execute(sa.text("SELECT count(*) FROM quality_rollup")).scalar_one()
        assert buckets > 0
        for keys in (("model", "template"), ("app_name",)):
            summed = quality(store.engine, group_by=keys)
            assert summed == quality(store.engine, group_by=keys, summaries=False)
        assert summed.groups[0].figure("llm_with_token_usage").denominator == 70
