"""The background writer against in-memory and deliberately failing stores.

Behaviour only: every test reads the outcome through the writer's public API, the
store's contents, the spool directory or the dead-letter file. Timing promises are
in ``tests/reliability``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ragtrail.errors import ConfigError
from ragtrail.schemas import CapturedRun
from ragtrail.schemas.flat import flatten
from ragtrail.sink import Sink, TransientStoreError
from ragtrail.testing.internals import Spiller, Spool
from ragtrail.writer import (
    BackgroundWriter,
    DropReason,
    WriterConfig,
    WriterStats,
    default_spool_dir,
)
from reliability._factory import make_record
from reliability._stores import FaultyStore, FileStore, MemoryStore, ids_in

HERE = Path(__file__).resolve().parents[1]
MakeWriter = Callable[..., BackgroundWriter]


def fast_config(tmp_path: Path, **overrides: object) -> WriterConfig:
    """Small limits and short waits so failure paths run in milliseconds."""
    values: dict[str, object] = {
        "spool_dir": tmp_path / "spool",
        "flush_interval_s": 0.02,
        "batch_max_events": 50,
        "retry_max_attempts": 3,
        "retry_initial_backoff_s": 0.001,
        "retry_max_backoff_s": 0.01,
        "shutdown_timeout_s": 5.0,
    }
    values.update(overrides)
    return WriterConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def writers() -> Iterator[list[BackgroundWriter]]:
    """Writers a test creates; closed at the end even if the test fails."""
    created: list[BackgroundWriter] = []
    yield created
    for writer in created:
        writer.close(1.0)


@pytest.fixture
def make_writer(writers: list[BackgroundWriter]) -> MakeWriter:
    def build(store: object, config: WriterConfig, **kwargs: object) -> BackgroundWriter:
        writer = BackgroundWriter(store, config, **kwargs)  # type: ignore[arg-type]
        writers.append(writer)
        return writer
    return build


def down_store() -> tuple[MemoryStore, FaultyStore]:
    """An in-memory store behind a fault injector that is down until told otherwise."""
    inner = MemoryStore()
    store = FaultyStore(inner)
    store.down = True
    return inner, store


def offer_all(writer: BackgroundWriter, count: int, prefix: str = "run") -> list[CapturedRun]:
    records = [make_record(prefix) for _ in range(count)]
    results = [writer.offer(record) for record in records]
    assert all(results)
    return records


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Wait for what must happen; the timeout is a hang guard, never a pass criterion."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def spool_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl")) if root.exists() else []


def spool_ids(root: Path) -> list[str]:
    """Record ids on the spool in replay order (segments by number, lines in order)."""
    return [i for path in spool_files(root) for i in spool_ids_in(path)]


def spool_ids_in(path: Path) -> list[str]:
    """Record ids in one spool segment file, in order."""
    ids = []
    for line in path.read_bytes().splitlines(keepends=True):
        if line.endswith(b"\n"):
            data = json.loads(line.partition(b" ")[2])
            # A flat record ([form, run row, ...]; the run id first) or plain JSON.
            ids.append(data[1][0] if isinstance(data, list) else data["run"]["id"])
    return ids


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_queue_events", 0),
        ("max_queue_events", -5),
        ("max_queue_events", 1.5),
        ("max_queue_events", True),
        ("max_queue_bytes", 0),
        ("batch_max_events", 0),
        ("flush_interval_s", 0),
        ("flush_interval_s", float("nan")),
        ("flush_interval_s", float("inf")),
        ("flush_interval_s", "1"),
        ("spool_max_bytes", -1),
        ("retry_max_attempts", 0),
        ("retry_initial_backoff_s", -0.1),
        ("shutdown_timeout_s", 0),
        ("drop_log_interval_s", 0),
        ("spill_high_water_fraction", 0),
        ("spill_high_water_fraction", 1.5),
        ("spool_dir", 42),
        ("dead_letter_path", 3.0),
    ],
)
def test_config_rejects_invalid_limits(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        WriterConfig(**{field: value})  # type: ignore[arg-type]


def test_config_rejects_inconsistent_limits() -> None:
    with pytest.raises(ConfigError, match="batch_max_events"):
        WriterConfig(max_queue_events=10, batch_max_events=11)
    with pytest.raises(ConfigError, match="retry_initial_backoff_s"):
        WriterConfig(retry_initial_backoff_s=5, retry_max_backoff_s=1)


def test_config_defaults_are_valid_and_frozen() -> None:
    config = WriterConfig()
    assert config.max_queue_events == 100_000
    assert config.spool_enabled
    with pytest.raises(AttributeError):
        config.max_queue_events = 1  # type: ignore[misc]
    assert WriterConfig(spool_max_bytes=0).spool_enabled is False


def test_default_spool_dir_hides_the_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    url = "postgresql://app:s3cret@db.internal/audit"
    path = default_spool_dir(url)
    assert path.parent == tmp_path / "ragtrail" / "spool"
    assert "s3cret" not in str(path) and "db.internal" not in str(path)
    assert default_spool_dir(url) == path != default_spool_dir(url + "2")
    assert WriterConfig().resolved_spool_dir(url) == path
    assert WriterConfig().resolved_dead_letter_path(url) == path / "dead-letter.jsonl"


# --- the happy path ---------------------------------------------------------------------


def test_offered_records_are_stored_in_order(tmp_path: Path, make_writer: MakeWriter) -> None:
    store = MemoryStore()
    writer = make_writer(store, fast_config(tmp_path))
    records = offer_all(writer, 230)
    assert writer.flush(10)
    assert store.order == [r.id for r in records]
    stats = writer.stats()
    assert (stats.offered, stats.stored, stats.pending, stats.dropped_total) == (230, 230, 0, 0)
    assert stats.balanced()
    assert stats.last_success_at is not None and stats.last_error is None
    assert isinstance(writer, Sink)


def test_flush_covers_only_what_was_offered_before_it(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    store = MemoryStore()
    writer = make_writer(store, fast_config(tmp_path, flush_interval_s=3600))
    first = offer_all(writer, 7)
    assert writer.flush(10)  # without flush, a 1-hour interval would hold them
    assert set(store.rows) == {r.id for r in first}
    assert writer.flush(1)  # nothing new: immediately true


def test_writes_happen_on_the_writer_thread_only(tmp_path: Path, make_writer: MakeWriter) -> None:
    import threading

    store = MemoryStore()
    writer = make_writer(store, fast_config(tmp_path))
    offer_all(writer, 120)
    assert writer.flush(10)
    assert store.threads and threading.get_ident() not in store.threads


def test_stats_as_dict_is_the_sink_form(tmp_path: Path, make_writer: MakeWriter) -> None:
    writer = make_writer(MemoryStore(), fast_config(tmp_path))
    offer_all(writer, 3)
    assert writer.flush(10)
    stats = writer.stats()
    assert isinstance(stats, WriterStats)
    as_dict = stats.as_dict()
    assert as_dict["offered"] == as_dict["stored"] == 3
    assert as_dict["dropped"] == {} and as_dict["pending"] == 0
    json.dumps(as_dict)  # plain JSON types only


def test_a_store_handed_in_stays_open_for_its_owner(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    store = MemoryStore()
    writer = make_writer(store, fast_config(tmp_path))
    offer_all(writer, 3)
    assert writer.close(10) is True
    assert not store.closed and len(store.rows) == 3


def test_store_factory_runs_on_the_writer_thread_and_failures_are_retried(
    tmp_path: Path, make_writer: Callable[..., BackgroundWriter]
) -> None:
    store = MemoryStore()
    calls: list[int] = []

    def factory() -> MemoryStore:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("database not reachable yet")
        return store

    writer = make_writer(factory, fast_config(tmp_path))
    records = offer_all(writer, 10)
    assert writer.flush(10)
    assert store.order == [r.id for r in records]
    assert len(calls) == 3
    assert writer.stats().retried >= 2


# --- refusals and bounds --------------------------------------------------------------------


def test_offer_never_raises_and_counts_what_it_refuses(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    writer = make_writer(MemoryStore(), fast_config(tmp_path))
    assert writer.offer(None) is False  # type: ignore[arg-type]
    assert writer.offer("not a record") is False  # type: ignore[arg-type]
    stats = writer.stats()
    assert stats.offered == 2 and stats.dropped == {DropReason.INVALID.value: 2}
    assert stats.balanced()


def test_queue_bound_in_records_refuses_and_counts_exactly(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    store = FaultyStore(MemoryStore())
    store.hang.clear()  # the first batch hangs inside the store
    config = fast_config(tmp_path, max_queue_events=20, batch_max_events=5, spool_max_bytes=0)
    writer = make_writer(store, config)
    results = [writer.offer(make_record()) for _ in range(60)]
    refused = results.count(False)
    assert refused == 40  # 20 fit (the hung batch included), the rest are refused
    stats = writer.stats()
    assert stats.dropped == {DropReason.QUEUE_FULL.value: refused}
    assert stats.queue_events == 20 and stats.balanced()
    store.hang.set()
    assert writer.flush(10)
    assert len(store.inner.rows) == 20  # type: ignore[attr-defined]
    assert writer.stats().balanced()


def test_queue_bound_in_bytes_uses_the_record_size(tmp_path: Path, make_writer: MakeWriter) -> None:
    store = FaultyStore(MemoryStore())
    store.hang.clear()
    size = make_record().approx_bytes
    config = fast_config(tmp_path, max_queue_bytes=size * 10, batch_max_events=2, spool_max_bytes=0)
    writer = make_writer(store, config)
    results = [writer.offer(make_record()) for _ in range(25)]
    assert results.count(True) == 10
    assert writer.stats().queue_bytes == size * 10
    big = make_record()
    big._approx_bytes = size * 11
    assert writer.offer(big) is False
    assert writer.stats().dropped[DropReason.TOO_LARGE.value] == 1
    store.hang.set()
    assert writer.flush(10)


def test_record_without_a_size_gets_an_estimate(tmp_path: Path, make_writer: MakeWriter) -> None:
    store = FaultyStore(MemoryStore())
    store.hang.clear()
    writer = make_writer(store, fast_config(tmp_path))
    writer.offer(make_record(approx=False))
    assert writer.stats().queue_bytes > 1000
    store.hang.set()
    assert writer.flush(10)


def test_offers_after_close_are_refused_and_counted(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    store = MemoryStore()
    writer = make_writer(lambda: store, fast_config(tmp_path))
    offer_all(writer, 5)
    assert writer.close(10) is True
    assert store.closed  # built by the factory: the writer closes it
    assert writer.offer(make_record()) is False
    stats = writer.stats()
    assert stats.stored == 5 and stats.dropped == {DropReason.CLOSED.value: 1}
    assert stats.balanced()
    assert writer.close(1) is True  # again: still true, no error


# --- retries, ambiguous commits, poison records ---------------------------------------------


def test_transient_failures_are_retried_until_stored(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    inner, store = down_store()
    writer = make_writer(store, fast_config(tmp_path, retry_max_attempts=10))
    records = offer_all(writer, 30)
    wait_until(lambda: store.attempts >= 2)
    store.down = False
    assert writer.flush(10)
    assert inner.order == [r.id for r in records]
    stats = writer.stats()
    assert stats.stored == 30 and stats.retried >= 2
    assert "store down" in (stats.last_error or "")


def test_ambiguous_commit_is_counted_once(tmp_path: Path, make_writer: MakeWriter) -> None:
    inner = MemoryStore()
    store = FaultyStore(inner)
    store.ambiguous = 2  # the next two writes commit, then report a lost connection
    writer = make_writer(store, fast_config(tmp_path))
    records = offer_all(writer, 40)
    assert writer.flush(10)
    stats = writer.stats()
    assert (stats.stored, stats.retried) == (40, 2)
    assert set(inner.rows) == {r.id for r in records}
    assert max(inner.commits.values()) >= 2  # committed more than once, counted once


def test_poison_records_are_isolated_and_dead_lettered(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    inner = MemoryStore()
    store = FaultyStore(inner)
    records = [make_record() for _ in range(50)]
    poison = {records[3].id, records[4].id, records[41].id}
    store.poison = poison
    dead_path = tmp_path / "dead.jsonl"
    writer = make_writer(store, fast_config(tmp_path, dead_letter_path=dead_path))
    assert all(writer.offer(r) for r in records)
    assert writer.flush(10)
    assert inner.order == [r.id for r in records if r.id not in poison]
    stats = writer.stats()
    assert (stats.stored, stats.dead_lettered) == (47, 3) and stats.balanced()
    lines = [json.loads(line) for line in dead_path.read_text().splitlines()]
    assert {line["record"]["run"]["id"] for line in lines} == poison
    assert all("poison record" in line["error"] for line in lines)
    restored = CapturedRun.model_validate(lines[0]["record"])
    assert restored.id in poison


def test_an_unexpected_store_exception_dead_letters_only_the_record_at_fault(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    class BrokenStore(MemoryStore):
        def write_batch(self, records):  # type: ignore[no-untyped-def]
            if any(r.id.startswith("bad") for r in records):
                raise KeyError("a bug in the store")
            super().write_batch(records)

    store = BrokenStore()
    writer = make_writer(store, fast_config(tmp_path))
    offer_all(writer, 5)
    offer_all(writer, 1, prefix="bad")
    offer_all(writer, 5)
    assert writer.flush(10)
    stats = writer.stats()
    assert (stats.stored, stats.dead_lettered) == (10, 1) and stats.balanced()
    assert "KeyError" in (stats.last_error or "")


def _warning_made_an_error() -> Exception:
    """What ``python -W error`` turns a library's deprecation inside a write into."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            warnings.warn("this call is deprecated", DeprecationWarning, stacklevel=1)
        except DeprecationWarning as exc:
            return exc
    raise AssertionError("the warning was not turned into an error")


@pytest.mark.parametrize("error", [lambda: RuntimeError("a bug in a driver"),
                                   _warning_made_an_error],
                         ids=["RuntimeError", "DeprecationWarning-as-error"])
def test_a_store_that_always_raises_unexpectedly_loses_nothing(
    tmp_path: Path, make_writer: MakeWriter, error: Callable[[], Exception]
) -> None:
    # Retried, then spooled, then (from the spool, retried again) dead-lettered with its
    # error; every record is counted once, and flush() sees them all settled.
    inner = MemoryStore()
    store = FaultyStore(inner)
    store.unexpected, store.unexpected_error = 10**9, error
    dead_path = tmp_path / "dead.jsonl"
    config = fast_config(tmp_path, dead_letter_path=dead_path)
    writer = make_writer(store, config)
    records = offer_all(writer, 30)
    assert writer.flush(30), writer.stats()
    stats = writer.stats()
    assert stats.balanced(), stats
    assert (stats.stored, stats.spooled, stats.dead_lettered, stats.pending) == (0, 30, 30, 0)
    assert stats.retried >= 2 * config.retry_max_attempts  # in memory, then from the spool
    lines = [json.loads(line) for line in dead_path.read_text().splitlines()]
    assert sorted(line["record"]["run"]["id"] for line in lines) == sorted(r.id for r in records)
    name = type(error()).__name__
    assert all(line["error"].startswith(f"UnexpectedError: {name}: ") for line in lines)
    assert inner.rows == {}


@pytest.mark.parametrize("failures", [2, 4], ids=["within-retries", "past-retries"])
def test_an_unexpected_exception_that_passes_is_retried_or_replayed(
    tmp_path: Path, make_writer: MakeWriter, failures: int
) -> None:
    # 2 failures: the retries store the batch. 4 (past 3 attempts): spooled, replayed.
    inner = MemoryStore()
    store = FaultyStore(inner)
    store.unexpected = failures
    writer = make_writer(store, fast_config(tmp_path))
    records = offer_all(writer, 20)
    assert writer.flush(10), writer.stats()
    stats = writer.stats()
    assert stats.balanced() and stats.dead_lettered == 0 and stats.retried == failures
    assert (stats.spooled, stats.replayed) == ((0, 0) if failures == 2 else (20, 20))
    assert sorted(inner.rows) == sorted(r.id for r in records)
    assert max(inner.commits.values()) == 1


def test_without_a_spool_an_unexpected_failure_is_dead_lettered_not_lost(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    store = FaultyStore(MemoryStore())
    store.unexpected = 10**9
    writer = make_writer(store, fast_config(tmp_path, spool_max_bytes=0))
    offer_all(writer, 12)
    assert writer.flush(30), writer.stats()
    stats = writer.stats()
    assert stats.balanced() and (stats.dead_lettered, stats.spooled) == (12, 0), stats


def test_a_failure_around_the_delivery_keeps_the_batch(
    tmp_path: Path, make_writer: MakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug in the writer's own code once a batch has left the queue: the batch waits
    # on the spool and is stored, not lost.
    from ragtrail.testing.internals import WriterLoop

    original = WriterLoop._probe_wait
    calls = []

    def broken_once(self: WriterLoop) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the writer")
        original(self)

    monkeypatch.setattr(WriterLoop, "_probe_wait", broken_once)
    inner = MemoryStore()
    writer = make_writer(inner, fast_config(tmp_path))
    records = offer_all(writer, 10)
    assert writer.flush(10), writer.stats()
    stats = writer.stats()
    assert stats.balanced() and stats.stored == 10 and stats.spooled == 10
    assert "a bug in the writer" in (stats.last_error or "")
    assert sorted(inner.rows) == sorted(r.id for r in records)


class _RaisingHandler(logging.Handler):
    """An application's handler that raises instead of calling handleError."""

    def emit(self, record: logging.LogRecord) -> None:
        raise OSError("the log server is gone")


class _RaisingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        raise ValueError("a broken filter")


@pytest.mark.parametrize("attach", ["handler", "filter"])
def test_logging_that_raises_costs_no_record(
    tmp_path: Path, make_writer: MakeWriter, monkeypatch: pytest.MonkeyPatch, attach: str
) -> None:
    # Every path that logs: an outage, poison records, unexpected errors, drops.
    monkeypatch.setattr(logging, "raiseExceptions", True)
    target = logging.getLogger("ragtrail")
    extra: logging.Handler | logging.Filter = (
        _RaisingHandler() if attach == "handler" else _RaisingFilter())
    monkeypatch.setattr(target, "level", logging.DEBUG)
    if isinstance(extra, logging.Handler):
        target.addHandler(extra)
    else:
        handler = logging.StreamHandler(io.StringIO())  # (a NullHandler never filters)
        handler.addFilter(extra)
        target.addHandler(handler)
        extra = handler
    try:
        inner, store = down_store()
        records = [make_record() for _ in range(40)]
        store.poison = {records[5].id}
        dead_path = tmp_path / "dead.jsonl"
        writer = make_writer(store, fast_config(tmp_path, dead_letter_path=dead_path,
                                                drop_log_interval_s=0.001))
        assert all(writer.offer(r) for r in records[:20])
        wait_until(lambda: writer.stats().spooled > 0)
        store.down = False
        store.unexpected = 4
        assert all(writer.offer(r) for r in records[20:])
        assert writer.flush(20), writer.stats()
        stats = writer.stats()
    finally:
        target.removeHandler(extra)  # type: ignore[arg-type]
    assert stats.balanced() and (stats.stored, stats.dead_lettered) == (39, 1), stats
    assert sorted(inner.rows) == sorted(r.id for r in records if r.id not in store.poison)


# --- the spool -----------------------------------------------------------------------------


@pytest.mark.parametrize("read_ahead", [False, True], ids=["in-process", "server"])
def test_outage_spills_to_disk_and_replays_in_order(
    tmp_path: Path, make_writer: MakeWriter, monkeypatch: pytest.MonkeyPatch, read_ahead: bool
) -> None:
    inner, store = down_store()
    # A server's client (PostgreSQL) has the next spooled batch read while one is stored.
    store.prepares_ahead = read_ahead
    readers: list[str] = []
    plain_read = Spool.read

    def read(self: Spool, *args: Any, **kwargs: Any) -> Any:
        readers.append(threading.current_thread().name)
        return plain_read(self, *args, **kwargs)

    monkeypatch.setattr(Spool, "read", read)
    config = fast_config(tmp_path, max_queue_events=100, batch_max_events=10)
    writer = make_writer(store, config)
    records = [make_record() for _ in range(400)]
    for record in records:
        assert writer.offer(record)
        if writer.stats().queue_events >= 90:  # let the writer thread spill
            wait_until(lambda: writer.stats().queue_events < 90)
    stats = writer.stats()
    assert stats.spooled > 0 and stats.spool_events > 0 and stats.dropped_total == 0
    # The spool replays in the order records entered it. That is offer order, except
    # for a batch that failed in flight while newer records were spilled behind it: it
    # enters the spool after them. Records still in memory at recovery are written in
    # between (live traffic first), so only the spool's own order is checked.
    spooled = spool_ids(config.resolved_spool_dir("default"))
    assert spooled and set(spooled) <= {r.id for r in records}
    store.down = False
    assert writer.flush(20)
    assert [i for i in inner.order if i in set(spooled)] == spooled
    assert sorted(inner.order) == sorted(r.id for r in records)
    stats = writer.stats()
    assert stats.replayed == stats.spooled and stats.spool_events == 0 and stats.spool_bytes == 0
    assert stats.balanced()
    assert spool_files(config.resolved_spool_dir("default")) == []
    ahead = [name for name in readers if name.startswith("ragtrail-read-ahead")]
    assert bool(ahead) == read_ahead, readers


def test_after_an_outage_fresh_records_go_first_and_flush_waits_for_all(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    inner, store = down_store()
    config = fast_config(tmp_path, max_queue_events=40, batch_max_events=10)
    writer = make_writer(store, config)
    older = offer_all(writer, 30, prefix="older")  # past high water (20): spilled
    wait_until(lambda: writer.stats().spool_events == 30)
    newer = offer_all(writer, 9, prefix="newer")  # below high water: stays in memory
    store.slow, store.slow_s = {r.id for r in older}, 0.2  # replaying the spool is slow
    store.down = False
    assert writer.flush(20)  # true only once the older records are stored too
    assert set(inner.rows) == {r.id for r in older + newer}
    # The first spool batch proves the store is back; then the fresh batch goes first,
    # and the rest of the spool follows in its order.
    assert inner.order == [r.id for r in older[:10] + newer + older[10:]]
    assert writer.stats().balanced()


def test_full_spool_refuses_with_its_own_reason(tmp_path: Path, make_writer: MakeWriter) -> None:
    _, store = down_store()
    size = len(make_record().model_dump_json()) + 20
    config = fast_config(tmp_path, max_queue_events=20, batch_max_events=5,
                         spool_max_bytes=size * 30, spool_segment_max_bytes=size * 8)
    writer = make_writer(store, config)
    results = []
    deadline = time.monotonic() + 60  # a hang guard
    # Keep offering until the queue is full while the spool is full too.
    while not writer.stats().dropped.get(DropReason.SPOOL_FULL.value):
        assert time.monotonic() < deadline, writer.stats()
        results.append(writer.offer(make_record()))
        time.sleep(0.0005)
    stats = writer.stats()
    assert stats.dropped_total == results.count(False)
    on_disk = sum(p.stat().st_size for p in spool_files(config.resolved_spool_dir("default")))
    assert on_disk <= config.spool_max_bytes and stats.spool_bytes == on_disk
    assert stats.balanced()


def test_close_with_store_down_leaves_the_spool_for_the_next_writer(tmp_path: Path) -> None:
    _, store = down_store()
    config = fast_config(tmp_path)
    first = BackgroundWriter(store, config)
    records = offer_all(first, 120)
    assert first.close(5) is False  # could not store: spooled instead
    stats = first.stats()
    assert stats.spool_events == 120 and stats.stored == 0 and stats.balanced()

    second_store = MemoryStore()
    second = BackgroundWriter(second_store, config)
    try:
        wait_until(lambda: second.stats().stored == 120)
        assert second_store.order == [r.id for r in records]
        stats = second.stats()
        assert stats.recovered == 120 and stats.replayed == 120 and stats.balanced()
    finally:
        assert second.close(5)
    assert spool_files(config.resolved_spool_dir("default")) == []


def test_a_live_writers_spool_is_not_adopted(tmp_path: Path, make_writer: MakeWriter) -> None:
    _, store = down_store()
    config = fast_config(tmp_path, max_queue_events=40, batch_max_events=10)
    owner = make_writer(store, config)
    offer_all(owner, 35)
    wait_until(lambda: owner.stats().spool_events > 0)
    other_store = MemoryStore()
    other = make_writer(other_store, config)
    offer_all(other, 3, prefix="other")
    assert other.flush(10)
    assert other.stats().recovered == 0 and len(other_store.rows) == 3


def test_damaged_spool_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    _, store = down_store()
    config = fast_config(tmp_path)
    first = BackgroundWriter(store, config)
    records = offer_all(first, 10)
    first.close(5)
    (segment,) = spool_files(config.resolved_spool_dir("default"))
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"this is": "not a record"}\n'
    segment.write_bytes(b"".join(lines) + b'{"torn": ')  # and a half line from a crash

    second_store = MemoryStore()
    second = BackgroundWriter(second_store, config)
    try:
        wait_until(lambda: second.stats().spool_events == 0 and second.stats().recovered > 0)
        stats = second.stats()
        assert stats.dropped == {DropReason.SPOOL_CORRUPT.value: 1}
        assert second_store.order == [r.id for i, r in enumerate(records) if i != 2]
        assert stats.balanced()
    finally:
        second.close(5)


# --- logging, exit, fork ----------------------------------------------------------------------


def test_drop_warning_is_rate_limited(tmp_path: Path, make_writer: Callable[..., BackgroundWriter],
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ragtrail.writer")
    store = FaultyStore(MemoryStore())
    store.hang.clear()
    config = fast_config(tmp_path, max_queue_events=5, batch_max_events=5, spool_max_bytes=0,
                         drop_log_interval_s=3600)
    writer = make_writer(store, config)
    for _ in range(200):
        writer.offer(make_record())
    # The writer thread is stuck in the hung store; release it so it can report.
    store.hang.set()
    wait_until(lambda: any("dropped" in r.message for r in caplog.records))
    for _ in range(200):
        writer.offer(make_record())
    assert writer.flush(10)
    drop_logs = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drop_logs) == 1
    assert "queue_full" in drop_logs[0].getMessage()


@pytest.mark.parametrize("mode", ["plain", "multiprocessing"])
def test_exit_hooks_store_what_was_never_flushed(tmp_path: Path, mode: str) -> None:
    ids_path = tmp_path / "ids.txt"
    result = subprocess.run(
        [sys.executable, str(HERE / "reliability" / "_child_exit.py"), str(ids_path),
         str(tmp_path / "spool"), "300", mode],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    ids = ids_in(str(ids_path))
    assert len(ids) == 300 and len(set(ids)) == 300


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_a_fresh_writer(tmp_path: Path) -> None:
    ids_path = str(tmp_path / "ids.txt")
    config = fast_config(tmp_path, flush_interval_s=3600)  # nothing written before the fork
    writer = BackgroundWriter(lambda: FileStore(ids_path), config)
    before = offer_all(writer, 25, prefix="before")
    pid = os.fork()
    if pid == 0:  # the child: its own records only, exactly once
        code = 1
        try:
            child = offer_all(writer, 10, prefix="child")
            ok = writer.close(10) and writer.stats().stored == 10
            code = 0 if ok and len(child) == 10 else 3
        finally:
            os._exit(code)
    after = offer_all(writer, 5, prefix="after")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert writer.close(10)
    ids = ids_in(ids_path)
    expected = [r.id for r in before + after]
    assert sorted(ids) == sorted(expected + [i for i in ids if i.startswith("child")])
    assert len([i for i in ids if i.startswith("child")]) == 10
    assert len(ids) == len(set(ids)) == 40


# --- reading the spool ahead -------------------------------------------------------------


def spool_of(tmp_path: Path, count: int, *, per_segment: int) -> tuple[Spool, list[str]]:
    """A spool holding ``count`` flat records, ``per_segment`` lines to a segment file."""
    records = [make_record("ahead") for _ in range(count)]
    lines = [b"%d %s\n" % (i, flatten(r).to_json()) for i, r in enumerate(records)]
    spool = Spool(tmp_path / "spool", max_bytes=10**9,
                  segment_max_bytes=per_segment * max(map(len, lines)))  # lines differ a little
    assert spool.append(lines) == count
    return spool, [r.id for r in records]


def ids_of(batch: Any) -> list[str]:
    return [record.id for record in batch.records]


def test_spool_reads_ahead_across_segments_and_only_in_order(tmp_path: Path) -> None:
    spool, ids = spool_of(tmp_path, 10, per_segment=4)
    first = spool.read(3)
    ahead = spool.read(3, after=first)
    assert ids_of(first) == ids[:3] and ids_of(ahead) == [ids[3]]  # the rest of segment 1
    assert not spool.is_next(ahead)  # the first batch is not stored yet
    spool.commit(first, 3)
    assert spool.is_next(ahead)
    spool.commit(ahead, 1)  # segment 1 is done and deleted
    second = spool.read(3)
    ahead = spool.read(3, after=second)  # from the next segment
    assert ids_of(second) == ids[4:7] and ids_of(ahead) == [ids[7]]
    spool.commit(second, 2)  # stored in part: the read ahead is not next any more
    assert not spool.is_next(ahead)
    assert ids_of(spool.read(3)) == ids[6:8]


def test_a_spool_closed_part_way_through_a_segment_leaves_only_its_unsettled_lines(
        tmp_path: Path) -> None:
    # Lines already stored or dead-lettered are not replayed again by the next writer
    # (a dead-lettered record would be dead-lettered twice, a counted one counted twice).
    spool, ids = spool_of(tmp_path, 6, per_segment=4)
    spool.commit(spool.read(3), 3)
    spool.close()
    adopter = Spool(tmp_path / "spool", max_bytes=10**9, segment_max_bytes=10**6)
    assert adopter.adopt_orphans() == 3
    assert ids_of(adopter.read(10)) == ids[3:4]  # the rest of the first segment
    adopter.close()


def test_spool_read_ahead_is_stale_after_records_are_put_in_front(tmp_path: Path) -> None:
    spool, _ids = spool_of(tmp_path, 6, per_segment=6)
    first = spool.read(2)
    ahead = spool.read(2, after=first)
    spool.commit(first, 2)
    older = make_record("older")
    assert spool.prepend([b"0 %s\n" % flatten(older).to_json()])
    assert not spool.is_next(ahead)
    assert ids_of(spool.read(1)) == [older.id]


def test_spool_read_ahead_ends_at_the_last_line(tmp_path: Path) -> None:
    spool, ids = spool_of(tmp_path, 4, per_segment=4)
    everything = spool.read(10)
    assert ids_of(everything) == ids
    assert spool.read(10, after=everything) is None


class _FailsOnce(FaultyStore):
    """Fails (transiently) the one write of exactly the ids in ``trip``."""

    def __init__(self, inner: MemoryStore) -> None:
        super().__init__(inner)
        self.trip: list[str] | None = None

    def write_batch(self, records: Any) -> None:
        if self.trip is not None and [r.id for r in records] == self.trip:
            self.trip = None
            raise TransientStoreError("injected: dropped connection")
        super().write_batch(records)


def test_a_batch_stored_in_part_is_resumed_not_skipped_by_the_read_ahead(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    inner = MemoryStore()
    store = _FailsOnce(inner)
    store.down = True
    store.prepares_ahead = True  # the next batch is read while one is stored
    config = fast_config(tmp_path, max_queue_events=8, batch_max_events=4,
                         retry_max_attempts=1)
    writer = make_writer(store, config)
    records = [make_record("part") for _ in range(12)]
    for record in records:
        assert writer.offer(record)
        wait_until(lambda: writer.stats().queue_events < 4)  # spilled to disk
    wait_until(lambda: writer.stats().spool_events >= 10)  # three batches on the spool
    # Batches are read from one segment file at a time, four lines at most.
    batches = [ids[i:i + 4] for path in spool_files(config.resolved_spool_dir("default"))
               for ids in [spool_ids_in(path)] for i in range(0, len(ids), 4)]
    # The second spooled batch (the first is written while the store is still taken
    # for down: no read ahead) gets a poison record, so it is split: its first half
    # is written (one stored, one dead-lettered), then the second half fails and the
    # batch is stored only in part, while the next one was already read ahead.
    second = next(batch for batch in batches[1:-1] if len(batch) == 4)
    store.poison.add(second[0])
    store.trip = second[2:]
    store.down = False
    assert writer.flush(10)
    stats = writer.stats()
    assert sorted(inner.rows) == sorted(r.id for r in records if r.id != second[0])
    assert stats.stored == 11 and stats.dead_lettered == 1 and stats.balanced()
    assert stats.spool_events == 0 and stats.spool_bytes == 0


@pytest.fixture
def takers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads that took a batch of fresh records from the queue."""
    names: list[str] = []
    plain_take = Spiller.take

    def take(self: Spiller) -> Any:
        names.append(threading.current_thread().name)
        return plain_take(self)

    monkeypatch.setattr(Spiller, "take", take)
    return names


def test_fresh_records_due_during_a_replay_are_taken_and_prepared_meanwhile(
    tmp_path: Path, make_writer: MakeWriter, takers: list[str]
) -> None:
    inner, store = down_store()
    store.prepares_ahead = True
    store.slow, store.slow_s = set(), 0.02  # each replayed batch takes a while
    config = fast_config(tmp_path, max_queue_events=100, batch_max_events=10)
    writer = make_writer(store, config)
    spooled = [make_record("old") for _ in range(300)]
    for record in spooled:
        assert writer.offer(record)
        if writer.stats().queue_events >= 90:  # let the spill thread move them to disk
            wait_until(lambda: writer.stats().queue_events < 90)
    store.slow.update(r.id for r in spooled)
    wait_until(lambda: writer.stats().spool_events >= 200)
    store.down = False
    fresh = []
    while writer.stats().spool_events > 0 and len(fresh) < 2000:  # live load meanwhile
        for record in [make_record("new") for _ in range(5)]:
            if writer.offer(record):
                fresh.append(record)
        time.sleep(0.002)
    assert writer.flush(20)
    stats = writer.stats()
    assert stats.dropped_total == 0
    assert sorted(inner.rows) == sorted(r.id for r in spooled + fresh)
    assert max(inner.commits.values()) == 1 and stats.balanced() and stats.pending == 0
    assert any(name.startswith("ragtrail-read-ahead") for name in takers), set(takers)


def test_live_traffic_alone_has_its_next_batch_taken_and_prepared_meanwhile(
    tmp_path: Path, make_writer: MakeWriter, takers: list[str]
) -> None:
    # No outage, no spool: while one fresh batch is written to a server, the next one
    # is taken from the queue on the helper thread, so the writer thread only sends.
    inner = MemoryStore()
    store = FaultyStore(inner)
    store.prepares_ahead = True
    store.slow_s = 0.02  # each batch takes a while
    config = fast_config(tmp_path, max_queue_events=400, batch_max_events=10)
    writer = make_writer(store, config)
    records = []
    for _ in range(60):  # live load while batches are written
        batch = [make_record("live") for _ in range(5)]
        store.slow.update(r.id for r in batch)
        for record in batch:
            assert writer.offer(record)
        records.extend(batch)
        time.sleep(0.004)
    assert writer.flush(20)
    stats = writer.stats()
    assert stats.spooled == 0 and stats.dropped_total == 0 and stats.balanced()
    assert inner.order == [r.id for r in records]  # still in offer order
    assert max(inner.commits.values()) == 1
    assert any(name.startswith("ragtrail-read-ahead") for name in takers), set(takers)
