"""The database's own ceiling for the ingestion mix: the same rows, already serialized
to driver-ready tuples before the clock starts, inserted with the bare driver.

* SQLite: ``sqlite3`` ``executemany`` of ``INSERT .. ON CONFLICT DO NOTHING`` per table,
  one transaction per batch, with ragtrail's pragmas (WAL, synchronous NORMAL, its page
  cache size; foreign keys are not checked, which ragtrail does) and no
  WAL checkpoint at all (``wal_autocheckpoint = 0``): ragtrail moves most checkpoint
  work to a thread of its own, so the ceiling leaves all of it out.
* PostgreSQL: psycopg ``COPY`` into temporary tables, then ``INSERT .. SELECT .. ON
  CONFLICT DO NOTHING``, one transaction per batch: the fastest way in that keeps
  idempotent writes; with ragtrail's session settings (lz4 TOAST compression).

No ragtrail code runs inside the timed loop, so no change to ragtrail can make
ingestion faster than this on the same machine.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ragtrail.schemas import CapturedRun
from ragtrail.store import _tables, open_store
from ragtrail.store._rows import encode_batch
from ragtrail.store._url import EngineConfig
from ragtrail.store._url import _postgres_session as postgres_session


def _prepared(url: str, recs: Sequence[CapturedRun], batch: int) -> tuple[Any, list[Any]]:
    """Create the schema, then every batch as [(table, columns, tuples)] for the driver."""
    store = open_store(url)
    dialect = store.engine.dialect
    store.close()
    batches = []
    for start in range(0, len(recs), batch):
        encoded = encode_batch(recs[start:start + batch], dialect.name)
        tables = []
        for name, tuples in encoded.tables():
            table = _tables.metadata.tables[name]
            tables.append((table, [c.name for c in table.columns], tuples))
        batches.append(tables)
    return dialect, batches


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def sqlite_ceiling(url: str, recs: Sequence[CapturedRun], batch: int, *,
                   synchronous: str = "NORMAL") -> dict[str, Any]:
    """Runs per second; ``synchronous="OFF"`` measures the ceiling without any fsync
    (what ragtrail's ``sqlite_synchronous="OFF"`` trades crash safety for)."""
    _, batches = _prepared(url, recs, batch)
    path = sa.engine.make_url(url).database
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute(f"PRAGMA cache_size = {-1024 * EngineConfig().sqlite_cache_mib}")  # as ragtrail
    if synchronous != "OFF":
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    # else SQLite's own checkpoints: without fsync they only copy pages, and they keep
    # the WAL short (an ever-growing WAL made this ceiling vary from 17,500 to 24,000).
    try:
        start = time.perf_counter()
        for tables in batches:
            conn.execute("BEGIN")
            for table, names, tuples in tables:
                keys = ", ".join(c.name for c in table.primary_key.columns)
                marks = ", ".join("?" * len(names))
                conn.executemany(f"INSERT INTO {table.name} ({_quoted(names)}) VALUES ({marks}) "
                                 f"ON CONFLICT ({keys}) DO NOTHING", tuples)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    return {"runs": len(recs), "seconds": elapsed, "runs_per_s": len(recs) / elapsed}


def pg_ceiling(url: str, recs: Sequence[CapturedRun], batch: int) -> dict[str, Any]:
    _, batches = _prepared(url, recs, batch)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as sa_conn:
            conn: Any = sa_conn.connection.dbapi_connection
            postgres_session(conn, None)  # ragtrail's session settings (lz4 TOAST compression)
            conn.commit()
            start = time.perf_counter()
            for tables in batches:
                with conn.transaction(), conn.cursor() as cur:
                    for table, names, tuples in tables:
                        keys = ", ".join(c.name for c in table.primary_key.columns)
                        temp = f"bench_in_{table.name}"
                        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} "
                                    f"(LIKE {table.name}) ON COMMIT DELETE ROWS")
                        with cur.copy(f"COPY {temp} ({_quoted(names)}) FROM STDIN") as copy:
                            for row in tuples:
                                copy.write_row(row)
                        cur.execute(f"INSERT INTO {table.name} ({_quoted(names)}) SELECT "
                                    f"{_quoted(names)} FROM {temp} ON CONFLICT ({keys}) "
                                    "DO NOTHING")
            elapsed = time.perf_counter() - start
    finally:
        engine.dispose()
    return {"runs": len(recs), "seconds": elapsed, "runs_per_s": len(recs) / elapsed}
