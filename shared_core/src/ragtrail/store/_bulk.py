"""Idempotent bulk inserts of encoded rows, the fastest way each backend offers.

* SQLite: ``executemany`` of ``INSERT .. ON CONFLICT DO NOTHING`` per table, on the
  driver directly (the rows are already in storage form, so SQLAlchemy's per-row
  parameter processing is skipped).
* PostgreSQL: ``COPY``. Rows of runs not stored yet (the common case) go straight
  into their tables (runs, LLM calls, document links: all keyed by their run);
  documents, which runs share, and every row of a batch that meets a row stored
  meanwhile go into a temporary staging table per table (per connection, emptied at
  commit), then ``INSERT .. SELECT .. ORDER BY key ON CONFLICT DO NOTHING``. One
  round trip per table instead of one statement per row; rows in key order give
  concurrent writers one lock order.

Both run inside the caller's transaction: a batch is stored whole or not at all. A
PostgreSQL user without the TEMP privilege gets ``executemany`` there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

from sqlalchemy.engine import Connection

from ._rows import COLUMNS, KEYS, Encoded

__all__ = ["can_stage", "copy_text", "insert_encoded"]

_STAGE_PREFIX = "ragtrail_stage_"


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _values_sql(table: str, mark: str) -> str:
    columns = COLUMNS[table]
    marks = ", ".join([mark] * len(columns))
    return (f'INSERT INTO "{table}" ({_names(columns)}) VALUES ({marks}) '
            f"ON CONFLICT ({_names(KEYS[table])}) DO NOTHING")


_VALUES_SQL = {
    "sqlite": {table: _values_sql(table, "?") for table in COLUMNS},
    "postgresql": {table: _values_sql(table, "%s") for table in COLUMNS},
}


#: SQLite: rows per multi-row ``INSERT .. VALUES (..), (..)`` statement (within SQLite's
#: 32,766 parameters). One statement is one ``sqlite3_step``, during which the driver
#: releases the interpreter lock: the writer's helper thread encodes the next batch
#: meanwhile (``executemany`` releases and retakes it for every row, and each retake
#: waits for the helper).
_SQLITE_ROWS_PER_STATEMENT = 64


def _multi_values_sql(table: str, rows: int) -> str:
    columns = COLUMNS[table]
    one = "(" + ", ".join(["?"] * len(columns)) + ")"
    return (f'INSERT INTO "{table}" ({_names(columns)}) VALUES {", ".join([one] * rows)} '
            f"ON CONFLICT ({_names(KEYS[table])}) DO NOTHING")


_SQLITE_MULTI = {table: (rows, _multi_values_sql(table, rows)) for table, rows in (
    (table, min(_SQLITE_ROWS_PER_STATEMENT, 32_766 // len(COLUMNS[table])))
    for table in COLUMNS)}


def _insert_sqlite(conn: Connection, encoded: Encoded) -> None:
    """Multi-row INSERT .. VALUES statements per table, the rest by executemany. Through
    SQLAlchemy (a few dozen statements a batch): its errors are classified as ever."""
    for table, rows in encoded.tables():
        if not rows:
            continue
        per, sql = _SQLITE_MULTI[table]
        whole = len(rows) - len(rows) % per
        for start in range(0, whole, per):
            conn.exec_driver_sql(sql, tuple(chain.from_iterable(rows[start:start + per])))
        if whole < len(rows):  # rows read back from the spool are lists: bind tuples
            conn.exec_driver_sql(_VALUES_SQL["sqlite"][table],
                                 [row if type(row) is tuple else tuple(row)
                                  for row in rows[whole:]])


def _insert_values(conn: Connection, encoded: Encoded) -> None:
    """executemany of INSERT .. VALUES per table (PostgreSQL without COPY)."""
    statements = _VALUES_SQL[conn.dialect.name]
    for table, rows in encoded.tables():
        if rows:  # rows read back from the spool are lists; SQLAlchemy binds tuples
            conn.exec_driver_sql(statements[table],
                                 [row if type(row) is tuple else tuple(row) for row in rows])


def _pg_statements(table: str) -> tuple[str, str, str]:
    columns = _names(COLUMNS[table])
    stage = f"{_STAGE_PREFIX}{table}"
    create = (f'CREATE TEMPORARY TABLE IF NOT EXISTS "{stage}" '
              f'(LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS')
    copy = f'COPY "{stage}" ({columns}) FROM STDIN'
    insert = (f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{stage}" '
              f"ORDER BY {_names(KEYS[table])} ON CONFLICT ({_names(KEYS[table])}) DO NOTHING")
    return create, copy, insert


_PG_SQL = {table: _pg_statements(table) for table in COLUMNS}


_PG_CREATE_ALL = "; ".join(create for create, _copy, _insert in _PG_SQL.values())


def copy_text(rows: list[Sequence[Any]]) -> bytes:
    """``rows`` in COPY's text format (the data of ``COPY .. FROM STDIN``).

    Values are what the encoder makes: text without NUL or lone surrogates, numbers,
    booleans and None. Built apart from the connection, so the writer can prepare the
    next batch on another thread while the server works on this one.
    """
    return "".join(["\t".join([_copy_field(value) for value in row]) + "\n" for row in rows]
                   ).encode("utf-8")


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        text: str = value
        if "\\" in text:
            text = text.replace("\\", "\\\\")
        if "\n" in text or "\r" in text or "\t" in text:
            text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        return text
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value)  # int, float (no NaN or infinity: stored as NULL), Decimal


#: Tables whose rows all belong to one run: a run stored means its rows are stored.
_PER_RUN = ("runs", "llm_calls", "document_links")
_DIRECT_COPY = {table: f'COPY "{table}" ({_names(COLUMNS[table])}) FROM STDIN'
                for table in _PER_RUN}
_SAVEPOINT = "ragtrail_direct"
_UNIQUE_VIOLATION = "23505"  # SQLSTATE unique_violation (psycopg is optional: no import)


def _insert_postgresql(conn: Connection, encoded: Encoded) -> None:
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor:
        # Temporary tables live with the connection but vanish with a rolled-back
        # transaction that created them: "IF NOT EXISTS" in every batch is the one
        # check that is always right (a catalog lookup, far below a batch's cost).
        cursor.execute(f"{_PG_CREATE_ALL}; SAVEPOINT {_SAVEPOINT}")
        tables = encoded.tables()
        inserts = []
        if _copy_new_runs(cursor, encoded):
            tables = [(name, rows) for name, rows in tables if name not in _PER_RUN]
            inserts.append(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        for table, rows in tables:
            if not rows:
                continue
            _create, copy_sql, insert_sql = _PG_SQL[table]
            _copy(cursor, copy_sql, rows, encoded.copy_data.get(table))
            inserts.append(insert_sql)
        if inserts:
            # Statements without parameters go together: one round trip.
            cursor.execute("; ".join(inserts))


def _copy_new_runs(cursor: Any, encoded: Encoded) -> bool:
    """COPY the batch's per-run rows straight into their tables, inside the savepoint
    the caller opened; False if some run was stored already (a retry after an ambiguous
    commit, another writer, the same run twice in the batch): nothing is written then,
    and the caller goes through the staging tables (ON CONFLICT DO NOTHING).

    In the common case, a batch of new runs, this skips writing every row twice
    (staging, then the table): about 10 % of a batch's time, measured. Child rows are
    keyed by their run, and a record is stored in one transaction, so a run stored
    means its LLM call and document links are stored too. No look-up first: each
    statement is a round trip on which the writer waits, and a batch holding stored
    runs is rare.
    """
    tables = dict(encoded.tables())
    try:
        for table in _PER_RUN:
            rows = tables[table]
            if rows:
                _copy(cursor, _DIRECT_COPY[table], rows, encoded.copy_data.get(table))
    except Exception as exc:
        if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
        cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        return False
    return True


def _copy(cursor: Any, sql: str, rows: list[Sequence[Any]], data: bytes | None) -> None:
    with cursor.copy(sql) as copy:
        if data is not None:
            copy.write(data)  # prepared ahead: only sent here
        else:
            write_row = copy.write_row
            for row in rows:
                write_row(row)


def can_stage(conn: Connection) -> bool:
    """PostgreSQL: may this user create the temporary staging tables (TEMP privilege, and
    SELECT on the tables they copy the shape of: a least-privilege writer role, which
    may not read the trail, has not)?"""
    allowed = conn.exec_driver_sql(
        "SELECT has_database_privilege(current_database(), 'TEMP') "
        "AND has_table_privilege('runs', 'SELECT')").scalar()
    return bool(allowed)


def insert_encoded(conn: Connection, encoded: Encoded, *, copy: bool = True) -> None:
    """Insert every row of ``encoded`` inside the transaction of ``conn``.

    ``copy=False`` on PostgreSQL uses ``executemany`` instead of COPY (a user without the
    TEMP privilege cannot create the staging tables).
    """
    if conn.dialect.name == "postgresql" and copy:
        _insert_postgresql(conn, encoded)
    elif conn.dialect.name == "sqlite":
        _insert_sqlite(conn, encoded)
    else:
        _insert_values(conn, encoded)
