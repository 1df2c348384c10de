"""Issue test 6: against a hung store, flush and close return False at their deadlines
instead of waiting on the store.

The hung store blocks a write for 60 s (SQLite) or for ever (PostgreSQL); flush(1 s)
and close(2 s) must return long before that. The margin asserted is a hang guard
(10 s), not a speed bound: under other load a return 300 ms late is the machine's, and
the measured times are printed.

Hung stores: SQLite held by another process's exclusive lock with a 60-second busy
timeout (the write blocks inside SQLite), and PostgreSQL behind a loopback proxy that
keeps the connection open but forwards nothing (the write blocks on the socket).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ragtrail.store import open_store
from ragtrail.writer import BackgroundWriter, WriterConfig
from reliability._db import sqlite_path
from reliability._factory import make_record
from reliability._locker import SqliteLock
from reliability._proxy import Proxy, upstream_of

pytestmark = pytest.mark.reliability

FLUSH_TIMEOUT_S = 1.0
CLOSE_TIMEOUT_S = 2.0
# Far below the store's own hang (60 s, or for ever): only a call that waited on the
# store exceeds it.
HANG_GUARD_S = 10.0


def check_deadlines(writer: BackgroundWriter, hang: Callable[[], None]) -> dict[str, float]:
    assert all(writer.offer(make_record("deadline")) for _ in range(20))
    assert writer.flush(30), "the store must work before it hangs"
    hang()
    assert all(writer.offer(make_record("deadline")) for _ in range(50))
    start = time.monotonic()
    flushed = writer.flush(FLUSH_TIMEOUT_S)
    flush_s = time.monotonic() - start
    start = time.monotonic()
    closed = writer.close(CLOSE_TIMEOUT_S)
    close_s = time.monotonic() - start
    print(f"\nhung store: flush({FLUSH_TIMEOUT_S}) -> {flushed} in {flush_s:.3f} s, "
          f"close({CLOSE_TIMEOUT_S}) -> {closed} in {close_s:.3f} s")
    assert flushed is False and closed is False
    assert FLUSH_TIMEOUT_S <= flush_s <= FLUSH_TIMEOUT_S + HANG_GUARD_S
    assert close_s <= CLOSE_TIMEOUT_S + HANG_GUARD_S
    assert writer.offer(make_record("deadline")) is False  # final: refused and counted
    assert writer.stats().balanced()
    return {"flush_s": flush_s, "close_s": close_s}


@contextmanager
def sqlite_hung(url: str) -> Iterator[Callable[[], None]]:
    lock = SqliteLock(sqlite_path(url))
    try:
        yield lock.acquire
    finally:
        lock.release()  # lets the stuck writer thread finish


def test_deadlines_hold_against_a_hung_sqlite_store(sqlite_url: str, tmp_path: Path) -> None:
    open_store(sqlite_url).close()
    writer = BackgroundWriter(lambda: open_store(sqlite_url, busy_timeout_ms=60_000),
                              WriterConfig(spool_dir=tmp_path / "spool"))
    with sqlite_hung(sqlite_url) as hang:
        check_deadlines(writer, hang)


@pytest.mark.postgres
def test_deadlines_hold_against_a_hung_postgres_server(pg_url: str, tmp_path: Path) -> None:
    open_store(pg_url).close()
    with Proxy(*upstream_of(pg_url)) as proxy:
        url = proxy.url_for(pg_url)
        writer = BackgroundWriter(lambda: open_store(url), WriterConfig(spool_dir=tmp_path / "s"))
        try:
            check_deadlines(writer, lambda: proxy.set("hang"))
        finally:
            proxy.set("down")  # the stuck socket read ends; the writer thread finishes
