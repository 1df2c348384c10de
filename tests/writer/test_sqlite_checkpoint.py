"""SQLite WAL checkpoints run on the store's own thread, not inside the writer's commits."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_store import record

from ragtrail.schemas import CapturedRun
from ragtrail.store import open_store
from ragtrail.testing.internals import AUTOCHECKPOINT_PAGES, WalCheckpointer

THREAD_NAME = "ragtrail-wal-checkpoint"


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> bool:  # hang guard
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _batch(prefix: str, n: int = 200) -> list[CapturedRun]:
    return [record(f"{prefix}-{i}", trace_id=f"{prefix}-t{i // 10}", text="x" * 2000 + str(i))
            for i in range(n)]


def test_written_pages_reach_the_database_file_without_the_writer_checkpointing(
        tmp_path: Path) -> None:
    path = tmp_path / "ragtrail.db"
    store = open_store(f"sqlite:///{path}")
    try:
        with store.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == AUTOCHECKPOINT_PAGES  # the writer's own threshold is only a backstop
        before = path.stat().st_size
        store.write_batch(_batch("a"))  # ~0.5 MB: far below the backstop
        # Only a checkpoint copies WAL pages into the main file; the writer did none.
        assert _wait_for(lambda: path.stat().st_size > before + 200_000), (
            before, path.stat().st_size)
        assert len(_checkpoint_threads()) >= 1
    finally:
        store.close()
    # Everything is readable from a fresh connection.
    with sqlite3.connect(path) as conn:
        assert conn.execute("select count(*) from runs").fetchone() == (200,)


def test_no_thread_for_a_store_that_only_reads_or_lives_in_memory(tmp_path: Path) -> None:
    before = len(_checkpoint_threads())
    reader = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    memory = open_store("sqlite://")
    try:
        memory.write_batch(_batch("m", 5))
        assert reader.revision() is not None
        assert len(_checkpoint_threads()) == before
    finally:
        reader.close()
        memory.close()


def test_close_stops_the_thread(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    store.write_batch(_batch("c", 20))
    checkpointer = store._checkpointer
    assert checkpointer is not None and checkpointer._thread is not None
    thread = checkpointer._thread
    assert thread.is_alive()
    store.close()
    assert not thread.is_alive()
    checkpointer.poke()  # after close: nothing starts again
    assert checkpointer._thread is thread and not thread.is_alive()


class _BrokenEngine:
    def raw_connection(self) -> object:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_failing_checkpoint_is_only_logged_and_the_thread_keeps_going(
        caplog: pytest.LogCaptureFixture) -> None:
    checkpointer = WalCheckpointer(_BrokenEngine())  # type: ignore[arg-type]
    caplog.set_level("DEBUG", logger="ragtrail.store")
    try:
        checkpointer.poke()
        assert _wait_for(lambda: "background WAL checkpoint failed" in caplog.text)
        caplog.clear()
        checkpointer.poke()
        assert _wait_for(lambda: "background WAL checkpoint failed" in caplog.text)
        assert checkpointer._thread is not None and checkpointer._thread.is_alive()
        assert checkpointer.checkpoints == 0
    finally:
        checkpointer.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_checkpoint_thread(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    store = open_store(f"sqlite:///{path}")
    try:
        store.write_batch(_batch("parent", 10))
        assert store._checkpointer is not None
        pid = os.fork()
        if pid == 0:  # child: the parent's thread does not exist here
            code = 1
            try:
                store.reset_after_fork()
                size = path.stat().st_size
                store.write_batch(_batch("child"))
                ok = _wait_for(lambda: path.stat().st_size > size + 200_000)
                code = 0 if ok and len(_checkpoint_threads()) == 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("select count(*) from runs").fetchone() == (210,)
