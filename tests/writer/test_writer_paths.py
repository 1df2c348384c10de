"""Every path of the background writer, on ``ragtrail.testing.FakeStore``: stored,
retried, dead-lettered, spilled and replayed, closed, renewed after fork; and the
store's capability declaration, checked once when the writer is built. Each test
also checks the ledger's identity (offered = stored + dead-lettered + dropped + pending).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragtrail.schemas import CapturedRun
from ragtrail.sink import StoreCapabilities
from ragtrail.testing import FakeStore
from ragtrail.writer import BackgroundWriter, WriterConfig
from reliability._factory import make_record


def config(tmp_path: Path, **overrides: object) -> WriterConfig:
    values: dict[str, object] = {
        "spool_dir": tmp_path / "spool", "flush_interval_s": 0.01, "batch_max_events": 10,
        "max_queue_events": 1000, "retry_max_attempts": 3, "retry_initial_backoff_s": 0.001,
        "retry_max_backoff_s": 0.01, "shutdown_timeout_s": 5.0}
    values.update(overrides)
    return WriterConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def writers() -> Iterator[list[BackgroundWriter]]:
    made: list[BackgroundWriter] = []
    yield made
    for writer in made:
        writer.close(2.0)


@pytest.fixture
def start(tmp_path: Path, writers: list[BackgroundWriter]
          ) -> Callable[..., BackgroundWriter]:
    def build(store: object, **overrides: object) -> BackgroundWriter:
        writer = BackgroundWriter(store, config(tmp_path, **overrides))  # type: ignore[arg-type]
        writers.append(writer)
        return writer
    return build


def offer(writer: BackgroundWriter, count: int) -> list[CapturedRun]:
    records = [make_record("path") for _ in range(count)]
    assert all(writer.offer(record) for record in records)
    return records


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_success(start: Callable[..., BackgroundWriter]) -> None:
    store = FakeStore()
    writer = start(store)
    records = offer(writer, 25)
    assert writer.flush(10)
    stats = writer.stats()
    assert set(store.rows) == {r.id for r in records}
    assert (stats.stored, stats.retried, stats.spooled) == (25, 0, 0) and stats.balanced()


def test_transient_failures_are_retried(start: Callable[..., BackgroundWriter]) -> None:
    store = FakeStore()
    store.fail_next = 2  # within retry_max_attempts
    writer = start(store)
    records = offer(writer, 5)
    assert writer.flush(10)
    stats = writer.stats()
    assert set(store.rows) == {r.id for r in records}
    assert stats.retried == 2 and stats.spooled == 0 and stats.balanced()


def test_a_permanent_failure_dead_letters_the_record_alone(
        start: Callable[..., BackgroundWriter], tmp_path: Path) -> None:
    store = FakeStore()
    writer = start(store)
    records = [make_record("path") for _ in range(10)]
    store.poison.add(records[3].id)
    assert all(writer.offer(record) for record in records)
    assert writer.flush(10)
    stats = writer.stats()
    assert set(store.rows) == {r.id for r in records} - {records[3].id}
    assert (stats.stored, stats.dead_lettered) == (9, 1) and stats.balanced()
    lines = (tmp_path / "spool" / "dead-letter.jsonl").read_text().splitlines()
    assert [json.loads(line)["record"]["run"]["id"] for line in lines] == [records[3].id]


def test_an_outage_spills_to_the_spool_and_replays(
        start: Callable[..., BackgroundWriter]) -> None:
    store = FakeStore()
    store.down = True
    writer = start(store, max_queue_events=40)
    records = []
    for _ in range(8):  # more than the queue holds: the rest waits on disk
        records += offer(writer, 10)
        wait_until(lambda: writer.stats().queue_events <= 20)
    assert not writer.flush(0.05)
    down = writer.stats()
    assert down.spool_events > 0 and down.stored == 0 and down.balanced()
    store.down = False
    assert writer.flush(10)
    stats = writer.stats()
    assert set(store.rows) == {r.id for r in records}
    assert stats.replayed > 0 and stats.stored == 80 and stats.pending == 0 and stats.balanced()


def test_close_writes_what_is_pending_and_refuses_later_offers(
        start: Callable[..., BackgroundWriter]) -> None:
    store = FakeStore()
    writer = start(store)
    records = offer(writer, 7)
    assert writer.close(5)
    assert set(store.rows) == {r.id for r in records}
    assert not writer.offer(make_record("late"))
    stats = writer.stats()
    assert stats.dropped == {"closed": 1} and stats.balanced()
    assert not store.closed  # a store handed in stays the caller's to close
    built = FakeStore()
    owner = start(lambda: built)
    offer(owner, 3)
    assert owner.close(5) and built.closed and len(built.rows) == 3  # built here: closed here


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_resets_the_store_and_writes_with_a_writer_of_its_own(
        start: Callable[..., BackgroundWriter]) -> None:
    store = FakeStore()
    writer = start(store)
    offer(writer, 3)
    assert writer.flush(10)
    pid = os.fork()
    if pid == 0:  # the child: a fresh, empty writer on the reset store
        ok = False
        try:
            child_records = offer(writer, 4)
            ok = (writer.flush(10) and store.resets == 1 and writer.stats().offered == 4
                  and {r.id for r in child_records} <= set(store.rows))
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.resets == 0 and len(store.rows) == 3 and writer.stats().balanced()


def test_the_declaration_is_checked_when_the_writer_is_built(tmp_path: Path) -> None:
    class Undeclared(FakeStore):
        capabilities = {"flat_records": True}  # type: ignore[assignment]

    with pytest.raises(TypeError, match="StoreCapabilities"):
        BackgroundWriter(Undeclared(), config(tmp_path))


def test_a_store_declaring_nothing_gets_validated_records_only(
        start: Callable[..., BackgroundWriter]) -> None:
    class Plain(FakeStore):
        capabilities = StoreCapabilities()

    store = Plain()
    store.down = True
    writer = start(store, max_queue_events=40)
    for _ in range(4):
        offer(writer, 10)
        wait_until(lambda: writer.stats().queue_events <= 20)
    wait_until(lambda: writer.stats().spool_events > 0)
    store.down = False
    assert writer.flush(10)
    assert len(store.rows) == 40
    assert all(isinstance(record, CapturedRun) for record in store.rows.values())
