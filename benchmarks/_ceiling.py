"""The database's own ceiling for the ingestion mix: the same rows, already serialized
to driver-ready tuples before the clock starts, inserted with the bare driver.

* SQLite: ``sqlite3``, multi-row ``INSERT .. VALUES (..), (..) ON CONFLICT DO NOTHING``
  statements of 64 rows per table (the rest of a table by ``executemany``; since the
  fifteenth round, as the store does: 17 % fewer instructions per run than
  ``executemany`` alone, which binds and steps row by row), one transaction per batch,
  with ragtrail's pragmas (WAL, synchronous NORMAL, its page cache size; foreign keys
  are not checked, which ragtrail does) and no checkpoint inside the timed part: the WAL
  is checkpointed (TRUNCATE) after every batch with the clocks stopped. ragtrail moves
  most checkpoint work to a thread of its own, so the ceiling leaves all of it out, but
  keeps the WAL as short as it can be (until the twenty-second round it did no
  checkpoint at all, and over 60,000 runs its growing WAL added 40-50 us of CPU per
  run, a third of the ceiling's: the writer then measured at 0.94-1.26 of it).
* PostgreSQL: psycopg ``COPY`` of the batch's COPY data, built before the clock starts:
  straight into ``runs``, ``llm_calls`` and ``document_links`` (keyed by their run, new
  in every batch: what ragtrail's store does for a batch of new runs), and for
  ``documents`` and ``tool_definitions``, which batches share, into temporary tables,
  then ``INSERT .. SELECT .. ON CONFLICT DO NOTHING``; one transaction per batch, with
  ragtrail's session settings (lz4 TOAST compression). Until the fifteenth round every
  table went through a temporary table: slower than the store's own route, so the
  writer could measure above its "ceiling".

No ragtrail code runs inside the timed loop, so no change to ragtrail can make
ingestion faster than this on the same machine.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from itertools import chain
from typing import Any

import sqlalchemy as sa

from ragtrail.schemas import CapturedRun
from ragtrail.store import _tables, open_store
from ragtrail.store._bulk import copy_text
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


#: Rows per multi-row INSERT statement on SQLite (as the store's ``_bulk``).
ROWS = 64


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def sqlite_ceiling(url: str, recs: Sequence[CapturedRun], batch: int, *,
                   synchronous: str = "NORMAL") -> dict[str, Any]:
    """Runs per second; ``synchronous="OFF"`` measures the ceiling without any fsync
    (what ragtrail's ``sqlite_synchronous="OFF"`` trades crash safety for)."""
    _, batches = _prepared(url, recs, batch)
    statements = {}  # table: (one row, ROWS rows, ROWS)
    for table, names, _tuples in batches[0]:
        keys = ", ".join(c.name for c in table.primary_key.columns)
        marks = "(" + ", ".join("?" * len(names)) + ")"
        per = min(ROWS, 32_766 // len(names))  # SQLite's bound on parameters
        head = f"INSERT INTO {table.name} ({_quoted(names)}) VALUES "
        tail = f" ON CONFLICT ({keys}) DO NOTHING"
        statements[table.name] = (head + marks + tail, head + ", ".join([marks] * per) + tail,
                                  per)
    path = sa.engine.make_url(url).database
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute(f"PRAGMA cache_size = {-1024 * EngineConfig().sqlite_cache_mib}")  # as ragtrail
    checkpoint = synchronous != "OFF"
    if checkpoint:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    # else SQLite's own checkpoints: without fsync they only copy pages, and they keep
    # the WAL short (an ever-growing WAL made this ceiling vary from 17,500 to 24,000).
    elapsed = cpu = 0.0
    try:
        for tables in batches:
            start, started_cpu = time.perf_counter(), time.process_time()
            conn.execute("BEGIN")
            for table, _names, tuples in tables:
                one, many, per = statements[table.name]
                whole = len(tuples) - len(tuples) % per
                for at in range(0, whole, per):
                    conn.execute(many, list(chain.from_iterable(tuples[at:at + per])))
                if whole < len(tuples):
                    conn.executemany(one, tuples[whole:])
            conn.execute("COMMIT")
            elapsed += time.perf_counter() - start
            cpu += time.process_time() - started_cpu
            if checkpoint:
                # Outside the clock: the WAL is emptied after every batch, so no insert
                # pays for a long one, and none pays for the checkpoint either. Over
                # 60,000 runs a WAL never checkpointed cost 139-152 us of CPU per run
                # against 95-119 us this way (46-57 us at 10,000 runs: the rest of the
                # growth is the database's own size).
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return _rate(len(recs), elapsed, cpu)


#: Tables whose rows are keyed by their run: COPY straight in (every run is new).
_DIRECT = ("runs", "llm_calls", "document_links")


def pg_ceiling(url: str, recs: Sequence[CapturedRun], batch: int) -> dict[str, Any]:
    _, batches = _prepared(url, recs, batch)
    steps = []  # per batch: (COPY statement, data, INSERT .. SELECT or None) per table
    for tables in batches:
        sql = []
        for table, names, tuples in tables:
            if not tuples:
                continue
            data = copy_text(tuples)
            if table.name in _DIRECT:
                sql.append((f"COPY {table.name} ({_quoted(names)}) FROM STDIN", data, None))
                continue
            keys = ", ".join(c.name for c in table.primary_key.columns)
            temp = f"bench_in_{table.name}"
            sql.append((f"COPY {temp} ({_quoted(names)}) FROM STDIN", data,
                        f"INSERT INTO {table.name} ({_quoted(names)}) SELECT {_quoted(names)} "
                        f"FROM {temp} ORDER BY {keys} ON CONFLICT ({keys}) DO NOTHING"))
        steps.append(sql)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as sa_conn:
            conn: Any = sa_conn.connection.dbapi_connection
            postgres_session(conn, None)  # ragtrail's session settings (lz4 TOAST compression)
            with conn.cursor() as cur:
                staged = {table.name for tables in batches for table, _n, _t in tables
                          if table.name not in _DIRECT}
                for name in sorted(staged):  # documents, tool definitions, payloads
                    cur.execute(f"CREATE TEMP TABLE bench_in_{name} (LIKE {name}) "
                                "ON COMMIT DELETE ROWS")
            conn.commit()
            start, cpu = time.perf_counter(), time.process_time()
            for sql in steps:
                with conn.transaction(), conn.cursor() as cur:
                    inserts = []
                    for copy_sql, data, insert_sql in sql:
                        with cur.copy(copy_sql) as copy:
                            copy.write(data)
                        if insert_sql is not None:
                            inserts.append(insert_sql)
                    if inserts:
                        cur.execute("; ".join(inserts))
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        engine.dispose()
    return _rate(len(recs), elapsed, cpu)


def _rate(runs: int, elapsed: float, cpu: float) -> dict[str, Any]:
    """Runs per second, and the CPU time this process spent (all its threads; on
    PostgreSQL the server's is not included), robust to other jobs on the machine."""
    return {"runs": runs, "seconds": elapsed, "runs_per_s": runs / elapsed,
            "cpu_seconds": cpu, "cpu_us_per_run": 1e6 * cpu / runs}
