"""Spooled records replay into the SQL store as JSON data, stored exactly like fresh ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_writer import spool_files, wait_until

from ragtrail.schemas import CapturedRun, RunError, RunStatus
from ragtrail.schemas.flat import RUN_FIELDS, FlatRecord, flatten, read_record
from ragtrail.schemas.record import SerializedRecord
from ragtrail.sink import PermanentStoreError, PreparedBatch
from ragtrail.store import SqlStore, open_store
from ragtrail.testing.internals import PreparedRows, store_tables
from ragtrail.writer import BackgroundWriter, WriterConfig
from reliability._factory import make_record
from reliability._stores import FaultyStore


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = open_store(db_url)
    yield opened
    opened.close()


def table_rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table as the database returns it, in key order."""
    out = {}
    with store.engine.connect() as conn:
        for table in store_tables.metadata.sorted_tables:
            keys = list(table.primary_key.columns)
            out[table.name] = [tuple(row) for row in conn.execute(
                sa.select(table).order_by(*keys))]
    return out


def odd_records() -> list[CapturedRun]:
    """Records with what a replay must keep: NaN, NUL, non-ASCII, None JSON, an error."""
    records = [make_record("spool", approx=False) for _ in range(6)]
    records[0].run.inputs = {"q": "caf\u00e9 \u2603", "nul": "a\x00b", "n": [1, 2.5]}
    records[1].run.outputs = None
    records[1].run.duration_ms = float("nan")
    records[2].run.status = RunStatus.ERROR
    records[2].run.error = RunError(type="ValueError", message="boom")
    records[3].documents[0].metadata = {"page": 3, "title": "\u00fcber"}
    records[4].links[0].score = None
    # What COPY's text format must escape, and what looks like its markers.
    records[5].run.name = "tab\there\nnew\r\\line \\N \\."
    records[5].run.inputs = {"q": "a\tb\nc\\d", "raw": "\\N"}
    records[5].documents[0].content = "line one\nline\ttwo \\ end"
    return records


def empty_tables(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        for table in reversed(store_tables.metadata.sorted_tables):
            if table.name != "vendors":  # the catalog the migration seeds, not records
                conn.execute(table.delete())


def test_a_spooled_record_is_stored_like_the_record_itself(db_url: str, tmp_path: Path) -> None:
    records = odd_records()
    direct = open_store(db_url)
    direct.write_batch(records)
    expected = table_rows(direct)
    direct.close()

    other = tmp_path / "other.db"
    replayed = open_store(f"sqlite:///{other}") if db_url.startswith("sqlite") else None
    if replayed is None:  # PostgreSQL: empty the tables and write again from JSON
        replayed = open_store(db_url)
        empty_tables(replayed)
    # Today's spool lines are flat; an older version's were the plain JSON.
    flat = [read_record(flatten(r).to_json()) for r in records]
    assert all(isinstance(line, FlatRecord) for line in flat)
    replayed.write_batch(flat)
    assert table_rows(replayed) == expected
    empty_tables(replayed)
    plain = [read_record(r.model_dump_json()) for r in records]
    assert all(isinstance(line, SerializedRecord) for line in plain)
    replayed.write_batch(plain)
    assert table_rows(replayed) == expected
    # Prepared ahead (rows encoded, PostgreSQL's COPY data built apart from the
    # connection), as the writer does while the previous batch is being written.
    empty_tables(replayed)
    prepared = replayed.prepare_batch(flat)
    assert isinstance(prepared, PreparedBatch) and list(prepared.records) == flat
    assert isinstance(prepared.payload, PreparedRows)
    assert bool(prepared.payload.encoded.copy_data) == (replayed.dialect == "postgresql")
    replayed.write_prepared(prepared)
    assert table_rows(replayed) == expected
    replayed.close()


def test_a_batch_prepared_in_parts_hands_the_interpreter_over_and_stores_the_same(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer prepares the next batch on a helper thread while its own thread waits
    # on the server; the helper hands the interpreter over between parts, so the
    # writer thread is not kept waiting when the server answers. Writing never does.
    from ragtrail.testing.internals import store_pipeline

    handovers: list[str] = []
    monkeypatch.setattr(store_pipeline, "_hand_over", lambda: handovers.append("x"))
    records = [make_record("parts", approx=False)
               for _ in range(3 * store_pipeline._PREPARE_CHUNK + 5)]
    store = open_store(db_url)
    try:
        store.write_batch(records)
        assert handovers == []
        expected = table_rows(store)
        empty_tables(store)
        prepared = store.prepare_batch(records)
        assert isinstance(prepared.payload, PreparedRows)
        assert len(handovers) >= 4  # four parts of records (and COPY rows on PostgreSQL)
        assert len(prepared.payload.encoded.rows["runs"]) == len(records)
        store.write_prepared(prepared)
        assert table_rows(store) == expected
    finally:
        store.close()


def test_json_none_is_sql_null(store: SqlStore) -> None:
    record = make_record("nulls")
    record.run.error = None
    record.run.outputs = None
    store.write_batch([record])
    with store.engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT error IS NULL, outputs IS NULL, inputs IS NULL FROM runs")).one()
    assert tuple(row) == (True, True, False)


def test_a_json_line_that_is_not_a_record_is_refused_as_permanent(store: SqlStore) -> None:
    data = json.loads(make_record("bad").model_dump_json())
    del data["run"]["trace_id"]
    with pytest.raises(PermanentStoreError, match="trace_id"):
        store.write_batch([SerializedRecord(data)])
    flat = json.loads(flatten(make_record("bad")).to_json())
    flat[1][RUN_FIELDS.index("started_at")] = "not a time"
    with pytest.raises(PermanentStoreError, match="not a time"):
        store.write_batch([FlatRecord.from_data(flat)])


def test_an_older_schema_line_is_validated_not_passed_through() -> None:
    data = json.loads(make_record("old").model_dump_json())
    current = SerializedRecord.parse(json.dumps(data))
    assert isinstance(current, SerializedRecord) and current.id == data["run"]["id"]
    data["schema_version"] = "2.9"
    older = SerializedRecord.parse(json.dumps(data))
    assert isinstance(older, CapturedRun) and older.id == data["run"]["id"]
    data["run"]["started_at"] = "yesterday"
    with pytest.raises(ValueError, match="started_at"):
        SerializedRecord.parse(json.dumps(data))
    with pytest.raises(ValueError):
        SerializedRecord.parse(b'{"torn": ')


def test_outage_replays_from_the_spool_into_sql_as_json(db_url: str, tmp_path: Path) -> None:
    store = FaultyStore(open_store(db_url))
    seen: list[type] = []
    inner_write = store.inner.write_batch

    def spy(records: Any) -> None:
        seen.extend({type(r) for r in records})
        inner_write(records)

    inner_prepared = store.inner.write_prepared

    def spy_prepared(batch: PreparedBatch) -> None:  # PostgreSQL: replayed batches come prepared
        seen.extend({type(r) for r in batch.records})
        inner_prepared(batch)

    store.inner.write_batch = spy  # type: ignore[method-assign]
    store.inner.write_prepared = spy_prepared  # type: ignore[method-assign]
    config = WriterConfig(spool_dir=tmp_path / "spool", max_queue_events=200,
                          batch_max_events=50, flush_interval_s=0.05,
                          retry_max_attempts=2, retry_initial_backoff_s=0.01,
                          retry_max_backoff_s=0.05)
    writer = BackgroundWriter(store, config)
    try:
        store.down = True
        records = odd_records() + [make_record("spool") for _ in range(600)]
        for record in records:
            assert writer.offer(record)
            if writer.stats().queue_events >= 180:
                wait_until(lambda: writer.stats().queue_events < 180)
        assert writer.stats().spooled > 0
        store.down = False
        assert writer.flush(30)
        stats = writer.stats()
        assert stats.replayed == stats.spooled and stats.stored == len(records)
        assert stats.balanced()
    finally:
        writer.close(5)
    assert FlatRecord in seen and CapturedRun in seen
    assert spool_files(config.resolved_spool_dir("default")) == []
    check = open_store(db_url)
    with check.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == len(records)
    check.close()


@pytest.mark.postgres
def test_postgres_without_the_temp_privilege_writes_without_copy(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragtrail.testing.internals import sql_store, store_bulk

    store = open_store(pg_url)
    with store.engine.connect() as conn:
        assert store_bulk.can_stage(conn)  # the local server grants TEMP to everyone
    copies: list[str] = []
    real_copy = store_bulk._insert_postgresql
    monkeypatch.setattr(store_bulk, "_insert_postgresql",
                        lambda conn, enc: (copies.append("copy"), real_copy(conn, enc)))
    monkeypatch.setattr(sql_store, "can_stage", lambda conn: False)
    records = odd_records()
    store.write_batch(records)
    store.write_batch(records)  # idempotent on this path too
    assert copies == []
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == len(records)
        assert conn.execute(sa.text("SELECT count(*) FROM document_links")).scalar_one() == sum(
            len(r.links) for r in records)
    expected = table_rows(store)
    store.close()
    # The same rows as through COPY.
    with_copy = open_store(pg_url)
    empty_tables(with_copy)
    monkeypatch.setattr(sql_store, "can_stage", store_bulk.can_stage)
    with_copy.write_batch(records)
    assert copies == ["copy"]
    assert table_rows(with_copy) == expected
    with_copy.close()
