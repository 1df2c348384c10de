"""Idempotent bulk inserts of encoded rows, the fastest way each backend offers.

* SQLite: ``executemany`` of ``INSERT .. ON CONFLICT DO NOTHING`` per table, on the
  driver directly (the rows are already in storage form, so SQLAlchemy's per-row
  parameter processing is skipped).
* PostgreSQL: ``COPY`` into a temporary staging table per table (per connection,
  emptied at commit), then ``INSERT .. SELECT .. ORDER BY key ON CONFLICT
  DO NOTHING``: one round trip per table instead of one statement per row, and the
  key order gives concurrent writers one lock order.

Both run inside the caller's transaction: a batch is stored whole or not at all. A
PostgreSQL user without the TEMP privilege gets ``executemany`` there too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from ._rows import COLUMNS, KEYS, Encoded

__all__ = ["can_stage", "insert_encoded"]

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


def _insert_values(conn: Connection, encoded: Encoded) -> None:
    """executemany of INSERT .. VALUES per table (SQLite; PostgreSQL without COPY)."""
    statements = _VALUES_SQL[conn.dialect.name]
    for table, rows in encoded.tables():
        if rows:
            conn.exec_driver_sql(statements[table], rows)


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


def _insert_postgresql(conn: Connection, encoded: Encoded) -> None:
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor:
        # Temporary tables live with the connection but vanish with a rolled-back
        # transaction that created them: "IF NOT EXISTS" in every batch is the one
        # check that is always right (a catalog lookup, far below a batch's cost).
        # Statements without parameters go together: one round trip for the creates,
        # one for the inserts, besides the COPYs.
        cursor.execute(_PG_CREATE_ALL)
        inserts = []
        for table, rows in encoded.tables():
            if not rows:
                continue
            _create, copy_sql, insert_sql = _PG_SQL[table]
            with cursor.copy(copy_sql) as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
            inserts.append(insert_sql)
        if inserts:
            cursor.execute("; ".join(inserts))


def can_stage(conn: Connection) -> bool:
    """PostgreSQL: may this user create the temporary staging tables (TEMP privilege)?"""
    allowed = conn.exec_driver_sql(
        "SELECT has_database_privilege(current_database(), 'TEMP')").scalar()
    return bool(allowed)


def insert_encoded(conn: Connection, encoded: Encoded, *, copy: bool = True) -> None:
    """Insert every row of ``encoded`` inside the transaction of ``conn``.

    ``copy=False`` on PostgreSQL uses ``executemany`` instead of COPY (a user without the
    TEMP privilege cannot create the staging tables).
    """
    if conn.dialect.name == "postgresql" and copy:
        _insert_postgresql(conn, encoded)
    else:
        _insert_values(conn, encoded)
